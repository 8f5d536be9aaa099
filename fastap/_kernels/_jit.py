"""The one place where fastap's Numba compile options are spelled.

Every kernel is built through :func:`serial_kernel` or :func:`parallel_kernel`,
so changing a compile option is a one-line change here.

- ``cache=True``: a second process loads machine code from disk (~0.2 s)
  instead of recompiling (~10 s).
- ``nogil=True``: other Python threads keep running during a long fit.
- ``fastmath=False``: AP relies on ``-inf`` sentinels and on the exact
  rounding of every product and sum (bitwise parity with scikit-learn), so no
  reassociation, no contraction into FMA and no "no-inf" assumptions.
- ``error_model="numpy"``: no Python exception machinery in hot loops.
"""

import numba

_COMMON_OPTIONS = {
    "cache": True,
    "nogil": True,
    "fastmath": False,
    "error_model": "numpy",
    "boundscheck": False,
}


def serial_kernel(function):
    """Compile ``function`` as a single-threaded nopython kernel."""
    return numba.njit(**_COMMON_OPTIONS)(function)


def parallel_kernel(function):
    """Compile ``function`` as a kernel whose ``prange`` loops run on threads."""
    return numba.njit(parallel=True, **_COMMON_OPTIONS)(function)
