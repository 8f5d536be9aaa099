"""The one place where fastap's Numba compile options are spelled, and where
the compiled kernels are cached.

Every kernel is built through :func:`serial_kernel` or :func:`parallel_kernel`,
so changing a compile option is a one-line change here.

- ``cache=True``: a second process loads machine code from disk (~0.2 s)
  instead of recompiling (~10 s).
- ``nogil=True``: other Python threads keep running during a long fit.
- ``fastmath=False``: AP relies on ``-inf`` sentinels and on the exact
  rounding of every product and sum (bitwise parity with scikit-learn), so no
  reassociation, no contraction into FMA and no "no-inf" assumptions.
- ``error_model="numpy"``: no Python exception machinery in hot loops.

Where the cache lives
---------------------
Numba's default places the cache next to the source, in
``fastap/_kernels/__pycache__``: inside the install directory, where it
outlives an uninstall (a leftover folder then hides a later editable install
as an empty namespace package). And Numba decides whether a cached kernel is
fresh from the kernel's own file only: a kernel whose callee in another file
changed is loaded stale.

:class:`KernelCacheLocator` fixes both for fastap's kernel files (and only for
them). The cache goes to a per-user directory, :func:`cache_directory`, whose
last component is a hash of the sources of *all* kernel modules and of the
Numba version: any change to any kernel file selects a new, empty directory,
so nothing compiled from other sources can be loaded. The hash also covers
the CPU and the code-generation settings Numba's own key leaves out
(:func:`machine_key`).
"""

import hashlib
import os
import pathlib
import sys
import tempfile

import numba
from numba.core import caching

_COMMON_OPTIONS = {
    "cache": True,
    "nogil": True,
    "fastmath": False,
    "error_model": "numpy",
    "boundscheck": False,
}

# The directory of the kernel modules: the locator serves the files in it.
_KERNEL_DIRECTORY = pathlib.Path(__file__).resolve().parent


# Numba settings that change the machine code but not Numba's own cache key
# (numba/numba#10821): a process run once with NUMBA_OPT=0 would otherwise
# leave -O0 kernels that later -O3 processes load without a word.
CODEGEN_SETTINGS = ("OPT", "LOOP_VECTORIZE", "SLP_VECTORIZE", "DEBUGINFO_DEFAULT", "BOUNDSCHECK")


def machine_key():
    """What Numba compiles for: the CPU name and feature string (its
    ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` overrides, else the host's:
    the two last items of Numba's ``codegen.magic_tuple()``) and the
    settings of :data:`CODEGEN_SETTINGS`, as one string."""
    import llvmlite.binding as llvm

    config = numba.config
    name = config.CPU_NAME or llvm.get_host_cpu_name()
    features = config.CPU_FEATURES
    if features is None:
        features = llvm.get_host_cpu_features().flatten()
    settings = " ".join(f"{key}={getattr(config, key, None)!r}" for key in CODEGEN_SETTINGS)
    return f"cpu {name} {features}\n{settings}\n"


def _kernel_sources_key():
    """Hash of every kernel module's source, the Numba version and
    :func:`machine_key` (CPU and code-generation settings).

    Read once per process: a kernel compiled later in the same process is
    compiled from the functions imported at start-up, so it belongs under the
    key of the sources as they were then.
    """
    digest = hashlib.sha256(f"numba {numba.__version__}\n".encode())
    digest.update(machine_key().encode())
    for path in sorted(_KERNEL_DIRECTORY.glob("*.py")):
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return f"numba-{numba.__version__}-{digest.hexdigest()[:16]}"


_SOURCES_KEY = _kernel_sources_key()


def _user_cache_root():
    """The per-user cache folder for fastap, before the sources key."""
    override = os.environ.get("FASTAP_CACHE_DIR")
    if override:
        return pathlib.Path(override).expanduser()
    if numba.config.CACHE_DIR:
        # The user chose where Numba caches: keep fastap's kernels there too.
        return pathlib.Path(numba.config.CACHE_DIR).expanduser() / "fastap"
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or pathlib.Path.home() / "AppData" / "Local"
        return pathlib.Path(base) / "fastap" / "Cache"
    if sys.platform == "darwin":
        return pathlib.Path.home() / "Library" / "Caches" / "fastap"
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "fastap"


def _is_writable_directory(path):
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def _choose_cache_directory():
    """The per-user folder if it is writable, else one under the temp folder."""
    candidates = [_user_cache_root() / _SOURCES_KEY]
    try:
        user = str(os.getuid())
    except AttributeError:  # Windows
        user = os.environ.get("USERNAME", "user")
    candidates.append(pathlib.Path(tempfile.gettempdir()) / f"fastap-cache-{user}" / _SOURCES_KEY)
    for candidate in candidates:
        if _is_writable_directory(candidate):
            return candidate
    return None


_CACHE_DIRECTORY = _choose_cache_directory()


def cache_directory():
    """The folder where this process caches fastap's compiled kernels.

    ``$FASTAP_CACHE_DIR``, else ``$NUMBA_CACHE_DIR/fastap`` when
    ``NUMBA_CACHE_DIR`` is set, else the user's cache folder
    (``$XDG_CACHE_HOME/fastap`` or ``~/.cache/fastap`` on Linux), followed
    by a folder named for the Numba version and a hash of the kernel sources.
    When none of these is writable, a folder under the temp folder.

    Returns
    -------
    pathlib.Path or None
        ``None`` when no writable folder was found; Numba's own locators then
        decide (as for any other package).
    """
    return _CACHE_DIRECTORY


class KernelCacheLocator(caching._CacheLocator):
    """Numba cache locator for fastap's kernel files (see the module notes).

    Registered first in Numba's list of locators; for any file outside
    ``fastap/_kernels`` it declines and Numba's own locators decide.
    """

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno

    def get_cache_path(self):
        return str(_CACHE_DIRECTORY)

    def get_source_stamp(self):
        # The folder is already specific to these sources; the stamp repeats
        # the key so that an index copied between folders is still refused.
        return _SOURCES_KEY

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        if _CACHE_DIRECTORY is None:
            return None
        try:
            in_kernels = pathlib.Path(py_file).resolve().parent == _KERNEL_DIRECTORY
        except OSError:
            return None
        if not in_kernels:
            return None
        return cls(py_func, py_file)


def _register_locator():
    # Numba's cache implementations (functions and ``overload`` bodies alike)
    # share this class-level list; the first locator that accepts a file wins.
    # (``_CacheImpl`` before Numba 0.61.)
    implementation = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    locators = implementation._locator_classes
    if not any(locator.__name__ == KernelCacheLocator.__name__ for locator in locators):
        locators.insert(0, KernelCacheLocator)


_register_locator()


def serial_kernel(function):
    """Compile ``function`` as a single-threaded nopython kernel."""
    return numba.njit(**_COMMON_OPTIONS)(function)


def parallel_kernel(function):
    """Compile ``function`` as a kernel whose ``prange`` loops run on threads."""
    return numba.njit(parallel=True, **_COMMON_OPTIONS)(function)
