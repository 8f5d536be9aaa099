"""One AP iteration against the memory-bandwidth floor, in the same run."""

import numba
import numpy as np

from .common import DTYPES, SIZES, Benchmark
from .floor import stream_three_write_two


class Iteration(Benchmark):
    param_names = ["kernel", "n_samples", "dtype"]
    params = [["fastap", "floor"], SIZES, DTYPES]
    number = 5
    repeat = (1, 5, 30.0)

    def setup(self, kernel, n_samples, dtype):
        from fastap._dense import DenseMessageState

        rng = np.random.RandomState(0)
        self.S = -rng.rand(n_samples, n_samples).astype(dtype)
        self.state = DenseMessageState(
            self.S, damping=0.5, n_threads=numba.get_num_threads(), prepared=True
        )
        self.state.prepare()
        self.state.iterate()
        self.state.iterate()
        self.factor = self.S.dtype.type(0.5)
        stream_three_write_two(self.S, self.state.R, self.state.A, self.factor)

    def time_iteration(self, kernel, n_samples, dtype):
        if kernel == "fastap":
            self.state.iterate()
        else:
            stream_three_write_two(self.S, self.state.R, self.state.A, self.factor)
