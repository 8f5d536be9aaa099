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
    """Correctness beside speed: agreement of fastap with scikit-learn.

    Both fits of every (size, dtype) run once, in ``setup_cache``, and the
    three tracks read their outcome: three tracks must not mean three
    scikit-learn fits at N=5000.
    """

    param_names = ["n_samples", "dtype"]
    params = [SIZES, DTYPES]

    def setup_cache(self):
        from sklearn.metrics import adjusted_rand_score

        outcome = {}
        for n_samples in SIZES:
            for dtype in DTYPES:
                X = blobs(n_samples, dtype)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ours = make_estimator("fastap", None).fit(X)
                    theirs = make_estimator("sklearn", 1).fit(X)
                outcome[n_samples, dtype] = {
                    "ari": float(adjusted_rand_score(ours.labels_, theirs.labels_)),
                    "same_centers": float(
                        np.array_equal(
                            ours.cluster_centers_indices_, theirs.cluster_centers_indices_
                        )
                    ),
                    "n_iter_difference": int(ours.n_iter_ - theirs.n_iter_),
                }
        return outcome

    def track_adjusted_rand_index(self, outcome, n_samples, dtype):
        return outcome[n_samples, dtype]["ari"]

    def track_same_centers(self, outcome, n_samples, dtype):
        return outcome[n_samples, dtype]["same_centers"]

    def track_n_iter_difference(self, outcome, n_samples, dtype):
        return outcome[n_samples, dtype]["n_iter_difference"]


class Float32Engines(Benchmark):
    """float32 fits on the stored-R engine and the lean one (S and A only,
    R rebuilt on the fly), side by side: time and peak memory."""

    param_names = ["engine", "n_samples", "n_jobs"]
    params = [["stored", "lean"], SIZES, THREADS]

    def setup(self, engine, n_samples, n_jobs):
        self.X = blobs(n_samples, "float32")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._fit(engine, n_jobs, self.X[:500], max_iter=2)

    def _fit(self, engine, n_jobs, X, **params):
        from fastap import AffinityPropagation

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return AffinityPropagation(random_state=0, n_jobs=n_jobs, engine=engine,
                                       **params).fit(X)

    def time_fit(self, engine, n_samples, n_jobs):
        self._fit(engine, n_jobs, self.X)

    def peakmem_fit(self, engine, n_samples, n_jobs):
        self._fit(engine, n_jobs, self.X)
