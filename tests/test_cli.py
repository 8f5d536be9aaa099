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
