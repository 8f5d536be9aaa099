"""Which path a dense fit takes while the kernels are not compiled.

Numba compiles fastap's kernels on first use (10-20 s on two cores); a fit
that would finish sooner in plain NumPy runs on the NumPy engine
(``_numpy_engine.py``) instead. The choice depends on the cache and on the
time spent, never the result: both paths compute the same bits (float64).

- **Compiled for this machine?** Numba has no public "is this signature
  cached" test, so fastap writes a marker file next to its kernel cache
  once an engine has run compiled (:func:`mark_compiled`); the cache folder
  is already specific to the kernel sources, Numba's version and the
  compile settings and the CPU, and the marker's name repeats the CPU
  (name and features, as Numba's ``magic_tuple`` has them: its cache
  entries are keyed on them). A stale marker (cache deleted by hand)
  costs a compile, never a wrong result.
- **Rent or buy.** While the kernels are not compiled, a fit runs in NumPy
  until this process has done :data:`COMPILE_ELEMENT_ITERATIONS` of NumPy
  work in all (the compile cost, in elements x iterations); then
  the fit hands its messages to the compiled engine mid-run (bitwise) and
  the kernels compile. Any sequence of fits then costs at most about twice
  the better of "NumPy throughout" and "compile first" (the ski-rental
  bound).
- ``FASTAP_COLD_START`` overrides the choice: ``auto`` (default),
  ``numpy`` (NumPy wherever it applies, never handing over), ``compiled``
  (never NumPy, as before this module existed).
"""

import contextlib
import hashlib
import os
import threading

import numpy as np

from fastap._dense import PARALLEL_MIN_SAMPLES
from fastap._kernels import _jit

# The compile cost, in units of NumPy work: matrix elements times
# iterations (one element of one NumPy iteration, 14 whole-matrix passes,
# takes 5-7.5 ns on the quiet 2-core VM, N = 500-2,000). Counting work
# rather than seconds keeps the rule independent of the machine's load and
# speed, which slow the compile and the NumPy loop alike (both run on one
# core): measured on the VM, an empty-cache first fit compiles for 12.5 s
# quiet (2.0e9 elements' worth) and ~50 s at load 6, where an element costs
# 19 ns (2.6e9). So a process runs NumPy iterations over 2e9 elements in all
# (500 iterations at N = 2,000, 8,000 at N = 500) before it compiles.
COMPILE_ELEMENT_ITERATIONS = 2.0e9

# Largest problem the NumPy engine takes: above it one fit's NumPy time
# exceeds the compile cost anyway (NumPy ~20 s a fit at N = 4,000 on the
# VM) and its float64 scratch matrix (a fourth N x N) matters.
NUMPY_MAX_SAMPLES = 4000

# float32 input up to this size runs with float64 similarities and
# messages on either path (the NumPy engine has no float32 twin of the lean
# engine): its results then depend on N, never on the cache. Above it the
# float32 engines run, compiled. (Where a float32 fit first costs more than
# compiling: the lean float32 engine compiles in ~21 s, NumPy's float64 fit
# of N = 2,000 takes ~5 s.)
FLOAT64_MESSAGES_MAX_SAMPLES = 2000

_MODES = ("auto", "numpy", "compiled")
_forced = threading.local()
_compiled_here = set()


def mode():
    """The path policy: :func:`forced_path` if set, else ``FASTAP_COLD_START``."""
    chosen = getattr(_forced, "mode", None) or os.environ.get("FASTAP_COLD_START", "auto")
    if chosen not in _MODES:
        raise ValueError(
            f"FASTAP_COLD_START must be one of {', '.join(_MODES)}; got {chosen!r}."
        )
    return chosen


@contextlib.contextmanager
def forced_path(chosen):
    """Run the enclosed fits on ``chosen`` ("numpy", "compiled" or "auto")
    whatever the environment says (``fastap warmup`` compiles)."""
    previous = getattr(_forced, "mode", None)
    _forced.mode = chosen
    try:
        yield
    finally:
        _forced.mode = previous


def cpu_key():
    """Short hash of the CPU name and features Numba compiles for (the
    last two items of its ``magic_tuple``) and the code-generation settings."""
    return hashlib.sha256(_jit.machine_key().encode()).hexdigest()[:16]


def _marker(engine):
    directory = _jit.cache_directory()
    if directory is None:
        return None
    return directory / f"compiled-{engine}-{cpu_key()}"


def is_compiled(engine):
    """Has ``engine`` run compiled in this process, or left its marker?"""
    if engine in _compiled_here:
        return True
    marker = _marker(engine)
    return marker is not None and marker.exists()


def mark_compiled(engine):
    """``engine``'s kernels are compiled (and cached, for later processes)."""
    _compiled_here.add(engine)
    marker = _marker(engine)
    if marker is not None and not marker.exists():
        try:
            marker.touch()
        except OSError:
            pass  # a read-only cache: this process remembers it


def dense_engine(n_samples, n_threads):
    """The marker name of the compiled float64 stored engine a fit would use
    (the serial and the parallel message pass are different kernels)."""
    parallel = n_threads > 1 and n_samples >= PARALLEL_MIN_SAMPLES[np.dtype(np.float64)]
    return "dense-float64-parallel" if parallel else "dense-float64-serial"


class NumpyWorkLedger:
    """NumPy work done by this process (elements x iterations: its time in
    machine-independent units), against the compile cost."""

    def __init__(self, budget=COMPILE_ELEMENT_ITERATIONS):
        self.budget = budget
        self.spent = 0.0
        self._lock = threading.Lock()

    def spend(self, element_iterations):
        with self._lock:
            self.spent += element_iterations

    def exhausted(self):
        return mode() == "auto" and self.spent >= self.budget


LEDGER = NumpyWorkLedger()


def choose_numpy_path(n_samples, n_threads):
    """True when a dense float64 fit of ``n_samples`` should start in NumPy."""
    chosen = mode()
    if chosen == "compiled" or n_samples > NUMPY_MAX_SAMPLES:
        return False
    if chosen == "numpy":
        return True
    return not is_compiled(dense_engine(n_samples, n_threads)) and not LEDGER.exhausted()
