"""The command line of the README's quick start."""

import subprocess
import sys

from fastap._cli import main


def test_demo_runs_and_compares_with_sklearn(capsys):
    assert main(["demo", "--n-samples", "300"]) == 0
    out = capsys.readouterr().out
    assert "fastap" in out and "scikit-learn" in out
    assert "Same clusters as scikit-learn: yes (adjusted Rand index 1.000)" in out
    assert "Machine load before timing: " in out and "(fit time: the best of the runs)" in out


def test_demo_without_comparison_float32(capsys):
    assert main(["demo", "--n-samples", "200", "--dtype", "float32", "--no-compare"]) == 0
    out = capsys.readouterr().out
    assert "scikit-learn " not in out.split("fit time")[-1]


def test_info_names_versions_and_cache(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "fastap" in out and "numba" in out and "kernel cache" in out


def test_bad_option_is_one_line_error_and_nonzero_exit():
    completed = subprocess.run(
        [sys.executable, "-m", "fastap", "demo", "--n-samples", "0"],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 2
    assert completed.stderr == (
        "fastap demo: error: argument --n-samples: must be at least 1, got 0 "
        "(see fastap demo --help)\n"
    )


# --------------------------------------------------------------------------
# fastap fit
# --------------------------------------------------------------------------

import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.datasets import make_blobs  # noqa: E402

import fastap  # noqa: E402
from fastap import _cli, _cli_fit  # noqa: E402


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(
        n_samples=120, centers=[[0, 0], [6, 6], [0, 6]], cluster_std=1.0, random_state=0
    )
    return X


def similarities(X):
    return -((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)


def read_labels(path_or_text):
    if os.path.exists(path_or_text):
        with open(path_or_text) as file:
            text = file.read()
    else:
        text = path_or_text
    lines = text.strip().splitlines()
    assert lines[0] == "sample,label,exemplar"
    return np.array([[int(v) for v in line.split(",")] for line in lines[1:]])


def test_fit_csv_writes_labels_next_to_input_and_json_summary(tmp_path, blobs, capsys):
    data = tmp_path / "points.csv"
    np.savetxt(data, blobs, delimiter=",", header="x,y", comments="")
    assert main(["fit", str(data), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)

    expected = fastap.AffinityPropagation(random_state=0).fit(blobs)
    table = read_labels(str(tmp_path / "points.labels.csv"))
    np.testing.assert_array_equal(table[:, 0], np.arange(len(blobs)))
    np.testing.assert_array_equal(table[:, 1], expected.labels_)
    np.testing.assert_array_equal(table[:, 2], expected.cluster_centers_indices_[expected.labels_])
    assert summary["n_clusters"] == len(expected.cluster_centers_indices_)
    assert summary["exemplars"] == expected.cluster_centers_indices_.tolist()
    assert sum(summary["cluster_sizes"]) == len(blobs)
    assert summary["n_iter"] == expected.n_iter_ and summary["converged"] is True
    assert summary["n_samples"] == 120 and summary["n_features"] == 2
    assert summary["dtype"] == "float64" and summary["affinity"] == "euclidean"
    assert summary["fit_seconds"] > 0 and summary["peak_memory_mib"] > 0
    assert summary["labels"] == str(tmp_path / "points.labels.csv")


def test_fit_options_reach_the_estimator(tmp_path, blobs, capsys):
    data = tmp_path / "points.npy"
    np.save(data, blobs)
    args = [
        "fit",
        str(data),
        "--preference",
        "-1000",
        "--damping",
        "0.9",
        "--max-iter",
        "5",
        "--convergence-iter",
        "3",
        "--n-jobs",
        "1",
        "--random-state",
        "3",
        "--labels-out",
        str(tmp_path / "l.csv"),
        "--no-progress",
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["n_iter"] == 5 and summary["converged"] is False
    assert summary["preference_used"] == -1000.0
    assert summary["damping_used"] == summary["parameters"]["damping"]
    assert summary["parameters"] == {
        "preference": -1000.0,
        "preference_quantile": None,
        "n_clusters": None,
        "damping": 0.9,
        "max_iter": 5,
        "convergence_iter": 3,
        "n_jobs": 1,
        "random_state": 3,
        "n_neighbors": None,
    }
    assert "fastap fit: warning:" in captured.err and "converge" in captured.err


def test_fit_keeps_float32_files_float32_unless_told(tmp_path, blobs, capsys):
    data = tmp_path / "points32.npy"
    np.save(data, blobs.astype(np.float32))
    out = tmp_path / "out.csv"
    assert main(["fit", str(data), "--labels-out", str(out), "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["dtype"] == "float32"
    assert (
        main(["fit", str(data), "--dtype", "float64", "--labels-out", str(out), "--no-progress"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["dtype"] == "float64"


def test_fit_precomputed_npz_labels_to_stdout_summary_to_file(tmp_path, blobs, capsys):
    S = similarities(blobs)
    data = tmp_path / "sim.npz"
    np.savez(data, S=S, other=np.zeros(3))
    summary_path = tmp_path / "summary.json"
    assert (
        main(
            [
                "fit",
                str(data),
                "--precomputed",
                "--key",
                "S",
                "--labels-out",
                "-",
                "--summary-out",
                str(summary_path),
                "--no-progress",
            ]
        )
        == 0
    )
    table = read_labels(capsys.readouterr().out)
    centers, labels = fastap.affinity_propagation(S, random_state=0)
    np.testing.assert_array_equal(table[:, 1], labels)
    summary = json.loads(summary_path.read_text())
    assert summary["affinity"] == "precomputed" and summary["n_features"] is None
    assert summary["exemplars"] == centers.tolist()


def test_fit_precomputed_npy_is_not_modified(tmp_path, blobs, capsys):
    S = similarities(blobs)
    data = tmp_path / "sim.npy"
    np.save(data, S)
    assert main(["fit", str(data), "--precomputed", "--labels-out", "-", "--no-progress"]) == 0
    capsys.readouterr()
    np.testing.assert_array_equal(np.load(data), S)
    assert (
        main(
            [
                "fit",
                str(data),
                "--precomputed",
                "--dtype",
                "float32",
                "--labels-out",
                "-",
                "--no-progress",
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(np.load(data), S)


@pytest.mark.parametrize("precomputed", [False, True])
def test_fit_plot_writes_a_png(tmp_path, blobs, capsys, precomputed):
    data = tmp_path / "data.npy"
    np.save(data, similarities(blobs) if precomputed else blobs)
    png = tmp_path / "clusters.png"
    args = ["fit", str(data), "--plot", str(png), "--no-progress"]
    assert main(args + (["--precomputed"] if precomputed else [])) == 0
    assert json.loads(capsys.readouterr().out)["plot"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def write(path, content):
    path.write_text(content) if isinstance(content, str) else np.save(path, content)
    return str(path)


BAD_INPUTS = {
    # case: (make the file, extra options, the exact error after "fastap fit: error: ")
    "missing file": (lambda d: str(d / "nope.csv"), [], "{d}/nope.csv: no such file"),
    "unsupported suffix": (
        lambda d: write(d / "x.txt", "1,2\n"), [],
        "{d}/x.txt: unsupported file type '.txt'; use .csv, .npy or .npz",
    ),
    "not numbers": (
        lambda d: write(d / "x.csv", "a,b\n1,x\n2,3\n"), [],
        '{d}/x.csv, row 2, column "b": "x" is not a number',
    ),
    "empty file": (lambda d: write(d / "x.csv", ""), [], "{d}/x.csv: no data"),
    "only a header": (
        lambda d: write(d / "x.csv", "x,y\n"), [], "{d}/x.csv: no data (only a header)"
    ),
    "only a line like pandas' header": (
        lambda d: write(d / "x.csv", "0,1\n"), [],
        "{d}/x.csv: no data (only a header; --no-header reads it as a sample)",
    ),
    "short row": (
        lambda d: write(d / "x.csv", "1,2\n3\n"), [],
        "{d}/x.csv, row 2: 1 field, the first row has 2",
    ),
    "long row": (
        lambda d: write(d / "x.csv", "x,y\n1,2\n3,4,5\n"), [],
        "{d}/x.csv, row 3: 3 fields, the first row has 2",
    ),
    "NaN": (
        lambda d: write(d / "x.csv", "1,2\nnan,3\n4,5\n"), [], "{d}/x.csv, row 2, column 1: NaN",
    ),
    "NaN under a header after a comment": (
        lambda d: write(d / "x.csv", "# points\nx,y\n1,2\n\n3,NaN\n"), [],
        '{d}/x.csv, row 5, column "y": NaN',
    ),
    "empty field": (
        lambda d: write(d / "x.csv", "x,y\n1,2\n3,\n"), [], '{d}/x.csv, row 3, column "y": empty',
    ),
    "NaN in .npy": (
        lambda d: write(d / "x.npy", np.array([[1.0, 2.0], [3.0, np.nan]])), [],
        "{d}/x.npy, row 2, column 2: NaN",
    ),
    "semicolons": (
        lambda d: write(d / "x.csv", "x;y\n1;2\n3;4\n"), [],
        "{d}/x.csv, row 1: the fields seem separated by ';': use --delimiter ';'",
    ),
    "decimal commas": (
        lambda d: write(d / "x.csv", "1,5;2,5\n3,5;4\n"), [],
        "{d}/x.csv, row 1: the fields seem separated by ';': use --delimiter ';' (decimal "
        "commas are not read: write 1.5, not 1,5)",
    ),
    "tabs": (
        lambda d: write(d / "x.csv", "1\t2\n3\t4\n"), [],
        "{d}/x.csv, row 1: the fields seem separated by '\\t': use --delimiter tab",
    ),
    "3-D array": (
        lambda d: write(d / "x.npy", np.zeros((2, 2, 2))), [],
        "{d}/x.npy: expected a 2-D array, got shape (2, 2, 2)",
    ),
    "strings": (
        lambda d: write(d / "x.npy", np.array([["a"]])), [],
        "{d}/x.npy: the data must be numeric, got dtype <U1",
    ),
    "not a .npy file": (
        lambda d: write(d / "x.npy", "1,2\n"), [],
        "{d}/x.npy: not a NumPy .npy file (it does not start with one's header)",
    ),
    "objects in .npy": (
        lambda d: (np.save(d / "x.npy", np.array([{}], dtype=object)), str(d / "x.npy"))[1], [],
        "{d}/x.npy: holds Python objects, not numbers",
    ),
    "not square": (
        lambda d: write(d / "x.npy", np.zeros((3, 4))), ["--precomputed"],
        "{d}/x.npy: a similarity matrix must be square, got shape (3, 4)",
    ),
    "npz without key": (
        lambda d: (np.savez(d / "x.npz", a=np.zeros((2, 2)), b=np.zeros((2, 2))), str(d / "x.npz"))[
            1
        ],
        [],
        "{d}/x.npz holds 2 arrays (a, b); choose one with --key",
    ),
    "npz wrong key": (
        lambda d: (np.savez(d / "x.npz", a=np.zeros((2, 2))), str(d / "x.npz"))[1],
        ["--key", "b"],
        "{d}/x.npz has no array 'b' (it has: a)",
    ),
    "unknown column": (
        lambda d: write(d / "x.csv", "x,y\n1,2\n3,4\n"), ["--columns", "z"],
        '--columns: {d}/x.csv has no column "z" (it has: "x", "y")',
    ),
    "column number out of range": (
        lambda d: write(d / "x.csv", "1,2\n3,4\n"), ["--columns", "3"],
        "--columns 3: {d}/x.csv has 2 columns (numbered from 1)",
    ),
    "plot not png": (
        lambda d: write(d / "x.csv", "1,2\n3,4\n9,9\n"), ["--plot", "x.jpg"],
        "--plot x.jpg: the plot is written as PNG; name it *.png",
    ),
    "labels dir missing": (
        lambda d: write(d / "x.csv", "1,2\n3,4\n9,9\n"),
        ["--labels-out", "/nonexistent-dir/l.csv"],
        "labels: folder /nonexistent-dir does not exist",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_fit_bad_input_is_one_line_error(tmp_path, capsys, case):
    make, extra, expected = BAD_INPUTS[case]
    path = make(tmp_path)
    assert main(["fit", path, "--no-progress", *extra]) == 1
    err = capsys.readouterr().err
    assert err == "fastap fit: error: " + expected.format(d=tmp_path) + "\n"


BAD_OPTIONS = {
    # The range errors name the option, at parse time (exit code 2).
    "--damping": (["--damping", "1.5"], "argument --damping: 1.5 is not in [0.5, 1) (or 'auto')"),
    "--max-iter": (["--max-iter", "0"], "argument --max-iter: must be at least 1, got 0"),
    "--convergence-iter": (
        ["--convergence-iter", "-3"], "argument --convergence-iter: must be at least 1, got -3"
    ),
    "--n-clusters": (["--n-clusters", "0"], "argument --n-clusters: must be at least 1, got 0"),
    "--n-neighbors": (["--n-neighbors", "0"], "argument --n-neighbors: must be at least 1, got 0"),
    "--preference-quantile": (
        ["--preference-quantile", "2"], "argument --preference-quantile: 2 is not in [0, 1]"
    ),
    "--n-jobs": (
        ["--n-jobs", "0"],
        "argument --n-jobs: 0 threads cannot run: give a count, or -1 for all cores (-2: all "
        "but one)",
    ),
}


@pytest.mark.parametrize("option", sorted(BAD_OPTIONS))
def test_fit_option_out_of_range_is_a_usage_error_naming_the_option(tmp_path, capsys, option):
    data = write(tmp_path / "x.csv", "1,2\n3,4\n9,9\n")
    extra, expected = BAD_OPTIONS[option]
    with pytest.raises(SystemExit) as raised:
        main(["fit", data, *extra])
    assert raised.value.code == 2
    assert capsys.readouterr().err == f"fastap fit: error: {expected} (see fastap fit --help)\n"


def test_demo_n_jobs_zero_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["demo", "--n-jobs", "0"])
    assert raised.value.code == 2
    assert capsys.readouterr().err.startswith("fastap demo: error: argument --n-jobs: 0 threads")


def with_memory(monkeypatch, n_bytes):
    """Pretend the machine has ``n_bytes`` of memory available."""
    from fastap import _resources

    monkeypatch.setattr(_resources, "available_memory_bytes", lambda: n_bytes)


def test_fit_matrix_too_big_for_memory_is_one_line_error(tmp_path, monkeypatch, capsys):
    data = tmp_path / "sim.npy"
    np.save(data, np.zeros((50, 50)))
    with_memory(monkeypatch, 1000)
    for extra in ([], ["--dtype", "float32"]):
        assert main(["fit", str(data), "--precomputed", "--no-progress", *extra]) == 1
        err = capsys.readouterr().err
        assert err.startswith("fastap fit: error: Affinity propagation on 50 samples")
        assert err.count("\n") == 1


def test_demo_too_big_for_memory_is_one_line_error_in_the_options_words(monkeypatch, capsys):
    # 100 MB: the 600-sample warm-up fits, 3,000 samples (216 MB) do not.
    with_memory(monkeypatch, 100 * 2**20)
    assert main(["demo", "--n-samples", "3000", "--no-compare"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastap demo: error: Affinity propagation on 3000 samples in float64")
    assert err.count("\n") == 1
    assert "affinity='nearest_neighbors'" not in err  # spelled as the option, if named


def test_fit_interrupt_exits_130(tmp_path, monkeypatch, capsys):
    data = tmp_path / "x.csv"
    data.write_text("1,2\n3,4\n5,6\n")

    def interrupted(self, X, y=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(fastap.AffinityPropagation, "fit", interrupted)
    assert main(["fit", str(data), "--no-progress"]) == 130
    assert capsys.readouterr().err == "fastap fit: interrupted\n"


def test_interrupt_during_start_up_exits_130_quietly(monkeypatch, capsys):
    # Ctrl-C while the command line is being built (its imports): no
    # traceback, no message.
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli, "_parser", interrupted)
    assert main(["info"]) == 130
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_every_subcommand_turns_errors_into_one_line(monkeypatch, capsys):
    def no_memory(**options):
        raise MemoryError("Unable to allocate 7.3 TiB for an array with shape (10**6, 10**6)")

    monkeypatch.setattr(fastap, "warmup", no_memory)
    assert main(["warmup"]) == 1
    assert capsys.readouterr().err == (
        "fastap warmup: error: Unable to allocate 7.3 TiB for an array with shape (10**6, 10**6)\n"
    )


def test_a_bug_keeps_its_traceback(monkeypatch):
    # Only the errors a user can fix become one line; a bug is not hidden.
    def bug(**options):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(fastap, "warmup", bug)
    with pytest.raises(ZeroDivisionError):
        main(["warmup"])


def run_fastap(*args):
    return subprocess.run([sys.executable, "-m", "fastap", *args], capture_output=True, text=True)


def test_fit_huge_feature_matrix_fails_before_allocating(tmp_path):
    # 300,000 samples need three 300,000 x 300,000 matrices: terabytes.
    data = tmp_path / "huge.npy"
    np.save(data, np.zeros((300_000, 1), dtype=np.float32))
    completed = run_fastap("fit", str(data), "--no-progress")
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    assert completed.stderr.count("\n") == 1
    assert "fastap fit: error: Affinity propagation on 300000 samples in float32" in (
        completed.stderr
    )


def test_fit_bad_option_value_is_one_line_usage_error(tmp_path):
    completed = run_fastap("fit", str(tmp_path / "x.csv"), "--damping", "abc")
    assert completed.returncode == 2
    assert completed.stderr == (
        "fastap fit: error: argument --damping: invalid value 'abc': a number in [0.5, 1) "
        "or 'auto' "
        "(see fastap fit --help)\n"
    )


class FakeStream:
    def __init__(self, tty):
        self.tty, self.text = tty, ""

    def isatty(self):
        return self.tty

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def info(iteration, n_exemplars=4, n_changed=1):
    return fastap.IterationInfo(iteration, n_exemplars, n_changed, 0.5, 0.25 * iteration)


class Clock:
    """A clock the test moves by hand: no timing in the assertions."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def run_bar(tty, max_iter=10):
    """Iterations 1 (at 0.5 s), 2 (0.05 s later), 5 (1 s later), then close."""
    stream, clock = FakeStream(tty), Clock()
    bar = _cli_fit.ProgressBar(max_iter=max_iter, stream=stream, clock=clock)
    assert stream.text == ""  # nothing before the first iteration
    clock.now += 0.5
    assert bar(info(1, 7, 2)) is False  # never stops the fit
    clock.now += 0.05
    bar(info(2, 6, 1))  # within 0.1 s of the last redraw: skipped
    clock.now += 1.0
    bar(info(5, 5, 0))
    bar.close()
    return stream.text


def test_progress_bar_redraws_in_place_on_a_terminal():
    text = run_bar(tty=True)
    draws = text.split("\r")[1:]
    assert text.startswith("\r") and text.endswith("\n")
    assert len(draws) == 3  # iteration 1, iteration 5, the closing redraw
    assert "1/10" in draws[0] and "exemplars 7, changed 2" in draws[0]
    assert "2/10" not in text
    assert "5/10" in draws[1] and "exemplars 5, changed 0" in draws[1]
    assert "[00:01<00:01," in draws[1]  # 1.55 s of the injected clock, half done


def test_progress_bar_writes_a_line_per_update_elsewhere():
    # Not a terminal (a log file, a pipe): no carriage returns, one line per
    # update, at most one a second; the closing redraw repeats no line.
    lines = run_bar(tty=False).splitlines(keepends=True)
    assert all(line.endswith("\n") and "\r" not in line for line in lines)
    assert len(lines) == 2
    assert "1/10" in lines[0] and "exemplars 7, changed 2" in lines[0]
    assert "5/10" in lines[1] and "3.23iter/s" in lines[1]  # 5 iterations in 1.55 s


def test_progress_bar_without_a_total():
    # During an n_clusters search the total is unknown.
    text = run_bar(tty=False, max_iter=None)
    assert "5iter" in text and "/10" not in text


def test_fit_progress_goes_to_stderr_and_leaves_results_alone(tmp_path, blobs, capsys):
    data = tmp_path / "points.npy"
    np.save(data, blobs)
    labels = tmp_path / "labels.csv"
    assert main(["fit", str(data), "--labels-out", str(labels), "--progress"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    # pytest's stderr is not a terminal: a line at most once a second, the first at once.
    lines = captured.err.splitlines()
    assert lines and lines[0].startswith("fit: ") and "| 1/200 [" in lines[0]
    assert "exemplars" in lines[0] and "changed" in lines[0]
    assert "\r" not in captured.err
    expected = fastap.AffinityPropagation(random_state=0).fit(blobs)
    assert summary["n_iter"] == expected.n_iter_
    np.testing.assert_array_equal(read_labels(str(labels))[:, 1], expected.labels_)


def test_fit_without_progress_writes_nothing_to_stderr(tmp_path, blobs, capsys):
    data = tmp_path / "points.npy"
    np.save(data, blobs)
    assert main(["fit", str(data), "--labels-out", str(tmp_path / "l.csv")]) == 0
    assert capsys.readouterr().err == ""  # stderr is not a terminal here


def test_fit_adaptive_damping(tmp_path, blobs, capsys):
    data = tmp_path / "points.npy"
    np.save(data, blobs)
    args = ["fit", str(data), "--damping", "auto", "--labels-out", str(tmp_path / "l.csv")]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["parameters"]["damping"] == "auto"
    expected = fastap.AffinityPropagation(damping="auto", random_state=0).fit(blobs)
    assert summary["exemplars"] == expected.cluster_centers_indices_.tolist()


def test_fit_n_clusters_and_preference_quantile(tmp_path, blobs, capsys):
    data = tmp_path / "points.npy"
    np.save(data, blobs)
    out = ["--labels-out", str(tmp_path / "l.csv")]
    assert main(["fit", str(data), "--n-clusters", "3", *out]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_clusters"] == 3 and summary["parameters"]["n_clusters"] == 3
    assert main(["fit", str(data), "--preference-quantile", "0", *out]) == 0
    summary = json.loads(capsys.readouterr().out)
    expected = fastap.AffinityPropagation(preference_quantile=0.0, random_state=0).fit(blobs)
    assert summary["preference_used"] == pytest.approx(float(expected.preference_))
    assert summary["exemplars"] == expected.cluster_centers_indices_.tolist()
    # Both at once is a usage error (see test_fit_conflicting_options_are_usage_errors).


# Found in review: inputs that are valid CSV after all, damaged archives,
# out-of-range options, one-sample plots.


@pytest.mark.parametrize(
    "text",
    [
        b"\xef\xbb\xbf1,2\n3,4\n10,10\n11,11\n",  # a byte-order mark, no header
        b"\nx,y\n1,2\n3,4\n10,10\n11,11\n",  # a header after a blank line
        b"# points\nx,y\n1,2\n3,4\n10,10\n11,11\n",  # ... after a comment
        b"\xef\xbb\xbfx,y\n1,2\n3,4\n10,10\n11,11\n",  # a header with a byte-order mark
    ],
)
def test_fit_reads_every_sample_of_a_csv(tmp_path, capsys, text):
    data = tmp_path / "points.csv"
    data.write_bytes(text)
    assert main(["fit", str(data), "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["n_samples"] == 4


def test_fit_damaged_npz_is_one_line_error(tmp_path, capsys):
    whole = tmp_path / "whole.npz"
    np.savez(whole, a=np.ones((1000, 2)))
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(whole.read_bytes()[:-200])
    assert main(["fit", str(damaged), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastap fit: error: ") and err.count("\n") == 1


def test_fit_preference_out_of_float32_range_is_an_error(tmp_path, capsys):
    data = tmp_path / "points.csv"
    # More than 2,000 samples: smaller float32 problems are fitted in float64
    # (fastap/_cold_start.py), where 1e300 is a valid preference.
    data.write_text("".join(f"{i % 7},{i % 11}\n" for i in range(2001)))
    args = ["fit", str(data), "--dtype", "float32", "--preference", "1e300", "--no-progress"]
    assert main(args) == 1
    assert "too large in magnitude for float32" in capsys.readouterr().err


def test_fit_summary_to_stdout_and_one_sample_plot(tmp_path, capsys):
    data = tmp_path / "one.csv"
    data.write_text("1,2,3,4\n")
    labels = tmp_path / "labels.csv"
    args = ["fit", str(data), "--summary-out", "-", "--labels-out", str(labels),
            "--plot", str(tmp_path / "one.png"), "--no-progress"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["n_samples"] == 1
    assert (tmp_path / "one.png").stat().st_size > 0
    assert not os.path.exists("-")


# --------------------------------------------------------------------------
# Issue 12: the newcomer's first hour.
# --------------------------------------------------------------------------


def test_version(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["--version"])
    assert raised.value.code == 0
    assert capsys.readouterr().out == f"fastap {fastap.__version__}\n"


def test_namespace_package_trap_is_one_clear_line(tmp_path, monkeypatch, capsys):
    # `python -m fastap` from the folder holding a clone named fastap: Python
    # imports the clone's folder as a namespace package (no __file__).
    clone = tmp_path / "fastap"
    clone.mkdir()
    monkeypatch.setattr(fastap, "__file__", None)
    monkeypatch.setattr(fastap, "__path__", [str(clone), os.path.dirname(_cli.__file__)])
    assert main(["info"]) == 1
    assert capsys.readouterr().err == (
        f"fastap: error: Python took the folder {clone} for the fastap package (it has no "
        "__init__.py): run python -m fastap from another folder (e.g. cd into it), or use the "
        "fastap command\n"
    )


@pytest.mark.timeout(300)
def test_namespace_package_trap_in_a_real_run_is_no_traceback(tmp_path):
    (tmp_path / "fastap").mkdir()  # a folder named like the package, next to us
    completed = subprocess.run(
        [sys.executable, "-m", "fastap", "info"], capture_output=True, text=True, cwd=tmp_path,
        timeout=300,
    )
    assert "Traceback" not in completed.stderr
    if completed.returncode != 0:  # the folder hid the package (an editable install)
        assert completed.stderr.startswith("fastap: error: Python took the folder ")


def run_with_closed_stdout(*args, cwd=None):
    """Run ``fastap`` with stdout a pipe its reader already closed (as after
    ``| head -1`` has its line)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "fastap", *args], stdout=write_end, stderr=subprocess.PIPE,
            text=True, cwd=cwd, timeout=300,
        )
    finally:
        os.close(write_end)


@pytest.mark.timeout(300)
def test_info_into_a_closed_pipe_exits_quietly():
    completed = run_with_closed_stdout("info")
    assert completed.returncode == _cli.EXIT_BROKEN_PIPE == 141
    assert completed.stderr == ""


@pytest.mark.timeout(300)
def test_fit_labels_into_a_closed_pipe_still_writes_plot_and_summary(tmp_path, blobs):
    data = tmp_path / "points.npy"
    np.save(data, blobs)
    png = tmp_path / "plot.png"
    completed = run_with_closed_stdout(
        "fit", str(data), "--labels-out", "-", "--plot", str(png), "--no-progress"
    )
    assert completed.returncode == 0
    summary = json.loads(completed.stderr)  # the summary goes to stderr, alone
    assert summary["labels"] == "- (the reader closed the pipe)"
    assert summary["n_samples"] == len(blobs)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_csv_written_by_pandas_skips_its_index_column(tmp_path, blobs, capsys):
    pd = pytest.importorskip("pandas")
    data = tmp_path / "points.csv"
    pd.DataFrame(blobs, columns=["x", "y"]).to_csv(data)  # header ",x,y", index first
    assert data.read_text().startswith(",x,y\n0,")
    assert main(["fit", str(data), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.err == (
        f"fastap fit: note: column 1 (unnamed, 0 to {len(blobs) - 1}) is the row index, not a "
        "feature (--index-col none: use it as a feature)\n"
    )
    summary = json.loads(captured.out)
    assert summary["n_features"] == 2 and summary["features"] == ["x", "y"]
    assert summary["index_column"] == "column 1"
    expected = fastap.AffinityPropagation(random_state=0).fit(blobs)
    assert summary["exemplars"] == expected.cluster_centers_indices_.tolist()

    # --index-col none: the index is a feature after all.
    assert main(["fit", str(data), "--index-col", "none", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["features"] == ["column 1", "x", "y"] and summary["index_column"] is None


def test_csv_columns_by_name_or_number(tmp_path, blobs, capsys):
    data = tmp_path / "points.csv"
    weight = np.arange(len(blobs), dtype=float)[:, None] * 1000  # not a feature
    np.savetxt(data, np.hstack([weight, blobs]), delimiter=",", header="w,x,y", comments="")
    expected = fastap.AffinityPropagation(random_state=0).fit(blobs[:, ::-1])
    for columns in ("y,x", "3,2", "y,2"):
        assert main(["fit", str(data), "--columns", columns, "--no-progress"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["features"] == ["y", "x"]
        assert summary["exemplars"] == expected.cluster_centers_indices_.tolist()


def test_csv_header_names_label_the_plot_axes(tmp_path, blobs, monkeypatch, capsys):
    from matplotlib.figure import Figure

    axis_labels = []
    original = Figure.savefig

    def savefig(figure, *args, **kwargs):
        axis_labels.append((figure.axes[0].get_xlabel(), figure.axes[0].get_ylabel()))
        return original(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    data = tmp_path / "points.csv"
    np.savetxt(data, blobs, delimiter=",", header="height,width", comments="")
    png = str(tmp_path / "p.png")
    assert main(["fit", str(data), "--plot", png, "--no-progress"]) == 0
    assert axis_labels == [("height", "width")]


def test_fit_that_does_not_converge_says_what_to_do(tmp_path, blobs, capsys):
    from fastap._advice import not_converged_advice

    data = tmp_path / "points.npy"
    np.save(data, blobs)
    args = ["fit", str(data), "--max-iter", "20", "--labels-out", str(tmp_path / "l.csv")]
    assert main(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    # The reference: the same fit's own record of its exemplar changes.
    reference = fastap.AffinityPropagation(random_state=0, max_iter=20, record_history=True)
    with pytest.warns(Warning):
        reference.fit(blobs)
    assert not reference.converged_ and summary["converged"] is False
    expected = not_converged_advice(
        reference.history_["n_changed"], n_iter=20, max_iter=20, damping=0.5, adaptive=False,
        n_exemplars=len(reference.cluster_centers_indices_), style="cli",
    )
    assert summary["advice"] == expected
    assert "--max-iter" in expected and "max_iter=" not in expected
    assert summary["non_convergence"] in ("oscillation", "slow_drift")
    assert captured.err.splitlines()[-1] == f"fastap fit: what to do: {expected}"
    # scikit-learn's sentence, without the library's Python-spelled advice.
    assert captured.err.splitlines()[0] == (
        "fastap fit: warning: Affinity propagation did not converge, this model may return "
        "degenerate cluster centers and labels."
    )
    assert "max_iter=" not in captured.err and 'damping="auto"' not in captured.err


def test_converged_fit_has_no_advice(tmp_path, blobs, capsys):
    data = tmp_path / "points.npy"
    np.save(data, blobs)
    assert main(["fit", str(data), "--labels-out", str(tmp_path / "l.csv")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["converged"] is True
    assert summary["advice"] is None and summary["non_convergence"] is None


def test_fit_with_nearest_neighbors_from_the_command_line(tmp_path, blobs, capsys):
    data = tmp_path / "points.npy"
    np.save(data, blobs)
    args = ["fit", str(data), "--affinity", "nearest_neighbors", "--n-neighbors", "10",
            "--labels-out", str(tmp_path / "l.csv"), "--no-progress"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    expected = fastap.AffinityPropagation(
        affinity="nearest_neighbors", n_neighbors=10, random_state=0
    ).fit(blobs)
    assert summary["affinity"] == "nearest_neighbors"
    assert summary["parameters"]["n_neighbors"] == 10
    assert summary["exemplars"] == expected.cluster_centers_indices_.tolist()
    table = read_labels(str(tmp_path / "l.csv"))
    np.testing.assert_array_equal(table[:, 1], expected.labels_)


def test_library_messages_in_the_options_words():
    words = _cli_fit.in_command_line_words
    assert words("use affinity='nearest_neighbors' or float32 input (1 GiB)") == (
        "use --affinity nearest_neighbors or --dtype float32 (1 GiB)"
    )
    assert words("The 'max_iter' parameter of AffinityPropagation must be an int") == (
        "--max-iter must be an int"
    )
    assert words('try damping="auto" with max_iter=1000') == (
        "try --damping auto with --max-iter 1000"
    )
    assert words("n_clusters is not supported") == "--n-clusters is not supported"
    assert words("the damping was raised") == "the damping was raised"  # a word, not a name


def test_same_partition_ignores_the_cluster_numbers():
    from sklearn.metrics import adjusted_rand_score

    a = np.array([0, 0, 1, 1, 2, 2])
    for b, same in (
        (np.array([2, 2, 0, 0, 1, 1]), True),  # renumbered
        (np.array([0, 0, 1, 1, 1, 1]), False),  # two clusters merged
        (np.array([0, 1, 2, 3, 4, 5]), False),  # split
    ):
        assert _cli.same_partition(a, b) is same
        assert (adjusted_rand_score(a, b) == 1.0) is same  # the reference


def demo_times(out):
    """The fit times of the demo's table, by implementation."""
    return {line.split()[0]: float(line.split()[1].rstrip("s")) for line in out.splitlines()
            if line.startswith(("fastap ", "scikit-learn "))}


def test_demo_on_a_busy_machine_gives_the_times_but_no_speedup(monkeypatch, capsys):
    # Issue 18: "Speed-up: 0.1x" on a busy machine compared the load, not
    # the libraries.
    monkeypatch.setattr(_cli, "machine_load", lambda: (3.0, 2, True))
    assert main(["demo", "--n-samples", "200"]) == 0
    out = capsys.readouterr().out
    assert "Machine load before timing: 3.0 of 2 cores in use (busy: other processes are using " \
        "the cores)" in out
    assert set(demo_times(out)) == {"fastap", "scikit-learn"}  # both times still shown
    speedup = [line for line in out.splitlines() if line.startswith("Speed-up")]
    assert speedup == [
        "Speed-up: not given: other processes were using 3.0 of the 2 cores, which slows "
        "fastap's parallel fit more than scikit-learn's serial one, so the ratio of the two "
        "times above would mislead (rerun on a quiet machine)"
    ]
    assert "Same clusters as scikit-learn: yes (adjusted Rand index 1.000)" in out


def test_demo_on_a_quiet_machine_gives_the_ratio_of_its_times(monkeypatch, capsys):
    monkeypatch.setattr(_cli, "machine_load", lambda: (0.1, 2, False))
    assert main(["demo", "--n-samples", "200"]) == 0
    out = capsys.readouterr().out
    assert "Machine load before timing: 0.1 of 2 cores in use (quiet)" in out
    assert set(demo_times(out)) == {"fastap", "scikit-learn"}
    speedup = [line for line in out.splitlines() if line.startswith("Speed-up")]
    assert len(speedup) == 1 and re.fullmatch(r"Speed-up: [0-9]+\.[0-9]x", speedup[0])
    # The ratio is scikit-learn's time over fastap's; busy or not decides alone.
    assert _cli.speedup_words(3.0, 0.5, 0.1, 2, False) == "Speed-up: 6.0x"
    assert _cli.speedup_words(3.0, 0.5, 1.5, 2, True).startswith("Speed-up: not given: ")


def test_demo_float32_compares_partitions(capsys):
    assert main(["demo", "--n-samples", "300", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "identical labels" not in out
    assert "Same clusters as scikit-learn: yes (adjusted Rand index 1.000)" in out


def test_demo_with_nearest_neighbors(capsys):
    args = ["demo", "--n-samples", "300", "--affinity", "nearest_neighbors", "--n-neighbors",
            "20", "--no-compare"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "fastap: affinity='nearest_neighbors', n_neighbors=20" in out


def test_demo_n_neighbors_needs_its_affinity(capsys):
    assert main(["demo", "--n-neighbors", "5"]) == 2  # a usage error, as argparse's
    assert capsys.readouterr().err == (
        "fastap demo: error: --n-neighbors applies to --affinity nearest_neighbors only "
        "(see fastap demo --help)\n"
    )


# --------------------------------------------------------------------------
# Issue 18: CSV files as pandas writes them, usage errors, square features.
# --------------------------------------------------------------------------


@pytest.fixture
def fit_file(capsys):
    """``fit_file(path, *options)``: ``(summary, stderr, labels file text)``
    of ``fastap fit path``."""

    def fit(path, *options):
        labels = f"{path}.labels"
        assert main(["fit", str(path), "--no-progress", "--labels-out", labels, *options]) == 0
        captured = capsys.readouterr()
        with open(labels) as file:
            return json.loads(captured.out), captured.err, file.read()

    return fit


INDEX_NOTE = (
    "fastap fit: note: column 1 (unnamed, 0 to 119) is the row index, not a feature "
    "(--index-col none: use it as a feature)\n"
)
HEADER_NOTE = (
    'fastap fit: note: the first line ("0,1") is taken as a header (pandas\' default column '
    "names), not a sample (--no-header: read it as one)\n"
)
IDS = [f"id{i}" for i in range(120)]

PANDAS_FILES = {
    # case: (write the frame, features, index column, the notes, row names)
    "to_csv()": (lambda f, p: f.to_csv(p), ["0", "1"], "column 1", INDEX_NOTE, None),
    "to_csv(index=False)": (lambda f, p: f.to_csv(p, index=False), ["0", "1"], None,
                            HEADER_NOTE, None),
    "to_csv(header=False)": (lambda f, p: f.to_csv(p, header=False), None, "column 1",
                             INDEX_NOTE, None),
    "to_csv(index=False, header=False)": (
        lambda f, p: f.to_csv(p, index=False, header=False), None, None, "", None
    ),
    "named columns": (
        lambda f, p: f.rename(columns={0: "x", 1: "y"}).to_csv(p, index=False), ["x", "y"],
        None, "", None,
    ),
    "named columns and index": (
        lambda f, p: f.rename(columns={0: "x", 1: "y"}).to_csv(p), ["x", "y"], "column 1",
        INDEX_NOTE, None,
    ),
    "string ids, named": (
        lambda f, p: f.set_axis(pd_index(IDS, "name")).to_csv(p), ["0", "1"], 'column "name"',
        'fastap fit: note: the first line ("name,0,1") is taken as a header (pandas\' default '
        "column names), not a sample (--no-header: read it as one)\n"
        'fastap fit: note: column "name" holds row names (e.g. "id0"), not numbers: it is the '
        "row index, not a feature\n", IDS,
    ),
    "string ids, named, named columns": (
        lambda f, p: f.set_axis(pd_index(IDS, "name")).set_axis(["x", "y"], axis=1).to_csv(p),
        ["x", "y"], 'column "name"',
        'fastap fit: note: column "name" holds row names (e.g. "id0"), not numbers: it is the '
        "row index, not a feature\n", IDS,
    ),
    "string ids, unnamed": (
        lambda f, p: f.set_axis(pd_index(IDS)).to_csv(p), ["0", "1"], "column 1",
        'fastap fit: note: column 1 holds row names (e.g. "id0"), not numbers: it is the row '
        "index, not a feature\n", IDS,
    ),
    "string ids, no header": (
        lambda f, p: f.set_axis(pd_index(IDS)).to_csv(p, header=False), None, "column 1",
        'fastap fit: note: column 1 holds row names (e.g. "id0"), not numbers: it is the row '
        "index, not a feature\n", IDS,
    ),
    "an index that is not 0..n-1": (
        lambda f, p: f.set_axis(pd_index(range(1000, 1120))).to_csv(p), ["0", "1"],
        "column 1",
        'fastap fit: note: column 1 (unnamed, e.g. "1000") is the row index, not a feature '
        "(--index-col none: use it as a feature)\n", [str(i) for i in range(1000, 1120)],
    ),
}


def pd_index(values, name=None):
    import pandas as pd

    return pd.Index(list(values), name=name)


@pytest.mark.parametrize("case", list(PANDAS_FILES))
def test_fit_reads_csv_files_as_pandas_writes_them(tmp_path, blobs, fit_file, case):
    # Issue 18: a header of pandas' column names (0,1) was not seen: a sample
    # too many (every label shifted) or "row 1, column 1: empty".
    pd = pytest.importorskip("pandas")
    write_frame, features, index_column, notes, row_names = PANDAS_FILES[case]
    path = tmp_path / "points.csv"
    write_frame(pd.DataFrame(blobs), path)
    summary, err, labels_text = fit_file(path)
    assert summary["n_samples"] == len(blobs) and summary["n_features"] == 2
    assert summary["features"] == features and summary["index_column"] == index_column
    assert err == notes
    expected = fastap.AffinityPropagation(random_state=0).fit(blobs)
    assert summary["exemplars"] == expected.cluster_centers_indices_.tolist()
    # The labels file: the row names when the file has them, else 0..n-1;
    # the exemplar is named the same way.
    lines = labels_text.splitlines()
    assert lines[0] == "sample,label,exemplar" and len(lines) == len(blobs) + 1
    names = row_names or [str(i) for i in range(len(blobs))]
    exemplars = expected.cluster_centers_indices_[expected.labels_]
    assert lines[1:] == [f"{names[i]},{label},{names[exemplars[i]]}"
                         for i, label in enumerate(expected.labels_)]
    # pandas reads it back aligned with the data's own index.
    if index_column is not None:
        back = pd.read_csv(path, index_col=0, header=0 if features else None)
        labels = pd.read_csv(f"{path}.labels", index_col=0)
        assert [str(name) for name in labels.index] == [str(name) for name in back.index]


def test_fit_header_options_decide_what_detection_cannot(tmp_path, blobs, fit_file):
    # Column names that are decimals (wavelengths) look like a sample.
    path = tmp_path / "spectra.csv"
    np.savetxt(path, blobs, delimiter=",", header="0.5,1.5", comments="")
    summary, _, _ = fit_file(path)
    assert summary["n_samples"] == len(blobs) + 1 and summary["features"] is None
    summary, err, _ = fit_file(path, "--header")
    assert summary["n_samples"] == len(blobs) and summary["features"] == ["0.5", "1.5"]
    assert err == ""
    expected = fastap.AffinityPropagation(random_state=0).fit(blobs)
    assert summary["exemplars"] == expected.cluster_centers_indices_.tolist()

    # Integer samples whose first one happens to be 0,1: taken for pandas'
    # names, with a note; --no-header reads it as the sample it is.
    integers = np.vstack([[0, 1], np.rint(blobs * 3)]).astype(np.int64)
    path = tmp_path / "counts.csv"
    np.savetxt(path, integers, fmt="%d", delimiter=",")
    summary, err, _ = fit_file(path)
    assert summary["n_samples"] == len(integers) - 1 and err == HEADER_NOTE
    summary, err, labels_text = fit_file(path, "--no-header")
    assert summary["n_samples"] == len(integers) and err == ""
    expected = fastap.AffinityPropagation(random_state=0).fit(integers)
    assert summary["exemplars"] == expected.cluster_centers_indices_.tolist()
    assert len(labels_text.splitlines()) == len(integers) + 1

    # Integers above decimals: a header (csv.Sniffer's type comparison).
    path = tmp_path / "thresholds.csv"
    np.savetxt(path, blobs, delimiter=",", header="10,20", comments="")
    summary, err, _ = fit_file(path)
    assert summary["n_samples"] == len(blobs) and summary["features"] == ["10", "20"]
    assert err == (
        'fastap fit: note: the first line ("10,20") is taken as a header (integers above '
        "columns of decimals), not a sample (--no-header: read it as one)\n"
    )


def test_fit_index_col_with_pandas_numeric_header(tmp_path, blobs, fit_file):
    pd = pytest.importorskip("pandas")
    path = tmp_path / "points.csv"
    pd.DataFrame(blobs).to_csv(path)
    summary, err, _ = fit_file(path, "--index-col", "1")  # read 121 samples before
    assert summary["n_samples"] == len(blobs) and summary["features"] == ["0", "1"]
    assert err == ""


def test_fit_text_column_error_points_at_index_col(tmp_path, blobs, capsys):
    # A column of categories (repeated texts) is not taken as row names, but
    # the error says how to leave it out.
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(blobs, columns=["x", "y"])
    frame.insert(0, "kind", ["a", "b"] * (len(blobs) // 2))
    path = tmp_path / "kinds.csv"
    frame.to_csv(path, index=False)
    assert main(["fit", str(path), "--no-progress"]) == 1
    assert capsys.readouterr().err == (
        f'fastap fit: error: {path}, row 2, column "kind": "a" is not a number (a column of '
        'names, not a feature? --index-col "kind" takes it as the row names; --columns '
        "chooses the features)\n"
    )
    assert main(["fit", str(path), "--index-col", "kind", "--no-progress",
                 "--labels-out", str(tmp_path / "l.csv")]) == 0
    assert json.loads(capsys.readouterr().out)["n_samples"] == len(blobs)
    # A typo among numbers gets no such hint.
    path = tmp_path / "typo.csv"
    path.write_text("x,y\n1,2\n3,4\n5,y6\n")
    assert main(["fit", str(path), "--no-progress"]) == 1
    assert capsys.readouterr().err == (
        f'fastap fit: error: {path}, row 4, column "y": "y6" is not a number\n'
    )


USAGE_ERRORS = {
    # case: (the file, options, the message); exit code 2 as argparse's.
    "precomputed and another affinity": (
        "x.csv", ["--precomputed", "--affinity", "cosine"],
        "--precomputed and --affinity cosine contradict each other (--precomputed is "
        "--affinity precomputed)",
    ),
    "n_neighbors without its affinity": (
        "x.csv", ["--n-neighbors", "5"],
        "--n-neighbors applies to --affinity nearest_neighbors only",
    ),
    "preference and its quantile": (
        "x.csv", ["--preference", "-5", "--preference-quantile", "0.1"],
        "--preference and --preference-quantile both set the preference: give one",
    ),
    "header and no header": (
        "x.csv", ["--header", "--no-header"],
        "argument --no-header: not allowed with argument --header",
    ),
    "key for a csv": (
        "x.csv", ["--key", "S"], "--key chooses an array in a .npz file; a .csv file has none",
    ),
    "delimiter for a .npy": ("x.npy", ["--delimiter", ";"],
                             "--delimiter applies to .csv files only"),
    "index-col for a .npy": ("x.npy", ["--index-col", "1"],
                             "--index-col applies to .csv files only"),
    "header for a .npy": ("x.npy", ["--header"], "--header applies to .csv files only"),
    "index column chosen as a feature": (
        "x.csv", ["--index-col", "1", "--columns", "1,2"],
        "column 1 is the row index, not a feature (--index-col none to use it)",
    ),
}


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_fit_conflicting_options_are_usage_errors(tmp_path, capsys, case):
    # Issue 18: these exited with 1, as a failed fit does.
    name, options, message = USAGE_ERRORS[case]
    path = write(tmp_path / name, "1,2\n3,4\n9,9\n" if name.endswith(".csv") else np.eye(3, 2))
    try:
        code = main(["fit", path, "--no-progress", *options])
    except SystemExit as raised:  # argparse's own
        code = raised.code
    assert code == 2
    assert capsys.readouterr().err == f"fastap fit: error: {message} (see fastap fit --help)\n"


SQUARE_WARNING = (
    "fastap fit: warning: {path} is a square symmetric matrix and no --affinity: it is "
    "treated as features (--affinity euclidean). If it holds similarities, pass "
    "--precomputed; pass --affinity euclidean to silence this warning.\n"
)


def test_fit_square_symmetric_npy_without_precomputed_warns(tmp_path, blobs, capsys):
    # Issue 18: treated as features silently; preference_range warns.
    S = similarities(blobs)
    path = tmp_path / "sim.npy"
    np.save(path, S)
    labels = ["--labels-out", str(tmp_path / "l.csv"), "--no-progress"]
    assert main(["fit", str(path), *labels]) == 0
    captured = capsys.readouterr()
    assert captured.err == SQUARE_WARNING.format(path=path)
    assert json.loads(captured.out)["n_features"] == len(blobs)  # features, as before
    # The library's own warning, for the same matrix: the same advice.
    with pytest.warns(UserWarning, match="square symmetric matrix and no affinity"):
        fastap.preference_range(S)
    # Silenced by naming the affinity; no warning where it is not symmetric
    # (a symmetric matrix larger than the check's block of rows still is).
    for options, data in (
        (["--affinity", "euclidean"], S),
        ([], S + np.triu(np.ones_like(S))),
        (["--precomputed"], S),
    ):
        np.save(path, data)
        assert main(["fit", str(path), *labels, *options]) == 0
        assert capsys.readouterr().err == ""


def test_square_symmetric_check_reads_every_block(monkeypatch, capsys):
    # The check compares blocks of rows (1997 of 2100 here); a pair that
    # only the last block holds counts.
    X = np.zeros((2100, 2100))
    X[-1, -2] = 1.0
    _cli_fit.warn_if_looks_like_similarities("x.npy", X)
    assert capsys.readouterr().err == ""
    X[-2, -1] = 1.0
    _cli_fit.warn_if_looks_like_similarities("x.npy", X)
    assert capsys.readouterr().err == SQUARE_WARNING.format(path="x.npy")


@pytest.mark.parametrize("command", ["demo", "fit", "info", "warmup"])
def test_every_subcommand_help_has_a_description(command, capsys):
    # Issue 18: `fastap demo --help` had no description.
    import argparse

    commands = next(action for action in _cli._parser()._actions
                    if isinstance(action, argparse._SubParsersAction))
    assert sorted(commands.choices) == ["demo", "fit", "info", "warmup"]
    description = commands.choices[command].description
    assert description and len(description.split()) >= 12
    with pytest.raises(SystemExit) as raised:
        main([command, "--help"])
    assert raised.value.code == 0
    # (argparse wraps the lines, also at hyphens: compare without the spaces)
    assert "".join(description.split()) in "".join(capsys.readouterr().out.split())


def test_warmup_chooses_groups_and_prints_each_time(monkeypatch, capsys):
    from fastap._warmup import warmup_groups

    calls = []

    def fake_warmup(report, **options):
        calls.append(options)
        report("dense float64 stored", 1.25)
        return {}

    monkeypatch.setattr(fastap, "warmup", fake_warmup)
    assert main(["warmup", "--dtype", "float64", "--engine", "stored", "--no-sparse"]) == 0
    assert calls == [dict(dtypes=["float64"], engines=["stored"], sparse=False, dask=False)]
    out = capsys.readouterr().out
    assert "dense float64 stored" in out and "1.2 s" in out and "compiled and cached" in out
    names = [name for name, _ in warmup_groups(["float32"], None, sparse=True, dask=True)]
    assert names == ["dense float32 lean", "dense float32 stored", "set-up float32",
                     "sparse float32", "dask float32"]
    assert [name for name, _ in warmup_groups(["float32"], ["compact"], sparse=False)] == [
        "dense float32 compact", "set-up float32"]
    with pytest.raises(ValueError, match="engine must be one of"):
        warmup_groups(["float64"], ["fast"])
