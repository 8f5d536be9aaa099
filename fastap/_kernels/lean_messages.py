"""The lean engine's message updates: ``R`` is never stored.

With damping ``d_t`` in iteration ``t`` and ``R`` starting at zero, the
responsibility update of Frey & Dueck (2007) ::

    R_t(i, k) = d_t R_{t-1}(i, k) + (1 - d_t) (S(i, k) - Y1_t(i))    k != k*_t(i)
    R_t(i, k*) = d_t R_{t-1}(i, k*) + (1 - d_t) (S(i, k*) - Y2_t(i))

(``Y1``, ``Y2`` the largest and second largest value of ``A(i, :) + S(i, :)``,
``k*`` the first arg-maximum) is linear in its inputs, so off the diagonal ::

    R_t(i, k) = c_t S(i, k) - z_t(i) + E_t(i, k)
    c_t    = d_t c_{t-1} + (1 - d_t)                       (one scalar)
    z_t(i) = d_t z_{t-1}(i) + (1 - d_t) Y1_t(i)            (one value per row)
    E_t(i, k) = d_t E_{t-1}(i, k) + (1 - d_t) (Y1_t(i) - Y2_t(i)) [k == k*_t(i)]

``E`` is non-zero only at columns that were once the row's arg-maximum; it
is kept as a short per-row list of ``(column, value)`` entries. The diagonal
``R(k, k)`` (read unclipped by the availability, and shifted alone by a new
preference) is stored as a vector and updated exactly as the stored-R
engine does. An iteration then reads ``S`` and ``A`` and writes ``A``
(three transfers per element instead of five) and holds two N x N matrices
instead of three.

One pass over the rows does, for row ``i`` (as the stored engine, see
``messages.py``, with ``R`` rebuilt on the fly):

1. rebuild ``R_{t-1}(i, :)`` from ``c_{t-1}``, ``z_{t-1}(i)`` and the row's
   list, finish the off-diagonal availability of iteration ``t - 1`` with
   the damping iteration ``t - 1`` ran with, and take the maximum of
   ``A + S`` per chunk of the row as it is formed;
2. from the chunk maxima, the maximum, first arg-maximum and second
   maximum of ``A(i, :) + S(i, :)`` (:func:`_search`);
3. update ``z(i)``, the row's list and ``R(i, i)`` with this iteration's
   damping;
4. rebuild ``R_t(i, :)`` (the row of ``S`` is still in cache) and add its
   positive part into the float64 column sums of the row's group.

Step 4 of row ``i`` shares one loop with step 1 of row ``i + 1``. Hot loops
use ``c S - z`` alone; the few list columns and the diagonal are saved
before a loop and redone after it with their exact value (each a single
operation, bitwise what a per-element branch would give). Chunks where
``c S - z`` cannot be positive (known from each chunk's largest ``S``) skip
step 4 and finish ``A`` in a shorter form (see :func:`_stream_rows`).

The correction list
-------------------
Rule: after the update of row ``i`` an entry ``e`` at column ``k`` is
dropped when ::

    |e| <= (eps / 2) (c_t |S(i, k)| + |z_t(i)|)

``eps`` the machine epsilon of the message dtype: ``e`` is then no larger
than the rounding error of rebuilding ``c S - z`` itself, so the dropped
entry is below the resolution of the row's values. A row gains at most one
entry per iteration; the capacity (entries per row, the same for all rows)
starts at ``INITIAL_CAPACITY`` and the driver doubles it, up to
``MAX_CAPACITY``, as soon as one row fills it, so no entry above the
threshold is ever lost below that bound. At ``MAX_CAPACITY`` a full row
evicts its smallest entry and records its magnitude in ``evicted``.

Error bound (exact arithmetic, against the same recurrence with unbounded
lists): a dropped entry's own future is ``e`` times the product of the
later dampings, so the error it leaves in ``R(i, k)`` never exceeds its
threshold and decays; a column can be dropped again only after it was the
arg-maximum again, so over the run ::

    |R_lean(i, k) - R_exact(i, k)| <= tau(i, k) / (1 - d_max) + evicted(i)

with ``tau`` the threshold above (at most ``eps/2`` times the magnitudes
rebuilding ``R`` adds anyway) and ``evicted(i) = 0`` unless the capacity
bound was reached. Apart from that, the engine's rounding differs from the
stored engine's: ``z`` and ``E`` are kept in float64 and ``R`` is rounded
once when rebuilt instead of after every iteration.

Arrays
------
S : ndarray (n, n), C order, float32 or float64. Read only.
A : ndarray (n, n), dtype of S. Overwritten in place (diagonal complete,
    off-diagonal pending as in ``messages.py``).
R_diagonal : ndarray (n,), dtype of S. ``R(k, k)``, updated in place.
row_offset : ndarray (n,), float64. ``z(i)``.
correction_columns : ndarray (n, capacity), int32; correction_values :
    ndarray (n, capacity), float64; correction_count : ndarray (n,), int64.
    The lists: row ``i`` holds ``correction_count[i]`` entries, in no order.
Each thread owns whole groups of rows (rows, their list and their scalars),
so results do not depend on the number of threads.

References
----------
B. J. Frey and D. Dueck, "Clustering by Passing Messages Between Data
Points", Science 315 (2007), 972-976.
"""

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from fastap._kernels._jit import parallel_kernel, serial_kernel
from fastap._kernels.messages import SEARCH_CHUNK, next_availability, search_chunks

INITIAL_CAPACITY = 8
MAX_CAPACITY = 256


# --------------------------------------------------------------------------
# One row's scalars and list (steps 2-3).
# --------------------------------------------------------------------------


@serial_kernel
def _add_correction(i, best_index, gap, columns, values, count, evicted):
    """Add ``gap`` to the entry of column ``best_index`` (inserted if absent;
    at full capacity the smallest entry makes room and is recorded)."""
    n_entries = count[i]
    for m in range(n_entries):
        if columns[m] == best_index:
            values[m] += gap
            return
    capacity = columns.size
    if n_entries < capacity:
        columns[n_entries] = best_index
        values[n_entries] = gap
        count[i] = n_entries + 1
        return
    smallest = 0
    for m in range(1, n_entries):
        if abs(values[m]) < abs(values[smallest]):
            smallest = m
    evicted[i] = max(evicted[i], abs(values[smallest]))
    columns[smallest] = best_index
    values[smallest] = gap


@serial_kernel
def _update_row_scalars(
    i, S_row, best_index, best_value, second_value, R_diagonal, row_offset, columns, values,
    count, evicted, scale, damping, one_minus_damping, resolution,
):
    """Step 3 for row ``i``: ``z(i)``, the list and ``R(i, i)``; then the
    entries below the resolution of the row's values are dropped."""
    dtype = S_row.dtype.type
    damping_m = dtype(damping)
    one_minus_damping_m = dtype(one_minus_damping)
    subtracted = second_value if best_index == i else best_value
    R_diagonal[i] = R_diagonal[i] * damping_m + (S_row[i] - subtracted) * one_minus_damping_m
    offset = damping * row_offset[i] + one_minus_damping * np.float64(best_value)
    row_offset[i] = offset
    for m in range(count[i]):
        values[m] *= damping
    if best_index != i:
        gap = one_minus_damping * (np.float64(best_value) - np.float64(second_value))
        _add_correction(i, best_index, gap, columns, values, count, evicted)
    m = 0
    while m < count[i]:
        k = columns[m]
        threshold = resolution * (scale * abs(np.float64(S_row[k])) + abs(offset))
        if abs(values[m]) <= threshold:
            last = count[i] - 1
            columns[m] = columns[last]
            values[m] = values[last]
            count[i] = last
        else:
            m += 1


# --------------------------------------------------------------------------
# Steps 1 and 4 on whole rows.
# --------------------------------------------------------------------------


@serial_kernel
def _rebuilt(scale, s, offset, correction):
    """``R(i, k)`` at a list column: ``c S(i, k) - z(i) + E(i, k)``."""
    return scale * s - offset + correction


# --------------------------------------------------------------------------
# Steps 1 and 4 on whole rows, with the row search folded in.
#
# The streaming loop takes each chunk's maximum of A + S + 0 on integer
# keys (float_key) as it forms the values, so no row of values is stored
# and searched again: only the winning chunk is formed a second time, from
# A and S in cache. Before the loop, A is set to -inf at the list columns
# and the diagonal, whose value the loop would get wrong: their key is then
# the lowest, and the exact value found after the loop can only raise its
# chunk's maximum.
# --------------------------------------------------------------------------

# Elements per search chunk: messages.py's (search_chunks counts them).


@intrinsic
def float_key(typingctx, value):
    """Order-preserving integer key of a float (see ``_order.py``), in one
    register: int32 for float32 (16 lanes in AVX-512, where NumPy-style
    integer promotion would widen it to int64)."""
    if value == types.float32:
        key_type, width = types.int32, 32
    elif value == types.float64:
        key_type, width = types.int64, 64
    else:
        return None

    def codegen(context, builder, signature, arguments):
        int_type = ir.IntType(width)
        bits = builder.bitcast(arguments[0], int_type)
        sign = builder.ashr(bits, ir.Constant(int_type, width - 1))
        magnitude = builder.and_(sign, ir.Constant(int_type, (1 << (width - 1)) - 1))
        return builder.xor(bits, magnitude)

    return key_type(value), codegen


@intrinsic
def key_float(typingctx, key, like):
    """The float of dtype ``like`` whose :func:`float_key` is ``key``."""
    if like == types.float32 and key == types.int32:
        width = 32
    elif like == types.float64 and key == types.int64:
        width = 64
    else:
        return None

    def codegen(context, builder, signature, arguments):
        int_type = ir.IntType(width)
        bits = arguments[0]
        sign = builder.ashr(bits, ir.Constant(int_type, width - 1))
        magnitude = builder.and_(sign, ir.Constant(int_type, (1 << (width - 1)) - 1))
        float_type = ir.FloatType() if width == 32 else ir.DoubleType()
        return builder.bitcast(builder.xor(bits, magnitude), float_type)

    return like(key, like), codegen


# The chunk helpers take whole rows and unsigned bounds: with a signed
# offset index Numba keeps a negative-index branch and the loop does not
# vectorize; slicing every chunk instead costs ~40% of a simple loop.


@serial_kernel
def _chunk_sums(lo, hi, S_i, group_sum, scale, offset):
    """Step 4 on a chunk: ``group_sum += max(c S - z, 0)``."""
    zero = S_i.dtype.type(0)
    for k in range(lo, hi):
        group_sum[k] += max(scale * S_i[k] - offset, zero)


@serial_kernel
def _chunk_keys(lo, hi, S_j, A_j):
    """Largest key of ``A + S + 0`` on a chunk (A complete)."""
    zero = S_j.dtype.type(0)
    top = float_key(S_j.dtype.type(-np.inf))
    for k in range(lo, hi):
        key = float_key(A_j[k] + S_j[k] + zero)
        top = key if key > top else top
    return top


@serial_kernel
def _chunk_availability_keys(lo, hi, S_j, A_j, col_sum, scale, offset, damping, one_minus_damping):
    """Step 1 on a chunk: finish ``A`` with ``R = c S - z``; largest key."""
    zero = S_j.dtype.type(0)
    top = float_key(S_j.dtype.type(-np.inf))
    for k in range(lo, hi):
        r = scale * S_j[k] - offset
        a = next_availability(A_j[k], r, col_sum[k], damping, one_minus_damping, zero)
        A_j[k] = a
        key = float_key(a + S_j[k] + zero)
        top = key if key > top else top
    return top


@serial_kernel
def _chunk_sums_availability_keys(
    lo, hi, S_i, group_sum, scale, offset, S_j, A_j, col_sum, next_scale, next_offset, damping,
    one_minus_damping,
):
    """Step 4 for row ``i`` and step 1 for row ``j`` on a chunk, one loop:
    the row of ``S`` in cache is summed while the next one streams in."""
    zero = S_j.dtype.type(0)
    top = float_key(S_j.dtype.type(-np.inf))
    for k in range(lo, hi):
        group_sum[k] += max(scale * S_i[k] - offset, zero)
        r = next_scale * S_j[k] - next_offset
        a = next_availability(A_j[k], r, col_sum[k], damping, one_minus_damping, zero)
        A_j[k] = a
        key = float_key(a + S_j[k] + zero)
        top = key if key > top else top
    return top


@serial_kernel
def _chunk_cold_availability_keys(lo, hi, S_j, A_j, cold_terms, damping):
    """Step 1 on a chunk where no ``R`` is positive: ``Rp = 0``, so the
    update is ``A d - max(-col_sum, 0) (1 - d)``, the last term per column
    (``cold_terms``, the same products as the full formula); largest key."""
    zero = S_j.dtype.type(0)
    top = float_key(S_j.dtype.type(-np.inf))
    for k in range(lo, hi):
        a = A_j[k] * damping - cold_terms[k]
        A_j[k] = a
        key = float_key(a + S_j[k] + zero)
        top = key if key > top else top
    return top


@serial_kernel
def _stream_rows(
    S_i, chunk_max_i, group_sum, scale, offset, sums, S_j, chunk_max_j, A_j, col_sum,
    cold_terms, next_scale, next_offset, damping, one_minus_damping, mode, chunk_top,
):
    """Step 4 for row ``i`` if ``sums``; for row ``j`` by ``mode``: 0
    nothing, 1 keys of ``A + S`` (``A`` complete), 2 finish ``A`` and keys.
    Chunk maxima of the keys go to ``chunk_top``.

    ``R = c S - z`` rounds monotonically in ``S``, so a chunk's largest
    ``R`` is ``c max(S) - z`` over the chunk (``chunk_max_*``, off the
    diagonal): where it is not positive, step 4 adds nothing (skipped) and
    step 1 takes the cheaper form. Most chunks of most rows are such.
    Choices are made per chunk, never per element.
    """
    n = S_j.size
    zero = S_j.dtype.type(0)
    for chunk in range(search_chunks(n)):
        lo = np.uint64(chunk * SEARCH_CHUNK)
        hi = np.uint64(min(chunk * SEARCH_CHUNK + SEARCH_CHUNK, n))
        hot_i = sums and scale * chunk_max_i[chunk] - offset > zero
        hot_j = mode == 2 and next_scale * chunk_max_j[chunk] - next_offset > zero
        if hot_i and hot_j:
            chunk_top[chunk] = _chunk_sums_availability_keys(
                lo, hi, S_i, group_sum, scale, offset, S_j, A_j, col_sum, next_scale,
                next_offset, damping, one_minus_damping,
            )
            continue
        if hot_i:
            _chunk_sums(lo, hi, S_i, group_sum, scale, offset)
        if mode == 2:
            if hot_j:
                chunk_top[chunk] = _chunk_availability_keys(
                    lo, hi, S_j, A_j, col_sum, next_scale, next_offset, damping,
                    one_minus_damping,
                )
            else:
                chunk_top[chunk] = _chunk_cold_availability_keys(
                    lo, hi, S_j, A_j, cold_terms, damping
                )
        elif mode == 1:
            chunk_top[chunk] = _chunk_keys(lo, hi, S_j, A_j)


@parallel_kernel
def off_diagonal_chunk_maxima(S, chunk_max):
    """``chunk_max[i, c]``: the largest ``S(i, k)`` over the search chunk
    ``c`` of row ``i``, the diagonal left out (-inf for a chunk holding only
    the diagonal). ``chunk_max`` : ``(n, search_chunks(n))``, dtype of S."""
    n = S.shape[0]
    minus_inf = S.dtype.type(-np.inf)
    for i in prange(n):
        row = S[i]
        for chunk in range(search_chunks(n)):
            top = minus_inf
            for k in range(chunk * SEARCH_CHUNK, min(chunk * SEARCH_CHUNK + SEARCH_CHUNK, n)):
                if k != i:
                    top = max(top, row[k])
            chunk_max[i, chunk] = top


@parallel_kernel
def cold_availability_terms(col_sum, one_minus_damping, cold_terms):
    """``cold_terms[k] = max(-col_sum[k], 0) * (1 - d)`` (see
    :func:`_chunk_cold_availability_keys`), in the dtype of ``col_sum``."""
    zero = col_sum.dtype.type(0)
    for k in prange(col_sum.size):
        cold_terms[k] = max(zero - col_sum[k], zero) * one_minus_damping


@serial_kernel
def _search(S_row, A_row, chunk_top, chunk_values):
    """Return ``(best_index, best_value, second_value)`` of ``A + S + 0``
    from the chunk maxima: the first chunk holding the maximum is formed
    again into ``chunk_values`` (scratch, ``SEARCH_CHUNK`` long) for the
    first arg-maximum (as ``np.argmax``) and the chunk's second maximum."""
    n = S_row.size
    n_chunks = search_chunks(n)
    best_chunk = 0
    best_key = chunk_top[0]
    for chunk in range(1, n_chunks):
        if chunk_top[chunk] > best_key:  # strictly: the first chunk holding it
            best_key = chunk_top[chunk]
            best_chunk = chunk
    lo = best_chunk * SEARCH_CHUNK
    hi = min(lo + SEARCH_CHUNK, n)
    values = chunk_values[: hi - lo]
    _form_values(S_row[lo:hi], A_row[lo:hi], values)
    first = values.size
    for k in range(values.size):
        first = min(first, k if float_key(values[k]) == best_key else values.size)
    second_key = float_key(S_row.dtype.type(-np.inf))
    second_key = max(second_key, _chunk_top(values[:first]))
    second_key = max(second_key, _chunk_top(values[first + 1 :]))
    for chunk in range(n_chunks):
        if chunk != best_chunk:
            second_key = max(second_key, chunk_top[chunk])
    return lo + first, values[first], key_float(second_key, values[first])


@serial_kernel
def _form_values(S_segment, A_segment, values):
    zero = S_segment.dtype.type(0)
    for k in range(values.size):
        values[k] = A_segment[k] + S_segment[k] + zero


@serial_kernel
def _chunk_top(values):
    top = float_key(values.dtype.type(-np.inf))
    for k in range(values.size):
        key = float_key(values[k])
        top = key if key > top else top
    return top


@serial_kernel
def _poison_availability(j, A_row, columns, n_entries, saved):
    """Save ``A`` at the list columns and the diagonal, set them to -inf."""
    minus_inf = A_row.dtype.type(-np.inf)
    for m in range(n_entries):
        saved[m] = A_row[columns[m]]
        A_row[columns[m]] = minus_inf
    diagonal = A_row[j]
    A_row[j] = minus_inf
    return diagonal


@serial_kernel
def _fix_availability(
    j, diagonal, S_row, A_row, col_sum, scale, offset, columns, values, n_entries, damping,
    one_minus_damping, saved, chunk_top,
):
    """Step 1 at the list columns (exact ``R``, from the saved ``A``) and the
    diagonal (kept); their keys join their chunks' maxima."""
    dtype = S_row.dtype.type
    zero = dtype(0)
    for m in range(n_entries):
        k = columns[m]
        r = _rebuilt(scale, S_row[k], offset, dtype(values[m]))
        a = next_availability(dtype(saved[m]), r, col_sum[k], damping, one_minus_damping, zero)
        A_row[k] = a
        chunk = k // SEARCH_CHUNK
        chunk_top[chunk] = max(chunk_top[chunk], float_key(a + S_row[k] + zero))
    A_row[j] = diagonal
    chunk = j // SEARCH_CHUNK
    chunk_top[chunk] = max(chunk_top[chunk], float_key(diagonal + S_row[j] + zero))


@serial_kernel
def _save_sums(i, group_sum, columns, n_entries, saved):
    for m in range(n_entries):
        saved[m] = group_sum[columns[m]]
    return group_sum[i]


@serial_kernel
def _fix_sums(
    i, diagonal_before, S_row, group_sum, scale, offset, columns, values, n_entries,
    R_diagonal_i, saved,
):
    """Redo step 4 at the list columns (from the sums saved before the loop,
    one addition each: bitwise the plain order) and at the diagonal, where
    ``R(i, i)`` is added unclipped."""
    dtype = S_row.dtype.type
    zero = dtype(0)
    for m in range(n_entries):
        k = columns[m]
        r = _rebuilt(scale, S_row[k], offset, dtype(values[m]))
        group_sum[k] = saved[m] + max(r, zero)
    group_sum[i] = diagonal_before + R_diagonal_i


@serial_kernel
def _update_lean_rows(
    first_row, last_row, S, A, col_sum, group_sum, R_diagonal, row_offset, columns, values,
    count, evicted, finish, previous, current, resolution, chunk_values, chunk_top, saved,
    chunk_max, cold_terms,
):
    """Steps 1-4 for rows ``[first_row, last_row)``, in order: one streaming
    pass per row does step 4 of row ``i`` and step 1 of row ``i + 1``.

    ``previous = (c, d, 1 - d)`` of the last iteration (finishing its
    availabilities), ``current = (c, d, 1 - d)`` of this one, both float64
    (the message dtype's values are these rounded).
    """
    if first_row >= last_row:
        return
    dtype = S.dtype.type
    previous_scale = dtype(previous[0])
    previous_damping = dtype(previous[1])
    previous_one_minus = dtype(previous[2])
    scale64, damping64, one_minus64 = current
    scale = dtype(scale64)
    saved_sums = saved[0]
    saved_availability = saved[1]
    mode = 2 if finish else 1
    diagonal = dtype(0)
    for i in range(first_row - 1, last_row):
        # Step 4 for row i (none before the first), step 1 for row j.
        j = i + 1
        has_sums = i >= first_row
        has_next = j < last_row
        offset = dtype(row_offset[i]) if has_sums else dtype(0)
        n_entries = count[i] if has_sums else 0
        diagonal_before = 0.0
        if has_sums:
            diagonal_before = _save_sums(i, group_sum, columns[i], n_entries, saved_sums)
        next_mode = mode if has_next else 0
        next_row = j if has_next else i
        next_entries = count[j] if next_mode == 2 else 0
        next_offset = dtype(row_offset[next_row])
        if next_mode == 2:
            diagonal = _poison_availability(
                j, A[j], columns[j], next_entries, saved_availability
            )
        row = max(i, first_row)
        _stream_rows(
            S[row], chunk_max[row], group_sum, scale, offset, has_sums, S[next_row],
            chunk_max[next_row], A[next_row], col_sum, cold_terms, previous_scale, next_offset,
            previous_damping, previous_one_minus, next_mode, chunk_top,
        )
        if has_sums:
            _fix_sums(
                i, diagonal_before, S[i], group_sum, scale, offset, columns[i], values[i],
                n_entries, R_diagonal[i], saved_sums,
            )
        if not has_next:
            break
        if next_mode == 2:
            _fix_availability(
                j, diagonal, S[j], A[j], col_sum, previous_scale, next_offset, columns[j],
                values[j], next_entries, previous_damping, previous_one_minus,
                saved_availability, chunk_top,
            )
        # Steps 2-3 for row j.
        best_index, best_value, second_value = _search(S[j], A[j], chunk_top, chunk_values)
        _update_row_scalars(
            j, S[j], best_index, best_value, second_value, R_diagonal, row_offset, columns[j],
            values[j], count, evicted, scale64, damping64, one_minus64, resolution,
        )


@serial_kernel
def _update_lean_group(
    group, group_rows, S, A, col_sum, group_sums, R_diagonal, row_offset, columns, values,
    count, evicted, finish, previous, current, resolution, chunk_values, chunk_top, saved,
    chunk_max, cold_terms,
):
    n = S.shape[0]
    group_sum = group_sums[group]
    group_sum[:] = 0.0
    _update_lean_rows(
        group * group_rows, min((group + 1) * group_rows, n), S, A, col_sum, group_sum,
        R_diagonal, row_offset, columns, values, count, evicted, finish, previous, current,
        resolution, chunk_values, chunk_top, saved, chunk_max, cold_terms,
    )


# Arguments shared by the pass kernels
# ------------------------------------
# S, A, R_diagonal, row_offset, columns, values, count : see the module docstring.
# col_sum : ndarray (n,), dtype of S; column sums of Rp of the last pass. Read only.
# group_sums : ndarray (n_groups, n), float64; receives each group's column
#     sums of Rp (rows of group g: [g * group_rows, (g + 1) * group_rows)), added
#     in row order; the caller adds the groups in order (messages.add_group_sums).
# evicted : ndarray (n,), float64; largest entry evicted from a full list.
# finish : bool; False while A is complete (first iteration, after a reset).
# previous, current : see _update_lean_rows.
# resolution : float64; half the machine epsilon of the dtype of S.
# chunk_values : (n_threads, SEARCH_CHUNK), dtype of S; chunk_top : (n_threads,
#     search_chunks(n)), int32 for float32 and int64 for float64 (the keys);
#     saved : (n_threads, 2, capacity), float64. Scratch, one row per thread
#     (numba.get_thread_id()).
# chunk_max : (n, search_chunks(n)), dtype of S; off_diagonal_chunk_maxima(S).
# cold_terms : (n,), dtype of S; cold_availability_terms(col_sum, 1 - d of the
#     previous iteration).


@serial_kernel
def update_lean_messages_serial(
    S, A, col_sum, group_sums, R_diagonal, row_offset, columns, values, count, evicted,
    finish, previous, current, resolution, chunk_values, chunk_top, saved, group_rows,
    chunk_max, cold_terms,
):
    """One lean pass on one thread (see the shared arguments above)."""
    for group in range(group_sums.shape[0]):
        _update_lean_group(
            group, group_rows, S, A, col_sum, group_sums, R_diagonal, row_offset, columns,
            values, count, evicted, finish, previous, current, resolution, chunk_values[0],
            chunk_top[0], saved[0], chunk_max, cold_terms,
        )


@parallel_kernel
def update_lean_messages_parallel(
    S, A, col_sum, group_sums, R_diagonal, row_offset, columns, values, count, evicted,
    finish, previous, current, resolution, chunk_values, chunk_top, saved, group_rows,
    chunk_max, cold_terms,
):
    """One lean pass on Numba's threads: each group wholly on one thread, so
    the result is the serial pass's, bitwise. Call it inside
    ``numba.parallel_chunksize(1)``: groups are then handed out one at a
    time (a thread on a shared core does not hold the others up); set here,
    the chunk size would keep the kernel out of the disk cache."""
    n_groups = group_sums.shape[0]
    for group in prange(n_groups):
        thread = numba.get_thread_id()
        _update_lean_group(
            np.int64(group), group_rows, S, A, col_sum, group_sums, R_diagonal, row_offset, columns,
            values, count, evicted, finish, previous, current, resolution, chunk_values[thread],
            chunk_top[thread], saved[thread], chunk_max, cold_terms,
        )


@serial_kernel
def finish_lean_iteration(
    A, R_diagonal, col_sum, col_sum_acc, damping, one_minus_damping, is_exemplar
):
    """Close an iteration in O(n), as ``messages.finish_iteration`` with
    ``R(k, k)`` read from ``R_diagonal``. Returns ``(n_exemplars, n_changed)``."""
    n = A.shape[0]
    n_exemplars = 0
    n_changed = 0
    for k in range(n):
        col_sum[k] = col_sum_acc[k]
        col_sum_acc[k] = 0.0
        A[k, k] = A[k, k] * damping - (R_diagonal[k] - col_sum[k]) * one_minus_damping
        exemplar = A[k, k] + R_diagonal[k] > 0
        n_exemplars += exemplar
        n_changed += exemplar != is_exemplar[k]
        is_exemplar[k] = exemplar
    return n_exemplars, n_changed


# --------------------------------------------------------------------------
# Whole-matrix operations outside the loop.
# --------------------------------------------------------------------------


@serial_kernel
def finish_lean_availability_row(
    i, S_row, A_row, col_sum, scale, offset, columns, values, n_entries, damping,
    one_minus_damping, exact,
):
    """Off-diagonal availability update of row ``i`` with ``R`` rebuilt
    (the diagonal is kept). ``exact`` (float64, at least ``n_entries``)
    is scratch for the list columns, computed first from the old ``A``."""
    dtype = S_row.dtype.type
    zero = dtype(0)
    for m in range(n_entries):
        k = columns[m]
        r = _rebuilt(scale, S_row[k], offset, dtype(values[m]))
        exact[m] = next_availability(A_row[k], r, col_sum[k], damping, one_minus_damping, zero)
    diagonal = A_row[i]
    for k in range(S_row.size):
        A_row[k] = next_availability(
            A_row[k], scale * S_row[k] - offset, col_sum[k], damping, one_minus_damping, zero
        )
    for m in range(n_entries):
        A_row[columns[m]] = dtype(exact[m])
    A_row[i] = diagonal


@parallel_kernel
def complete_lean_availability(
    S, A, col_sum, row_offset, columns, values, count, scale, damping, one_minus_damping
):
    """Finish the off-diagonal availabilities of the last iteration (as
    ``messages.complete_availability``, ``R`` rebuilt). Rows are
    independent; ``scale``, ``damping`` and ``one_minus_damping`` in the
    dtype of S are those of the last iteration."""
    dtype = S.dtype.type
    for i in prange(S.shape[0]):
        exact = np.empty(columns.shape[1], dtype=np.float64)
        finish_lean_availability_row(
            np.int64(i), S[i], A[i], col_sum, scale, dtype(row_offset[i]), columns[i],
            values[i], count[i], damping, one_minus_damping, exact,
        )


@parallel_kernel
def shift_lean_preference(
    S, A, col_sum, R_diagonal, row_offset, columns, values, count, delta, finish, scale,
    damping, one_minus_damping,
):
    """Move the messages to preferences ``delta`` (``(n,)``, dtype of S)
    higher, in place, as ``messages.shift_preference`` does with a stored
    ``R``: ``R(k, k)`` and ``col_sum(k)`` move by ``delta(k)`` and every
    ``A(i, k)`` by the change of ``min(0, col_sum(k) - Rp(i, k))``. With
    ``finish`` the last iteration's off-diagonal availabilities are
    finished first, row by row in the same pass. The off-diagonal ``R`` does
    not read ``S``'s diagonal, so the lists and ``z`` stay."""
    n = S.shape[0]
    dtype = S.dtype.type
    zero = dtype(0)
    for i in prange(n):
        S_row = S[i]
        A_row = A[i]
        offset = dtype(row_offset[i])
        n_entries = count[i]
        exact = np.empty(columns.shape[1], dtype=np.float64)
        if finish:
            finish_lean_availability_row(
                np.int64(i), S_row, A_row, col_sum, scale, offset, columns[i], values[i],
                n_entries,
                damping, one_minus_damping, exact,
            )
        for m in range(n_entries):
            k = columns[i, m]
            r = _rebuilt(scale, S_row[k], offset, dtype(values[i, m]))
            target = col_sum[k] - max(r, zero)
            exact[m] = A_row[k] + (min(target + delta[k], zero) - min(target, zero))
        diagonal = A_row[i]
        for k in range(n):
            target = col_sum[k] - max(scale * S_row[k] - offset, zero)
            A_row[k] += min(target + delta[k], zero) - min(target, zero)
        for m in range(n_entries):
            A_row[columns[i, m]] = dtype(exact[m])
        A_row[i] = diagonal
    for k in range(n):
        R_diagonal[k] += delta[k]
        col_sum[k] += delta[k]


@parallel_kernel
def materialize_responsibility(S, R_diagonal, row_offset, columns, values, count, scale, R):
    """Write the whole ``R`` (``(n, n)``, dtype of S) the lean state stands
    for: ``c S - z + E`` off the diagonal, ``R_diagonal`` on it."""
    dtype = S.dtype.type
    for i in prange(S.shape[0]):
        S_row = S[i]
        R_row = R[i]
        offset = dtype(row_offset[i])
        for k in range(S_row.size):
            R_row[k] = scale * S_row[k] - offset
        for m in range(count[i]):
            k = columns[i, m]
            R_row[k] = _rebuilt(scale, S_row[k], offset, dtype(values[i, m]))
        R_row[i] = R_diagonal[i]


@parallel_kernel
def zero_rows(M):
    """``M[:] = 0`` by rows in parallel: a fresh matrix's pages are then
    mapped by the threads that go on to use them (first touch), spread over
    the memory nodes of a multi-socket machine."""
    zero = M.dtype.type(0)
    for i in prange(M.shape[0]):
        row = M[i]
        for k in range(row.size):
            row[k] = zero


# --------------------------------------------------------------------------
# Row steps shared with compact_messages.py, which runs the lean engine's
# steps 2-4 on a row of availabilities it forms itself.
# --------------------------------------------------------------------------

lean_chunk_keys = _chunk_keys
lean_chunk_sums = _chunk_sums
lean_search_row = _search
lean_update_row_scalars = _update_row_scalars
lean_rebuilt_responsibility = _rebuilt
lean_save_list_sums = _save_sums
lean_fix_list_sums = _fix_sums
