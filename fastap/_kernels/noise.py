"""Counter-based degeneracy noise: a pure function of ``(seed, i, k)``.

scikit-learn removes degeneracies (ties that make AP oscillate) with
``S += (eps * S + tiny * 100) * N(0, 1)``, one serial ``RandomState`` stream
over the N x N entries. A stream cannot be drawn block by block on several
machines without replaying it, so this module gives a second noise whose
standard normal for entry ``(i, k)`` depends on the seed and on ``(i, k)``
alone: any split of the rows into blocks, any thread count, any machine
order gives the same bits. The single-machine engine can use it too
(``noise="counter"``), which makes ``single machine == distributed``
bitwise.

How a normal is made
--------------------
``(i, k)`` (each below 2**32) is packed into one 64-bit counter, mixed with
the seed by the SplitMix64 finalizer (Steele, Lea & Flood 2014; the mixer of
``java.util.SplittableRandom``, a bijection of 64-bit words that passes
BigCrush), and mixed once more for a second word. The top 53 bits of each
word give two uniforms, ``u1`` in ``(0, 1]`` and ``u2`` in ``[0, 1)``, and
Box-Muller gives ``sqrt(-2 log u1) * cos(2 pi u2)``. The largest magnitude
is ``sqrt(2 * 53 * log 2)`` ~ 8.6: the tails of a normal as far as a double
can represent its uniforms.

Reproducibility: the integer steps and ``sqrt`` are exact everywhere;
``log`` and ``cos`` come from the C library through LLVM, so bits are equal
on machines sharing the library (a cluster built from one image), not
necessarily between different ones. Numba is not using Intel's SVML here
(``numba.config.USING_SVML`` is False), so no loop is vectorized with other
``log``/``cos`` versions in its body than in its tail.
"""

import numpy as np
from numba import prange

from fastap._kernels._jit import parallel_kernel, serial_kernel

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_SEED_SALT = np.uint64(0xD1B54A32D192ED03)
_SHIFT_30 = np.uint64(30)
_SHIFT_27 = np.uint64(27)
_SHIFT_31 = np.uint64(31)
_SHIFT_32 = np.uint64(32)
_SHIFT_11 = np.uint64(11)
_TWO_TO_MINUS_53 = 2.0**-53
_TWO_PI = 2.0 * np.pi


@serial_kernel
def _mix64(x):
    """SplitMix64's finalizer: a bijection of uint64 words with full avalanche."""
    x = (x ^ (x >> _SHIFT_30)) * _MIX_1
    x = (x ^ (x >> _SHIFT_27)) * _MIX_2
    return x ^ (x >> _SHIFT_31)


@serial_kernel
def seed_key(seed):
    """The mixed seed that :func:`counter_normal` takes (computed once per call site)."""
    return _mix64(np.uint64(seed) ^ _SEED_SALT)


@serial_kernel
def counter_normal(key, i, k):
    """Standard normal of entry ``(i, k)`` for the mixed seed ``key``.

    Parameters
    ----------
    key : uint64
        ``seed_key(seed)``.
    i, k : int
        Row and column, each in ``[0, 2**32)``.

    Returns
    -------
    float
        A float64 standard normal, a pure function of ``(key, i, k)``.
    """
    counter = (np.uint64(i) << _SHIFT_32) | np.uint64(k)
    first = _mix64(counter ^ key)
    second = _mix64(first + _GOLDEN)
    u1 = (float(first >> _SHIFT_11) + 1.0) * _TWO_TO_MINUS_53  # (0, 1]: log is finite
    u2 = float(second >> _SHIFT_11) * _TWO_TO_MINUS_53  # [0, 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(_TWO_PI * u2)


@parallel_kernel
def counter_normals(seed, first_row, n_rows, n_columns, out):
    """``out[r, k] = counter_normal(seed, first_row + r, k)`` (float64 (n_rows, n_columns)).

    Rows are independent (one task per row); for tests and inspection.
    """
    key = seed_key(seed)
    for r in prange(n_rows):
        for k in range(n_columns):
            out[r, k] = counter_normal(key, first_row + r, k)


@parallel_kernel
def add_counter_noise(S_rows, first_row, seed, epsilon, tiny_times_100):
    """``S += (eps * S + tiny * 100) * normal(seed, i, k)`` on a block of rows.

    Parameters
    ----------
    S_rows : ndarray (n_rows, n), C order, float32 or float64
        Rows ``first_row, first_row + 1, ...`` of ``S``, overwritten.
    first_row : int
        Global index of the block's first row.
    seed : int
        Non-negative noise seed (see :func:`counter_noise_seed`).
    epsilon, tiny_times_100 : scalars of the dtype of ``S_rows``
        ``np.finfo(dtype).eps`` and ``np.finfo(dtype).tiny * 100``.

    Notes
    -----
    The arithmetic is that of ``setup.add_degeneracy_noise`` (the coefficient
    in the dtype of ``S``, the sum in float64, rounded once), with the
    counter normal in place of the stream's. Each task owns a row; the
    result does not depend on the blocking or the thread count.
    """
    key = seed_key(seed)
    n_rows, n = S_rows.shape
    for r in prange(n_rows):
        row = S_rows[r]
        i = first_row + r
        for k in range(n):
            s = row[k]
            coefficient = epsilon * s + tiny_times_100
            row[k] = s + coefficient * counter_normal(key, i, k)


@serial_kernel
def set_block_diagonal(S_rows, first_row, preference, seed, epsilon, tiny_times_100):
    """Put ``preference`` plus its counter noise on the block's part of the diagonal.

    ``preference`` is float64 of shape ``(n_rows,)`` (the block's share);
    element ``r`` goes to ``S_rows[r, first_row + r]``, in the dtype of
    ``S``, then gets the noise :func:`add_counter_noise` gives it, so the
    result is bitwise that of a fresh set-up with this preference.
    """
    key = seed_key(seed)
    for r in range(S_rows.shape[0]):
        i = first_row + r
        s = S_rows.dtype.type(preference[r])
        coefficient = epsilon * s + tiny_times_100
        S_rows[r, i] = s + coefficient * counter_normal(key, i, i)


@parallel_kernel
def add_counter_noise_to_pairs(indptr, indices, values, row_offset, seed, epsilon,
                               tiny_times_100):
    """:func:`add_counter_noise` on the stored pairs of a sparse graph.

    ``indptr``, ``indices``, ``values``: CSR arrays whose row ``r`` is the
    graph's row ``row_offset + r`` (0 for a whole graph, a row block's first
    row on the distributed engine); pair ``(i, k)`` gets the noise of entry
    ``(i, k)`` of the dense matrix, so a complete graph gets the dense
    noise, and any blocking the same bits. Rows are independent.
    """
    key = seed_key(seed)
    for r in prange(indptr.size - 1):
        i = row_offset + r
        for p in range(indptr[r], indptr[r + 1]):
            s = values[p]
            coefficient = epsilon * s + tiny_times_100
            values[p] = s + coefficient * counter_normal(key, i, indices[p])


@serial_kernel
def set_stored_diagonal(diagonal, values, row_offset, preference, seed, epsilon,
                        tiny_times_100):
    """:func:`set_block_diagonal` on a sparse graph's rows: ``preference[r]``
    (float64) in the dtype of ``values``, plus its counter noise, at the
    diagonal position ``diagonal[r]`` of row ``row_offset + r``."""
    key = seed_key(seed)
    for r in range(diagonal.size):
        i = row_offset + r
        s = values.dtype.type(preference[r])
        coefficient = epsilon * s + tiny_times_100
        values[diagonal[r]] = s + coefficient * counter_normal(key, i, i)


@serial_kernel
def diagonal_counter_normals(seed, out):
    """``out[k] = counter_normal(seed, k, k)``: the normals of the diagonal."""
    key = seed_key(seed)
    for k in range(out.size):
        out[k] = counter_normal(key, k, k)


def add_counter_noise_to_matrix(S, seed):
    """The counter noise on a whole square ``S``, in place, for the
    single-machine engine: the counterpart of ``_dense.add_degeneracy_noise``
    (same return value), so that ``noise="counter"`` is a swap of that one
    call. Returns the float64 normals of the diagonal, with which
    ``setup.add_diagonal_noise`` puts a new preference's noise on it.
    """
    info = np.finfo(S.dtype)
    add_counter_noise(S, 0, seed, info.eps, info.tiny * 100)
    diagonal_normals = np.empty(S.shape[0], dtype=np.float64)
    diagonal_counter_normals(seed, diagonal_normals)
    return diagonal_normals


class CounterNoiseStream:
    """Stands in for the ``RandomState`` the dense engines draw their noise
    from, giving the counter normals instead (``noise="counter"``).

    The engines draw the N x N normals by blocks of rows, first row first
    (``_dense.add_degeneracy_noise``); each ``standard_normal((rows, n))``
    returns the counter normals of the next ``rows`` rows, so the engine's
    own code adds bitwise the noise of :func:`add_counter_noise`. Only
    such row blocks can be drawn; a sparse graph's engine reads
    :attr:`seed` and adds :func:`add_counter_noise_to_pairs` instead.
    """

    def __init__(self, seed):
        self.seed = int(seed)
        self._next_row = 0

    def standard_normal(self, size):
        if np.ndim(size) != 1 or len(size) != 2:
            raise ValueError(
                "noise='counter' draws whole rows of a dense matrix (or a precomputed sparse "
                f"graph's stored pairs, by its own kernel), not a stream of {size} normals; "
                "affinity='nearest_neighbors' uses noise='sklearn'."
            )
        n_rows, n_columns = (int(k) for k in size)
        out = np.empty((n_rows, n_columns))
        counter_normals(self.seed, self._next_row, n_rows, n_columns, out)
        self._next_row += n_rows
        return out


def counter_noise_seed(random_state):
    """The counter noise's seed for a ``random_state`` (int, RandomState or None).

    One int64 drawn from ``check_random_state(random_state)``: an int gives
    the same seed everywhere (client, workers, single machine), so fits with
    the same ``random_state`` add the same noise.
    """
    from sklearn.utils import check_random_state

    return int(check_random_state(random_state).randint(np.iinfo(np.int64).max, dtype=np.int64))
