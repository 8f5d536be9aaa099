"""Data and helpers shared by the tests (a plain module: tests import it as
``from tests.data import ...``; fixtures stay in ``conftest.py``)."""

import _thread
import threading

import numpy as np
from sklearn.datasets import make_blobs


def blobs(n_samples, centers=10, n_features=8, cluster_std=1.0, random_state=0, dtype=np.float64):
    X, _ = make_blobs(
        n_samples=n_samples,
        n_features=n_features,
        centers=centers,
        cluster_std=cluster_std,
        random_state=random_state,
    )
    return X.astype(dtype)


def similarity(X):
    from sklearn.metrics import euclidean_distances

    return -euclidean_distances(X, squared=True)


class CtrlC:
    """Press Ctrl-C (``_thread.interrupt_main``) from another thread once a fit
    has run ``after`` iterations: no wall-clock timing involved.

    Pass the instance as the fit's ``callback`` and use it as a context
    manager around the fit. ``iterations`` counts the fit's iterations,
    ``sent_at`` is the count when the interrupt was sent.
    """

    def __init__(self, after=3):
        self.after = after
        self.iterations = 0
        self.sent_at = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._cancelled = False
        self._thread = threading.Thread(target=self._press, daemon=True)

    def __call__(self, info):
        self.iterations += 1
        if self.iterations >= self.after:
            self._ready.set()
        return False

    def _press(self):
        self._ready.wait()
        with self._lock:
            if self._cancelled:
                return
            _thread.interrupt_main()
            # The fit's thread does not wait for this one: the count read
            # after sending is at least the count when the interrupt landed.
            self.sent_at = self.iterations

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        with self._lock:
            self._cancelled = True  # the fit is over: no interrupt after this
        self._ready.set()
        self._thread.join()
        return False
