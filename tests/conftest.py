import faulthandler
import os
import signal
import sys

# Numba reads its thread pool size once, at import: raise it above the core
# count so that the thread-invariance tests really run 3 and 7 threads on a
# 2-core machine (Numba caps a request at the pool size). The tests' default
# count is set back to the cores below, so ordinary tests are not slowed by
# oversubscription.
# (Only before Numba is imported: a changed value afterwards makes Numba's
# next compilation fail.)
if "numba" not in sys.modules:
    os.environ.setdefault("NUMBA_NUM_THREADS", "8")

# scikit-learn's estimator checks run their array-API check (with NumPy
# arrays) only when SciPy was imported with this set; otherwise they skip it.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numba  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
DEFAULT_TEST_THREADS = max(1, min(CORES or 1, numba.config.NUMBA_NUM_THREADS))
numba.set_num_threads(DEFAULT_TEST_THREADS)

# CI must not depend on luck: every run draws the same examples. A developer
# who wants fresh examples runs with HYPOTHESIS_PROFILE=explore.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("explore", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "timeout(seconds): fail the test when it runs longer than this (for tests that wait)",
    )


@pytest.fixture(autouse=True)
def _time_limit(request):
    """Fail a test marked ``@pytest.mark.timeout(s)`` that runs past ``s`` seconds.

    A SIGALRM handler raises in the test (fastap runs its iterations in chunks
    from Python, so the exception lands between two chunks); if even that does
    not end it, faulthandler dumps the stacks and exits, so CI never hangs.
    """
    marker = request.node.get_closest_marker("timeout")
    if marker is None or not hasattr(signal, "SIGALRM"):
        yield
        return
    seconds = int(marker.args[0])

    def on_alarm(signum, frame):
        raise TimeoutError(f"{request.node.nodeid} ran past its {seconds} s time limit")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    faulthandler.dump_traceback_later(seconds + 60, exit=True)
    try:
        yield
    finally:
        signal.alarm(0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def _default_thread_count():
    """Every test starts at the default thread count, whatever the last one set."""
    numba.set_num_threads(DEFAULT_TEST_THREADS)
    yield


@pytest.fixture(params=[np.float64, np.float32], ids=["float64", "float32"])
def float_dtype(request):
    return request.param


