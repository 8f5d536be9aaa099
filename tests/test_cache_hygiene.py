"""The kernel cache: its key follows what changes the machine code, and
processes that compile into one empty cache at once neither crash nor load
half-written files (issue 17)."""

import json
import os
import subprocess
import sys

import pytest

CACHE_DIRECTORY = "from fastap._kernels import _jit; print(_jit.cache_directory())"


def cache_directory_with(**settings):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(FASTAP_CACHE_DIR="/tmp/fastap-key-test", **settings)
    return subprocess.run([sys.executable, "-c", CACHE_DIRECTORY], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_the_cache_key_follows_numba_opt_and_the_cpu():
    default = cache_directory_with()
    assert cache_directory_with() == default  # deterministic
    assert cache_directory_with(NUMBA_OPT="0") != default
    assert cache_directory_with(NUMBA_OPT="3") == default  # the default level
    assert cache_directory_with(NUMBA_LOOP_VECTORIZE="0") != default
    assert cache_directory_with(NUMBA_CPU_NAME="generic") != default


def test_machine_key_names_the_cpu_and_the_settings():
    import llvmlite.binding as llvm

    from fastap._kernels import _jit

    key = _jit.machine_key()
    assert llvm.get_host_cpu_name() in key
    assert all(f"{setting}=" in key for setting in _jit.CODEGEN_SETTINGS)


FIT = r"""
import json, sys, warnings
import numpy as np
from fastap import AffinityPropagation
import fastap._kernels as kernels, importlib, pkgutil
X = np.random.RandomState(0).standard_normal((24, 2))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    model = AffinityPropagation(random_state=0, max_iter=20, n_jobs=1).fit(X)
hits = misses = 0
for module in pkgutil.iter_modules(kernels.__path__):
    mod = importlib.import_module("fastap._kernels." + module.name)
    for value in vars(mod).values():
        stats = getattr(value, "stats", None)
        if stats is not None and getattr(value, "signatures", None):
            hits += sum(stats.cache_hits.values())
            misses += sum(stats.cache_misses.values())
print(json.dumps({"labels": model.labels_.tolist(), "hits": hits, "misses": misses}))
"""


@pytest.mark.timeout(900)
def test_concurrent_compiles_into_one_empty_cache(tmp_path):
    env = dict(os.environ, FASTAP_CACHE_DIR=str(tmp_path), FASTAP_COLD_START="compiled")
    # Three processes compile the same kernels into the same folder at once.
    runs = [subprocess.Popen([sys.executable, "-c", FIT], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [run.communicate() for run in runs]
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, err
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert all(r["labels"] == results[0]["labels"] for r in results)
    assert all(r["misses"] > 0 for r in results)  # each compiled (nothing was cached)
    # A later process loads every kernel from the cache they wrote.
    later = subprocess.run([sys.executable, "-c", FIT], env=env, check=True,
                           capture_output=True, text=True)
    loaded = json.loads(later.stdout.strip().splitlines()[-1])
    assert loaded["labels"] == results[0]["labels"]
    assert loaded["misses"] == 0 and loaded["hits"] > 0
