"""What a newcomer waits for: import and first fit, with an empty and a warm cache."""

import os
import subprocess
import sys
import tempfile

from .common import Benchmark

FIRST_FIT = (
    "import numpy as np, fastap; "
    "fastap.AffinityPropagation(random_state=0).fit(np.random.RandomState(0).rand(500, 4))"
)


class ColdStart(Benchmark):
    param_names = ["cache"]
    params = [["empty", "warm"]]
    repeat = (1, 2, 300.0)

    def setup(self, cache):
        self.cache_dir = tempfile.mkdtemp(prefix="fastap-numba-cache-")
        if cache == "warm":
            self._run()

    def _run(self):
        env = dict(os.environ, NUMBA_CACHE_DIR=self.cache_dir)
        subprocess.run([sys.executable, "-c", FIRST_FIT], check=True, env=env)

    def time_import_and_first_fit(self, cache):
        if cache == "empty":
            for entry in os.scandir(self.cache_dir):
                if entry.is_dir():
                    import shutil

                    shutil.rmtree(entry.path)
        self._run()
