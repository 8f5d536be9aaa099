"""Threads and memory: what a fit may use of the machine.

``n_jobs`` follows joblib's conventions and becomes Numba's thread count
for the duration of a fit (restored afterwards). Before a fit allocates its
matrices it compares what they need with what the OS can give, and refuses
with the ways out rather than failing halfway.
"""

import contextlib
import dataclasses
import os
from collections.abc import Callable
from typing import NamedTuple

import numba
import numpy as np


def resolve_n_threads(n_jobs):
    """Number of Numba threads for ``n_jobs`` (joblib's ``effective_n_jobs``).

    As joblib: ``-1`` means all cores, ``-2`` all but one, ``-k`` all but
    ``k - 1``, at least one (``-100`` on 8 cores: 1); ``0`` is an error.
    Positive values are capped at the number of threads Numba was started
    with (``NUMBA_NUM_THREADS``, the cores by default). Unlike joblib and
    scikit-learn, where ``None`` means one job, ``None`` keeps Numba's
    current setting: all cores unless changed with ``numba.set_num_threads``.
    """
    available = numba.config.NUMBA_NUM_THREADS
    if n_jobs is None:
        return numba.get_num_threads()
    if n_jobs == 0:
        raise ValueError(
            "n_jobs=0 has no meaning (as in joblib and scikit-learn): pass a number of "
            "threads, -1 for all cores, -2 for all but one, or None (all cores)."
        )
    if n_jobs < 0:
        return max(1, available + 1 + n_jobs)
    return min(n_jobs, available)


@contextlib.contextmanager
def numba_threads(n_threads):
    """Run the body with ``n_threads`` Numba threads, then restore the old count."""
    previous = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def available_memory_bytes():
    """Memory the OS can give this process now, or None when unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


# --------------------------------------------------------------------------
# What a fit needs: every engine's footprint, in one place.
# --------------------------------------------------------------------------

_MiB = 2**20

# Elements of the float64 blocks the set-up works in (as _similarity's
# _SIMILARITY_BLOCK_ELEMENTS and _dense's _NOISE_BLOCK_ELEMENTS).
_SIMILARITY_BLOCK_ELEMENTS = 1 << 23
_NOISE_BLOCK_ELEMENTS = 1 << 20
# The lean engine's correction lists: int32 column and float64 value per
# entry, at most 256 entries a row; while they double, old and new lists
# (128 + 256 entries) are both held.
_LEAN_LIST_ENTRY_BYTES = 4 + 8
_LEAN_LIST_PEAK_ENTRIES = 128 + 256
_SEARCH_CHUNK = 256  # messages.SEARCH_CHUNK


def _float64_block_bytes(n_samples, elements):
    """A float64 block of whole rows of about ``elements`` values."""
    rows = min(n_samples, max(1, elements // max(n_samples, 1)))
    return 8 * rows * n_samples


def _group_sum_bytes(n_samples):
    """The grouped column sums (float64, one row per group of up to 64 rows)."""
    group = max(1, min(64, n_samples // 8))
    return 8 * -(-n_samples // group) * n_samples


def _stored_work_bytes(n_samples, itemsize):
    """The stored engine's buffers beside its matrices: the grouped column
    sums, the noise block (set-up) and O(N) vectors."""
    return (_group_sum_bytes(n_samples) + _float64_block_bytes(n_samples, _NOISE_BLOCK_ELEMENTS)
            + 64 * n_samples * 8)


def _lean_work_bytes(n_samples, itemsize):
    """The lean engine's buffers beside S and A: correction lists at their
    largest (while doubling to 256 entries a row), the grouped column sums,
    the per-chunk maxima of S and O(N) vectors."""
    n_chunks = -(-n_samples // _SEARCH_CHUNK)
    return (n_samples * _LEAN_LIST_PEAK_ENTRIES * _LEAN_LIST_ENTRY_BYTES
            + _group_sum_bytes(n_samples) + n_samples * n_chunks * itemsize + 64 * n_samples * 8)


def _no_work_bytes(n_samples, itemsize):
    return 0


@dataclasses.dataclass(frozen=True)
class EngineFootprint:
    """What a dense engine holds.

    Attributes
    ----------
    matrices : tuple of str
        The N x N matrices (in the similarities' dtype) held while iterating.
    messages_during_set_up : bool
        The message matrices are allocated, and their pages touched, while
        the similarities are computed (the stored engine overlaps the two);
        else they come after the set-up's temporaries are gone.
    work_bytes : callable
        ``work_bytes(n_samples, itemsize)``: the engine's other buffers.
    note : str
        What the MemoryError adds about the engine.
    """

    matrices: tuple
    messages_during_set_up: bool
    work_bytes: Callable
    note: str = ""


#: Every dense engine's footprint (``AffinityPropagation(engine=...)``); a
#: new engine adds its entry here. None: the similarities alone
#: (``preference_range``).
DENSE_ENGINES = {
    "stored": EngineFootprint(("S", "R", "A"), True, _stored_work_bytes),
    "lean": EngineFootprint(
        ("S", "A"), False, _lean_work_bytes, "R rebuilt from short per-row lists"
    ),
    # The NumPy engine of small first fits (fastap/_numpy_engine.py): float64,
    # one scratch matrix beside scikit-learn's three.
    "numpy": EngineFootprint(
        ("S", "R", "A", "scratch"), False, _no_work_bytes, "the NumPy engine of small first fits"
    ),
    # engine="compact" (fastap/_compact.py): S alone; the availabilities of
    # never-positive pairs are one value per column.
    "compact": EngineFootprint(
        ("S",), False, lambda n_samples, itemsize: compact_extra_bytes(n_samples, f"f{itemsize}"),
        "R and most of A held as one value per row and column, plus per-row lists",
    ),
    None: EngineFootprint(("S",), False, _no_work_bytes),
}

#: Where S comes from (``source`` of :func:`dense_fit_memory`).
SIMILARITY_SOURCES = ("features", "sparse_features", "callable", "precomputed")


class MemoryEstimate(NamedTuple):
    """Bytes a fit adds to the process at its peak, and what they hold.

    Attributes
    ----------
    bytes : int
    description : str
        For messages: "2 matrices of 1000 x 1000 (S and A, ...)".
    """

    bytes: int
    description: str


def resolve_dense_engine(engine, dtype, *, wants_messages=False, warm=False):
    """The dense engine a fit runs: ``engine="auto"`` is the lean engine for
    float32 unless the messages are wanted; a warm start needs the stored
    engine (as ``AffinityPropagation``)."""
    if warm:
        return "stored"
    if engine == "auto":
        return "lean" if np.dtype(dtype) == np.float32 and not wants_messages else "stored"
    return engine


def _similarity_temporary_bytes(n_samples, dtype, source):
    """Memory the making of S needs beside S itself (measured at N = 3,000
    and 5,000 against VmHWM: tests/test_memory_estimates.py)."""
    matrix64 = 8 * n_samples * n_samples
    if source == "callable":
        return matrix64  # the callable's own output, counted as float64
    if source == "features" and np.dtype(dtype) == np.float32:
        return _float64_block_bytes(n_samples, _SIMILARITY_BLOCK_ELEMENTS)
    if source == "sparse_features" and np.dtype(dtype) == np.float32:
        # scikit-learn's euclidean_distances upcasts by batches of at least
        # 10 MiB (float64 input gives its result without temporaries).
        return max(10 * _MiB, matrix64 // 10)
    return 0


def dense_fit_memory(n_samples, dtype, engine, *, source="features", reused=(),
                     keep_messages=False):
    """Peak bytes a dense fit adds, from the engine's footprint.

    Parameters
    ----------
    n_samples : int
    dtype : float32 or float64
        Of the similarities and messages.
    engine : {'stored', 'lean', 'compact', 'numpy'} or None
        A key of :data:`DENSE_ENGINES` (resolved: see
        :func:`resolve_dense_engine`); None: the similarities alone.
    source : {'features', 'sparse_features', 'callable', 'precomputed'}
        How S is made: from dense features (float32: a float64 block of at
        most 64 MiB), from sparse features (scikit-learn's distances), by
        an affinity callable (its output: one float64 N x N array, beside
        S), or given (``reused=("S",)`` when the input is used in place).
    reused : tuple of str
        Matrices that exist already and are not allocated by the fit: "S"
        (a precomputed matrix used in place), "R" and "A" (a warm start).
    keep_messages : bool
        The lean engine materialises R at the end (a third matrix), the
        compact engine R and A.

    Returns
    -------
    MemoryEstimate
        The largest of the set-up (S, its temporaries, and the stored
        engine's messages allocated meanwhile) and the iterations (the
        matrices and the engine's buffers).
    """
    if source not in SIMILARITY_SOURCES:
        raise ValueError(f"source must be one of {SIMILARITY_SOURCES}, got {source!r}")
    footprint = DENSE_ENGINES[engine]
    itemsize = np.dtype(dtype).itemsize
    matrix = n_samples * n_samples * itemsize
    new = [name for name in footprint.matrices if name not in reused]
    messages = sum(matrix for name in new if name != "S")
    similarities = matrix if "S" in new else 0
    temporary = 0 if "S" in reused else _similarity_temporary_bytes(n_samples, dtype, source)
    set_up = similarities + temporary + (messages if footprint.messages_during_set_up else 0)
    iterations = similarities + messages + footprint.work_bytes(n_samples, itemsize)
    made_whole = [name for name in ("R", "A") if keep_messages and name not in footprint.matrices]
    iterations += matrix * len(made_whole)
    notes = [footprint.note] if footprint.note else []
    if made_whole:
        new += made_whole
        notes.append(f"{' and '.join(made_whole)} made whole at the end for keep_messages")
    notes += [f"{name} given" for name in footprint.matrices if name in reused]
    count = f"{len(new)} matrices" if len(new) != 1 else "1 matrix"
    description = (
        f"{count} of {n_samples} x {n_samples} in {np.dtype(dtype).name}: "
        + _names(new) + "".join(f"; {note}" for note in notes)
    )
    return MemoryEstimate(int(max(set_up, iterations)), description)


def compact_extra_bytes(n_samples, dtype):
    """Bytes the compact engine allocates beside ``S`` before its exception
    lists grow: two chunk maxima per row and 256 columns, the float64 sums
    of groups of 64 rows, the initial lists (16 entries a row) and O(N).
    Its lists then grow with the data (at most half of one N x N matrix
    before it turns lean: ``_compact.EXCEPTION_BUDGET_FRACTION``)."""
    itemsize = np.dtype(dtype).itemsize
    chunk_maxima = 2 * n_samples * (-(-n_samples // 256)) * itemsize
    group_sums = (-(-n_samples // 64)) * n_samples * 8
    lists = 16 * n_samples * (4 + itemsize)
    return chunk_maxima + group_sums + lists + 64 * n_samples * itemsize


def _names(names):
    names = list(names)
    if not names:
        return "none new"  # the compact engine on a precomputed S used in place
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def sparse_fit_memory(n_samples, n_pairs, dtype):
    """Peak bytes of a fit on a sparse graph: per stored pair ``S``, ``R``,
    ``A`` (dtype), a column index (int32), a CSC position (int32 below 2^31
    pairs) and the degeneracy noise's float64 normal (drawn at the set-up,
    while R and A exist); O(n) vectors. (Measured: 45 bytes a pair at 10^6
    float64 pairs, tests/test_memory_estimates.py.)"""
    itemsize = np.dtype(dtype).itemsize
    position = 4 if n_pairs < 2**31 else 8
    per_pair = 3 * itemsize + 4 + position + 8
    return MemoryEstimate(
        int(n_pairs * per_pair + n_samples * (4 * 8 + 2 * itemsize + 2)),
        f"{n_pairs} stored pairs in {np.dtype(dtype).name}",
    )


def nearest_neighbors_fit_memory(n_samples, n_neighbors, dtype, *, exact_median_max=2000,
                                 sampled_pairs=1_000_000):
    """Peak bytes of ``affinity="nearest_neighbors"`` (without its merge
    levels, which run AP on at most 5,000 fragments): the k-NN graph's
    stored pairs (the sparse engine, up to ``2 k n + n`` pairs), or the
    default preference's pairs beside the graph's arrays, whichever is
    larger (the n x n pairs up to ``exact_median_max`` samples, else
    ``sampled_pairs``: two int64 indices, a float64 similarity and the
    median's copy per pair)."""
    k = min(n_neighbors, max(n_samples - 1, 0))
    n_pairs = 2 * k * n_samples + n_samples
    graph = sparse_fit_memory(n_samples, n_pairs, dtype).bytes
    pairs = n_samples * n_samples if n_samples <= exact_median_max else sampled_pairs
    return MemoryEstimate(
        int(max(graph, 32 * pairs + 12 * n_pairs)),
        f"a {k}-nearest-neighbour graph of up to {2 * k * n_samples + n_samples} pairs in "
        f"{np.dtype(dtype).name}",
    )


def _gib(n_bytes):
    return f"{n_bytes / 2**30:.1f} GiB"


def lean_or_compact(n_samples, dtype, *, source="features", reused=()):
    """The engine ``engine="auto"`` gives a float32 fit without kept
    messages: the lean engine, or the compact one when only the compact one
    fits in the available memory. The two give bitwise the same results; the
    compact engine is slower per iteration at every size measured (README,
    "engine='compact'"), so it is chosen for its memory only."""
    available = available_memory_bytes()
    if available is None:
        return "lean"
    for engine in ("lean", "compact"):
        if dense_fit_memory(n_samples, dtype, engine, source=source,
                            reused=reused).bytes <= available:
            return engine
    return "lean"


def check_dense_memory(n_samples, dtype, engine="auto", *, source="features", reused=(),
                       keep_messages=False, float32_engine="auto"):
    """Raise MemoryError, before allocating, when a dense fit clearly cannot fit.

    ``engine``: as :func:`dense_fit_memory`, or "auto" (the estimator's
    default, resolved by :func:`resolve_dense_engine`). ``float32_engine``:
    the engine float32 input would get ("auto": the default's for float32),
    for the way out that names float32's own footprint.
    """
    dtype = np.dtype(dtype)
    if engine == "auto":
        engine = resolve_dense_engine("auto", dtype, wants_messages=keep_messages)
    needed = dense_fit_memory(n_samples, dtype, engine, source=source, reused=reused,
                              keep_messages=keep_messages)
    available = available_memory_bytes()
    if available is None or needed.bytes <= available:
        return
    ways_out = []
    if dtype == np.float64:
        if float32_engine == "auto":
            float32_engine = None if engine is None else resolve_dense_engine(
                "auto", np.float32, wants_messages=keep_messages
            )
        single = dense_fit_memory(n_samples, np.float32, float32_engine, source=source,
                                  reused=(), keep_messages=keep_messages)
        ways_out.append(f"float32 input (about {_gib(single.bytes)}: {single.description})")
    ways_out += [
        "affinity='nearest_neighbors' (a sparse k-NN graph: memory grows with N, not N^2)",
        "a machine with more memory",
        "fastap.dask.AffinityPropagation on a Dask cluster",
    ]
    raise MemoryError(
        f"Affinity propagation on {n_samples} samples in {dtype.name} needs about "
        f"{_gib(needed.bytes)} ({needed.description}), but only {_gib(available)} of memory "
        "is available. Ways out: " + "; ".join(ways_out) + "."
    )


def check_sparse_memory(n_samples, n_pairs, dtype, needed=None):
    """Raise MemoryError, before allocating, when a sparse fit needing
    ``needed`` bytes (default: :func:`sparse_fit_memory`) clearly cannot fit."""
    if needed is None:
        needed = sparse_fit_memory(n_samples, n_pairs, dtype).bytes
    available = available_memory_bytes()
    if available is None or needed <= available:
        return
    raise MemoryError(
        f"Sparse affinity propagation on {n_samples} samples with {n_pairs} stored pairs in "
        f"{np.dtype(dtype).name} needs about {_gib(needed)}, but only "
        f"{_gib(available)} of memory is available. Ways out: fewer neighbours "
        "(n_neighbors), float32 input, a machine with more memory, or "
        "fastap.dask.AffinityPropagation on a Dask cluster."
    )


def fit_memory_bytes(n_samples, dtype=np.float64, *, affinity="euclidean", engine="auto",
                     keep_messages=False, n_neighbors=30, sparse_input=False):
    """Bytes a fit of ``n_samples`` samples adds to the process at its peak.

    The estimate ``AffinityPropagation`` checks before it allocates (and
    raises ``MemoryError`` on), from each engine's footprint: the stored
    engine holds S, R and A; the lean engine (float32's default) S and A
    plus short per-row lists; a callable's output, sparse features and
    float32 similarities add set-up temporaries; ``nearest_neighbors`` holds
    its k-NN graph (or the default preference's sampled pairs). Within 15%
    of the measured peak resident memory at N = 3,000-8,000
    (tests/test_memory_estimates.py); the Python process itself (~250 MiB
    with NumPy, SciPy, scikit-learn and Numba loaded) comes on top.

    Parameters
    ----------
    n_samples : int
    dtype : float32 or float64, default=float64
        Of the input (float32 input keeps float32 similarities).
    affinity : {'euclidean', 'cosine', 'precomputed', 'nearest_neighbors'} or callable
        As the estimator's; 'precomputed' counts the copy the estimator
        makes with its default ``copy=True``.
    engine : {'auto', 'stored', 'lean'}, default='auto'
    keep_messages : bool, default=False
    n_neighbors : int, default=30
        For ``affinity="nearest_neighbors"``.
    sparse_input : bool, default=False
        Sparse features (scikit-learn's distances) instead of dense ones.

    Returns
    -------
    int
    """
    dtype = np.dtype(np.float32 if np.dtype(dtype) == np.float32 else np.float64)
    if affinity == "nearest_neighbors":
        return nearest_neighbors_fit_memory(n_samples, n_neighbors, dtype).bytes
    source = "callable" if callable(affinity) else (
        "precomputed" if affinity == "precomputed" else (
            "sparse_features" if sparse_input else "features"
        )
    )
    resolved = resolve_dense_engine(engine, dtype, wants_messages=keep_messages)
    return dense_fit_memory(n_samples, dtype, resolved, source=source,
                            keep_messages=keep_messages and resolved == "lean").bytes
