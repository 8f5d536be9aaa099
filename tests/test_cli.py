"""The command line of the README's quick start."""

import subprocess
import sys

from fastap._cli import main


def test_demo_runs_and_compares_with_sklearn(capsys):
    assert main(["demo", "--n-samples", "300"]) == 0
    out = capsys.readouterr().out
    assert "fastap" in out and "scikit-learn" in out
    assert "identical labels: True" in out


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
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr
    assert "--n-samples must be at least 1" in completed.stderr


# --------------------------------------------------------------------------
# fastap fit
# --------------------------------------------------------------------------

import json  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.datasets import make_blobs  # noqa: E402

import fastap  # noqa: E402
from fastap import _cli_fit, _engine  # noqa: E402


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
    "missing file": (lambda d: str(d / "nope.csv"), [], "no such file"),
    "unsupported suffix": (lambda d: write(d / "x.txt", "1,2\n"), [], "unsupported file type"),
    "not numbers": (lambda d: write(d / "x.csv", "a,b\n1,x\n"), [], "cannot read"),
    "empty file": (lambda d: write(d / "x.csv", ""), [], "no data"),
    "ragged rows": (lambda d: write(d / "x.csv", "1,2\n3\n"), [], "cannot read"),
    "NaN": (lambda d: write(d / "x.csv", "1,2\nnan,3\n4,5\n"), [], "NaN"),
    "3-D array": (lambda d: write(d / "x.npy", np.zeros((2, 2, 2))), [], "2-D"),
    "strings": (lambda d: write(d / "x.npy", np.array([["a"]])), [], "numeric"),
    "not square": (lambda d: write(d / "x.npy", np.zeros((3, 4))), ["--precomputed"], "square"),
    "npz without key": (
        lambda d: (np.savez(d / "x.npz", a=np.zeros((2, 2)), b=np.zeros((2, 2))), str(d / "x.npz"))[
            1
        ],
        [],
        "--key",
    ),
    "npz wrong key": (
        lambda d: (np.savez(d / "x.npz", a=np.zeros((2, 2))), str(d / "x.npz"))[1],
        ["--key", "b"],
        "no array 'b'",
    ),
    "bad damping": (
        lambda d: write(d / "x.csv", "1,2\n3,4\n9,9\n"),
        ["--damping", "1.5"],
        "damping",
    ),
    "bad max-iter": (
        lambda d: write(d / "x.csv", "1,2\n3,4\n9,9\n"),
        ["--max-iter", "0"],
        "max_iter",
    ),
    "plot not png": (lambda d: write(d / "x.csv", "1,2\n3,4\n9,9\n"), ["--plot", "x.jpg"], "PNG"),
    "labels dir missing": (
        lambda d: write(d / "x.csv", "1,2\n3,4\n9,9\n"),
        ["--labels-out", "/nonexistent-dir/l.csv"],
        "nonexistent-dir",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_fit_bad_input_is_one_line_error(tmp_path, capsys, case):
    make, extra, expected = BAD_INPUTS[case]
    path = make(tmp_path)
    assert main(["fit", path, "--no-progress", *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastap fit: error: ")
    assert err.count("\n") == 1, err
    assert expected in err


def test_fit_matrix_too_big_for_memory_is_one_line_error(tmp_path, monkeypatch, capsys):
    data = tmp_path / "sim.npy"
    np.save(data, np.zeros((50, 50)))
    monkeypatch.setattr(_engine, "available_memory_bytes", lambda: 1000)
    for extra in ([], ["--dtype", "float32"]):
        assert main(["fit", str(data), "--precomputed", "--no-progress", *extra]) == 1
        err = capsys.readouterr().err
        assert err.startswith("fastap fit: error: Affinity propagation on 50 samples")
        assert err.count("\n") == 1


def test_fit_interrupt_exits_130(tmp_path, monkeypatch, capsys):
    data = tmp_path / "x.csv"
    data.write_text("1,2\n3,4\n5,6\n")

    def interrupted(self, X, y=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(fastap.AffinityPropagation, "fit", interrupted)
    assert main(["fit", str(data), "--no-progress"]) == 130
    assert capsys.readouterr().err == "fastap fit: interrupted\n"


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


def test_progress_bar_redraws_in_place_on_a_terminal():
    stream = FakeStream(tty=True)
    bar = _cli_fit.ProgressBar(max_iter=10, stream=stream, width=10)
    assert bar(info(5, 7, 2)) is False  # never stops the fit
    bar(info(6))  # within 0.1 s: skipped
    bar.close()
    assert stream.text == ("\r[#####.....] iteration 5/10  exemplars 7  changed 2  1.2 s\x1b[K\n")


def test_progress_bar_writes_lines_elsewhere():
    stream = FakeStream(tty=False)
    bar = _cli_fit.ProgressBar(max_iter=4, stream=stream, width=4)
    bar(info(4, 3, 0))
    bar.close()
    assert stream.text == "[####] iteration 4/4  exemplars 3  changed 0  1.0 s\n"


def test_fit_progress_goes_to_stderr_and_leaves_results_alone(tmp_path, blobs, capsys):
    data = tmp_path / "points.npy"
    np.save(data, blobs)
    labels = tmp_path / "labels.csv"
    assert main(["fit", str(data), "--labels-out", str(labels), "--progress"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    # pytest's stderr is not a terminal: a line at most once a second, the first at once.
    lines = captured.err.splitlines()
    assert lines and lines[0].startswith("[") and "iteration 1/200" in lines[0]
    assert "exemplars" in lines[0] and "changed" in lines[0]
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
    # Both at once is the estimator's error, on one line.
    assert main(["fit", str(data), "--preference", "-5", "--preference-quantile", "0.1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastap fit: error: ") and err.count("\n") == 1


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
    data.write_text("1,2\n3,4\n10,10\n11,11\n")
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
