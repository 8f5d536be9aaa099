"""What a newcomer waits for: import and first fit in a new process, with an
empty and a warm kernel cache, against scikit-learn's import and fit.

With an empty cache a small dense fit runs on the NumPy engine (no compile);
``time_first_fit_compiled`` forces the compiled engine
(``FASTAP_COLD_START=compiled``): the compile time the NumPy path avoids.
``asv_benchmarks/cold_start_report.py`` prints the same as a table.
"""

import os
import shutil
import subprocess
import sys
import tempfile

from .common import Benchmark

FIRST_FIT = (
    "import sys, numpy as np; "
    "from {module} import AffinityPropagation; "
    "from sklearn.datasets import make_blobs; "
    "X = make_blobs(n_samples=int(sys.argv[1]), n_features=8, centers=10, random_state=0)[0]; "
    "AffinityPropagation(random_state=0).fit(X.astype(sys.argv[2]))"
)


def _first_fit(module, n_samples, dtype, cache_dir, cold_start="auto"):
    env = dict(os.environ, FASTAP_CACHE_DIR=cache_dir, FASTAP_COLD_START=cold_start,
               PYTHONWARNINGS="ignore")
    subprocess.run([sys.executable, "-c", FIRST_FIT.format(module=module), str(n_samples),
                    dtype], check=True, env=env)


class ColdStart(Benchmark):
    param_names = ["cache", "n_samples", "dtype"]
    params = [["empty", "warm"], [50, 500, 2000], ["float64", "float32"]]
    repeat = (1, 2, 600.0)
    timeout = 600

    def setup(self, cache, n_samples, dtype):
        self.cache_dir = tempfile.mkdtemp(prefix="fastap-numba-cache-")
        if cache == "warm":
            _first_fit("fastap", n_samples, dtype, self.cache_dir, "compiled")

    def teardown(self, cache, n_samples, dtype):
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    def _empty_cache(self, cache):
        if cache == "empty":
            shutil.rmtree(self.cache_dir, ignore_errors=True)
            os.makedirs(self.cache_dir)

    def time_import_and_first_fit(self, cache, n_samples, dtype):
        self._empty_cache(cache)
        _first_fit("fastap", n_samples, dtype, self.cache_dir)

    def time_import_and_first_fit_compiled(self, cache, n_samples, dtype):
        self._empty_cache(cache)
        _first_fit("fastap", n_samples, dtype, self.cache_dir, "compiled")



class SklearnColdStart(Benchmark):
    """scikit-learn's import and fit of the same data in a new process."""

    param_names = ["n_samples", "dtype"]
    params = [[50, 500, 2000], ["float64", "float32"]]
    repeat = (1, 2, 600.0)
    timeout = 600

    def time_import_and_fit(self, n_samples, dtype):
        _first_fit("sklearn.cluster", n_samples, dtype, tempfile.gettempdir())
