"""Whole fits, fastap against scikit-learn, side by side in the same run."""

import warnings

import numpy as np

from .common import DTYPES, IMPLEMENTATIONS, SIZES, THREADS, Benchmark
from .datasets import blobs


def make_estimator(implementation, n_jobs):
    if implementation == "fastap":
        from fastap import AffinityPropagation

        return AffinityPropagation(random_state=0, n_jobs=n_jobs)
    from sklearn.cluster import AffinityPropagation

    return AffinityPropagation(random_state=0)


class Fit(Benchmark):
    """``fit`` time and peak memory; scikit-learn ignores the thread count."""

    param_names = ["implementation", "n_samples", "dtype", "n_jobs"]
    params = [IMPLEMENTATIONS, SIZES, DTYPES, THREADS]

    def setup(self, implementation, n_samples, dtype, n_jobs):
        if implementation == "sklearn" and n_jobs != 1:
            raise NotImplementedError  # scikit-learn runs on one thread: skip the duplicate
        self.X = blobs(n_samples, dtype)
        if implementation == "fastap":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                make_estimator("fastap", n_jobs).set_params(max_iter=2).fit(self.X[:500])

    def time_fit(self, implementation, n_samples, dtype, n_jobs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make_estimator(implementation, n_jobs).fit(self.X)

    def peakmem_fit(self, implementation, n_samples, dtype, n_jobs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make_estimator(implementation, n_jobs).fit(self.X)


class Agreement(Benchmark):
    """Correctness beside speed: agreement of fastap with scikit-learn."""

    param_names = ["n_samples", "dtype"]
    params = [SIZES, DTYPES]

    def setup(self, n_samples, dtype):
        from sklearn.metrics import adjusted_rand_score

        X = blobs(n_samples, dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.ours = make_estimator("fastap", None).fit(X)
            self.theirs = make_estimator("sklearn", 1).fit(X)
        self.ari = adjusted_rand_score(self.ours.labels_, self.theirs.labels_)

    def track_adjusted_rand_index(self, n_samples, dtype):
        return self.ari

    def track_same_centers(self, n_samples, dtype):
        return float(
            np.array_equal(self.ours.cluster_centers_indices_, self.theirs.cluster_centers_indices_)
        )

    def track_n_iter_difference(self, n_samples, dtype):
        return self.ours.n_iter_ - self.theirs.n_iter_
