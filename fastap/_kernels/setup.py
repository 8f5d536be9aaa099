"""Set-up kernels: similarity, median preference, degeneracy noise, checks.

Each works in place on the ``(n, n)`` similarity buffer or reads it once,
so set-up never holds an extra N x N temporary (scikit-learn holds up to
six N x N float64 arrays here).
"""

import numpy as np
from numba import prange

from fastap._kernels._jit import parallel_kernel, serial_kernel
from fastap._kernels._order import bits_view, order_key


@parallel_kernel
def negative_squared_distances_from_gram(gram_rows, squared_norms, first_row, S_rows):
    """Turn rows of a Gram matrix ``X @ X.T`` into ``-||x_i - x_j||^2``.

    ``gram_rows`` (float64) holds rows ``first_row ...`` of the Gram matrix;
    ``S_rows`` (float32 or float64) receives the similarities and may be the
    same array as ``gram_rows``. The operations and their order are those of
    scikit-learn's ``-euclidean_distances(X, squared=True)``
    (``-2 * G + |x_i|^2 + |x_j|^2``, clipped at 0, zero diagonal, negated),
    so the float64 result is bitwise equal.

    Returns the number of similarities that are not finite: distances
    beyond float32's range round to -inf in a float32 ``S`` (and inf or NaN
    features give inf or NaN), which AP would turn into NaN messages. Counted
    in the same pass, as integers (any order gives the same count).
    """
    n_rows, n = gram_rows.shape
    zero = gram_rows.dtype.type(0)
    minus_two = gram_rows.dtype.type(-2)
    non_finite = np.zeros(n_rows, dtype=np.int64)
    for r in prange(n_rows):
        gram_row = gram_rows[r]
        S_row = S_rows[r]
        norm_i = squared_norms[first_row + r]
        for j in range(n):
            distance = minus_two * gram_row[j] + norm_i
            distance = distance + squared_norms[j]
            S_row[j] = -max(distance, zero)
        S_row[first_row + r] = -S_row.dtype.type(0)
        non_finite[r] = _count_non_finite_row(S_row)
    return non_finite.sum()


@serial_kernel
def _count_non_finite_row(row):
    # On the bits: all exponent bits set is inf or NaN. Integer compares
    # vectorize; np.isfinite on the matrix would build an N x N temporary.
    bits = bits_view(row)
    width = bits.itemsize * 8
    mantissa_bits = 23 if width == 32 else 52
    exponent = ((bits.dtype.type(1) << (width - 1 - mantissa_bits)) - 1) << mantissa_bits
    count = 0
    for j in range(bits.size):
        count += (bits[j] & exponent) == exponent
    return count


@parallel_kernel
def count_non_finite(S):
    """Number of inf and NaN entries of a C-contiguous float matrix, in one
    read-only pass without a temporary (``np.isfinite`` builds an N x N
    boolean array)."""
    n_rows = S.shape[0]
    counts = np.zeros(n_rows, dtype=np.int64)
    for i in prange(n_rows):
        counts[i] = _count_non_finite_row(S[i])
    return counts.sum()


@serial_kernel
def touch_pages(M):
    """Write a zero into every 4 KiB page of the (zero) matrix ``M``.

    Makes the OS map fresh pages now, on a helper thread, rather than at the
    first write of the first iteration: on virtual machines a first touch
    costs up to ~2.5 s per GiB.
    """
    flat = M.reshape(-1)
    zero = flat.dtype.type(0)
    for k in range(0, flat.size, 4096 // flat.itemsize):
        flat[k] = zero


@parallel_kernel
def negate_in_place(S):
    """``S = -S`` row by row."""
    for i in prange(S.shape[0]):
        row = S[i]
        for j in range(row.size):
            row[j] = -row[j]


@serial_kernel
def add_degeneracy_noise(values, noise, epsilon, tiny_times_100):
    """``values += (eps * values + tiny * 100) * noise``, in place, on any
    run of similarities (a block of dense rows, raveled, or the stored pairs
    of a sparse graph).

    ``noise`` is float64 standard normal (as scikit-learn draws it). For
    float32 ``values`` the coefficient is computed in float32 and the sum in
    float64, then rounded to float32: exactly what NumPy does for
    ``S += (eps * S + tiny * 100) * noise`` on a float32 ``S``.
    """
    for p in range(values.size):
        s = values[p]
        coefficient = epsilon * s + tiny_times_100
        values[p] = s + coefficient * noise[p]


@serial_kernel
def add_diagonal_noise(S, diagonal_normals, epsilon, tiny_times_100):
    """:func:`add_degeneracy_noise` on the diagonal alone (same arithmetic)."""
    for k in range(S.shape[0]):
        s = S[k, k]
        coefficient = epsilon * s + tiny_times_100
        S[k, k] = s + coefficient * diagonal_normals[k]


@parallel_kernel
def off_diagonal_all_equal(S):
    """True when every off-diagonal entry equals ``S[0, 1]`` (n >= 2)."""
    n = S.shape[0]
    reference = S[0, 1]
    n_tasks = min(n, 64)
    differs = np.zeros(n_tasks, dtype=np.bool_)
    for task in prange(n_tasks):
        for i in range(task * n // n_tasks, (task + 1) * n // n_tasks):
            row = S[i]
            found = False
            for j in range(n):
                found |= (row[j] != reference) & (j != i)
            if found:
                differs[task] = True
                break
    return not differs.any()


# --------------------------------------------------------------------------
# Exact median without copying S: radix selection on order-preserving keys.
# --------------------------------------------------------------------------

RADIX_BITS = 16
RADIX_SIZE = 1 << RADIX_BITS


@parallel_kernel
def digit_histogram(S_bits, prefix, shift, n_tasks):
    """Histogram of the 16-bit digit at ``shift`` among keys whose higher
    bits equal ``prefix``; per-task counts summed at the end (integers, so
    the order does not matter)."""
    n_rows = S_bits.shape[0]
    counts = np.zeros((n_tasks, RADIX_SIZE), dtype=np.int64)
    width = S_bits.itemsize * 8
    whole_key = shift + RADIX_BITS >= width
    top_shift = min(shift + RADIX_BITS, width - 1)  # a shift by >= width is undefined
    for task in prange(n_tasks):
        task_counts = counts[task]
        for i in range(task * n_rows // n_tasks, (task + 1) * n_rows // n_tasks):
            row = S_bits[i]
            for j in range(row.size):
                key = order_key(row[j])
                if whole_key or (key >> top_shift) == prefix:
                    task_counts[(key >> shift) & (RADIX_SIZE - 1)] += 1
    return counts.sum(axis=0)


@parallel_kernel
def count_not_above_and_next(S_bits, key, n_tasks):
    """Number of keys <= ``key`` and the smallest key above it."""
    n_rows = S_bits.shape[0]
    not_above = np.zeros(n_tasks, dtype=np.int64)
    above = np.full(n_tasks, np.iinfo(S_bits.dtype).max, dtype=S_bits.dtype)
    for task in prange(n_tasks):
        count = 0
        smallest = np.iinfo(S_bits.dtype).max
        for i in range(task * n_rows // n_tasks, (task + 1) * n_rows // n_tasks):
            row = S_bits[i]
            for j in range(row.size):
                k = order_key(row[j])
                count += k <= key
                smallest = min(smallest, k if k > key else smallest)
        not_above[task] = count
        above[task] = smallest
    return not_above.sum(), above.min()


def excluded_digit_histogram(excluded_keys, prefix, shift):
    """:func:`digit_histogram` of a few keys, in NumPy."""
    width = excluded_keys.itemsize * 8
    if shift + RADIX_BITS < width:
        excluded_keys = excluded_keys[(excluded_keys >> (shift + RADIX_BITS)) == prefix]
    digits = (excluded_keys >> shift) & (RADIX_SIZE - 1)
    return np.bincount(digits.astype(np.intp), minlength=RADIX_SIZE)


def select_key(width, rank, histogram, excluded_keys=None):
    """Key of 0-based ``rank`` in sorted order by radix selection: 16-bit
    digits from the top, ``histogram(prefix, shift)`` giving the counts of
    the digit at ``shift`` among keys whose higher bits equal ``prefix``
    (over one matrix, or summed over a cluster's blocks: integers, exact),
    leaving out one occurrence of each of ``excluded_keys`` if given. Plain
    Python: 2 or 4 histogram passes."""
    prefix = 0
    for shift in range(width - RADIX_BITS, -1, -RADIX_BITS):
        counts = histogram(prefix, shift)
        if excluded_keys is not None:
            counts = counts - excluded_digit_histogram(excluded_keys, prefix, shift)
        if shift == width - RADIX_BITS:
            # The top digit carries the sign: visit it in signed order.
            order = np.r_[np.arange(RADIX_SIZE // 2, RADIX_SIZE), np.arange(RADIX_SIZE // 2)]
        else:
            order = np.arange(RADIX_SIZE)
        cumulative = np.cumsum(counts[order])
        position = int(np.searchsorted(cumulative, rank, side="right"))
        digit = int(order[position])
        rank -= int(cumulative[position - 1]) if position > 0 else 0
        if shift == width - RADIX_BITS:
            prefix = digit - RADIX_SIZE if digit >= RADIX_SIZE // 2 else digit
        else:
            prefix = (prefix << RADIX_BITS) | digit
    return prefix


def _select_key(S_bits, rank, n_tasks, excluded_keys=None):
    """Key of the element of 0-based ``rank`` of a matrix (radix select)."""
    return select_key(
        S_bits.itemsize * 8, rank,
        lambda prefix, shift: digit_histogram(S_bits, prefix, shift, n_tasks), excluded_keys,
    )


def key_to_value(key, dtype):
    key_array = bits_view(np.zeros(1, dtype=dtype))
    key_array[0] = key
    return order_key(key_array).view(dtype)[0]


def middle_mean(low, high, dtype):
    # np.median averages the two middle values in the array's dtype.
    return dtype.type((dtype.type(low) + dtype.type(high)) / dtype.type(2))


def _radix_median(S, n_tasks):
    """Exact median by radix selection over order-preserving integer keys:
    five read-only passes over ``S`` with 16-bit digit histograms."""
    dtype = S.dtype
    S_bits = bits_view(S)
    size = S.size
    low_rank = (size - 1) // 2
    low_key = _select_key(S_bits, low_rank, n_tasks)
    low = key_to_value(low_key, dtype)
    if size % 2 == 1:
        return dtype.type(low)
    not_above, next_key = count_not_above_and_next(S_bits, S_bits.dtype.type(low_key), n_tasks)
    high = low if not_above > low_rank + 1 else key_to_value(next_key, dtype)
    return middle_mean(low, high, dtype)


@parallel_kernel
def count_below_and_gather_window(S, low, high, window_values):
    """Count entries below ``low``; copy those in ``[low, high]`` into the
    task's row of ``window_values`` (counted even beyond its capacity, when
    the last slot is overwritten and the caller must not use the row)."""
    n_rows = S.shape[0]
    n_tasks, capacity = window_values.shape
    below = np.zeros(n_tasks, dtype=np.int64)
    inside = np.zeros(n_tasks, dtype=np.int64)
    for task in prange(n_tasks):
        n_below = 0
        n_inside = 0
        gathered = window_values[task]
        last = capacity - 1
        for i in range(task * n_rows // n_tasks, (task + 1) * n_rows // n_tasks):
            row = S[i]
            for j in range(row.size):
                x = row[j]
                n_below += x < low
                # Branch-free: always store, advance only when inside.
                gathered[min(n_inside, last)] = x
                n_inside += (x >= low) & (x <= high)
        below[task] = n_below
        inside[task] = n_inside
    return below, inside


# Sampled selection: a window around the median estimated from a sample of
# _MEDIAN_SAMPLE entries should hold ~2% of the matrix; one pass counts what
# lies below it and gathers what lies inside, then the window is partitioned.
_MEDIAN_SAMPLE = 1 << 16
_MEDIAN_WINDOW = 0.01  # quantile half-width, ~5 standard errors of the sample median
_MEDIAN_CAPACITY = 0.05  # of the matrix, shared by the tasks


def _window_capacity(size, n_tasks):
    """Window entries each task may gather: ``_MEDIAN_CAPACITY`` of the
    matrix split over the tasks (each reads ``1 / n_tasks`` of the rows, so
    holds about that share of a ~2% window: 2.5x headroom), so the window
    stays ~5% of the matrix for any thread count (with a whole share per
    task, 20 threads reserved a whole N x N). A task that overflows sends
    the selection to the exact radix fallback."""
    return max(1, int(_MEDIAN_CAPACITY * size / n_tasks))


def median_of_matrix(S, n_tasks):
    """Exactly ``np.median(S)`` for a finite, C-contiguous float matrix,
    without the N x N copy ``np.median`` makes.

    Small matrices: ``np.median`` itself. Large ones: a sample of the entries
    brackets the median; one pass counts the entries below the bracket and
    gathers those inside (~2%), whose partition gives the middle values. If
    the bracket misses (the sample is unlucky or the values are heavily
    tied), radix selection finds them instead (five passes). The sample uses
    its own fixed-seed generator: the caller's random state is not touched.
    """
    size = S.size
    dtype = S.dtype
    if size <= 4 * _MEDIAN_SAMPLE:
        return dtype.type(np.median(S))
    low_rank = (size - 1) // 2
    high_rank = size // 2
    flat = S.reshape(-1)
    sample = np.sort(flat[np.random.default_rng(0).integers(0, size, _MEDIAN_SAMPLE)])
    low = sample[int((0.5 - _MEDIAN_WINDOW) * _MEDIAN_SAMPLE)]
    high = sample[int((0.5 + _MEDIAN_WINDOW) * _MEDIAN_SAMPLE)]
    capacity = _window_capacity(size, n_tasks)
    window_values = np.empty((n_tasks, capacity), dtype=dtype)
    below, inside = count_below_and_gather_window(S, low, high, window_values)
    n_below = int(below.sum())
    window_holds_middle = n_below <= low_rank and high_rank < n_below + int(inside.sum())
    if inside.max() >= capacity or not window_holds_middle:
        return _radix_median(S, n_tasks)
    window = np.concatenate([window_values[t, : inside[t]] for t in range(n_tasks)])
    ranks = [low_rank - n_below, high_rank - n_below]
    middle = np.partition(window, ranks)[ranks]
    if size % 2 == 1:
        return dtype.type(middle[0])
    return middle_mean(middle[0], middle[1], dtype)


def _remove_values(sorted_values, removed):
    """``sorted_values`` less one occurrence of each of ``removed`` (all present)."""
    if removed.size == 0:
        return sorted_values
    removed = np.sort(removed)
    positions = np.searchsorted(sorted_values, removed, side="left")
    # Equal removed values take consecutive positions.
    positions += np.arange(removed.size) - np.searchsorted(removed, removed, side="left")
    keep = np.ones(sorted_values.size, dtype=np.bool_)
    keep[positions] = False
    return sorted_values[keep]


def _radix_off_diagonal(S, ranks, n_tasks):
    S_bits = bits_view(S)
    diagonal_keys = order_key(bits_view(np.ascontiguousarray(np.diagonal(S))))
    return np.array(
        [key_to_value(_select_key(S_bits, rank, n_tasks, diagonal_keys), S.dtype)
         for rank in ranks],
        dtype=S.dtype,
    )


def off_diagonal_order_statistics(S, ranks, n_tasks):
    """Values of the given 0-based ``ranks`` among the off-diagonal entries of
    a square, finite, C-contiguous float matrix in sorted order, without
    copying it (as :func:`median_of_matrix`: a sampled window gathered in one
    pass, radix selection if the window misses). ``ranks`` ascending."""
    n = S.shape[0]
    ranks = np.asarray(ranks, dtype=np.int64)
    n_off = n * n - n
    if S.size <= 4 * _MEDIAN_SAMPLE:
        return np.sort(S[~np.eye(n, dtype=np.bool_)])[ranks]
    flat = S.reshape(-1)
    picks = np.random.default_rng(0).integers(0, S.size, _MEDIAN_SAMPLE)
    sample = np.sort(flat[picks[picks % (n + 1) != 0]])
    low_fraction = ranks[0] / n_off - _MEDIAN_WINDOW
    high_fraction = ranks[-1] / n_off + _MEDIAN_WINDOW
    # An open end when the window reaches past the sample: the minimum or
    # maximum (q = 0 or 1) is then gathered with its neighbours.
    low = sample[int(low_fraction * sample.size)] if low_fraction > 0 else -np.inf
    high = sample[int(high_fraction * sample.size)] if high_fraction < 1 else np.inf
    capacity = _window_capacity(S.size, n_tasks)
    window_values = np.empty((n_tasks, capacity), dtype=S.dtype)
    below, inside = count_below_and_gather_window(
        S, S.dtype.type(low), S.dtype.type(high), window_values
    )
    if inside.max() >= capacity:
        return _radix_off_diagonal(S, ranks, n_tasks)
    diagonal = np.diagonal(S)
    n_below = int(below.sum()) - int(np.count_nonzero(diagonal < low))
    window = np.sort(np.concatenate([window_values[t, : inside[t]] for t in range(n_tasks)]))
    window = _remove_values(window, diagonal[(diagonal >= low) & (diagonal <= high)])
    if not (n_below <= ranks[0] and ranks[-1] < n_below + window.size):
        return _radix_off_diagonal(S, ranks, n_tasks)
    return window[ranks - n_below]


def off_diagonal_quantile(S, q, n_tasks):
    """``np.quantile`` (linear method) of the off-diagonal entries of ``S``,
    exactly, without the copy: R's ``quantile(s, q)`` as apcluster uses it."""
    n = S.shape[0]
    n_off = n * n - n
    virtual_index = (n_off - 1) * q
    lower = min(int(np.floor(virtual_index)), n_off - 1)
    upper = min(lower + 1, n_off - 1)
    low, high = off_diagonal_order_statistics(S, [lower, upper], n_tasks)
    # NumPy's own interpolation between the two neighbours: same weight
    # (virtual_index - lower), same rounding as on the whole array.
    return S.dtype.type(np.quantile(np.array([low, high]), virtual_index - lower))
