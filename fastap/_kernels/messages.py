"""The message updates of Affinity Propagation: responsibility and availability.

This module is the one place where ``R`` (responsibility) and ``A``
(availability) are updated. Frey & Dueck (2007) define, with damping ``d``:

* responsibility ::

      R_new(i, k) = S(i, k) - max_{k' != k} (A(i, k') + S(i, k'))
      R(i, k)     = d * R(i, k) + (1 - d) * R_new(i, k)

* availability, with ``Rp(i, k) = max(R(i, k), 0)`` off the diagonal and
  ``Rp(k, k) = R(k, k)``, and column sums ``col_sum(k) = sum_i Rp(i, k)`` ::

      A_new(i, k) = min(0, col_sum(k) - Rp(i, k))    for i != k
      A_new(k, k) = col_sum(k) - R(k, k)
      A(i, k)     = d * A(i, k) + (1 - d) * A_new(i, k)

Every floating-point operation is written in the order scikit-learn's NumPy
code performs it (``A*d - t*(1-d)``, ``R*d + (S - Y)*(1-d)``, float64 column
sums added row 0, 1, 2, ...), so float64 results are bitwise identical to
scikit-learn's for any number of threads. float32 column sums are added by
fixed groups of rows (see "Two orders" below), also thread-count independent.

How one iteration is fused
--------------------------
Iteration ``t`` needs ``A`` of iteration ``t - 1`` complete before its
responsibility update, and that ``A`` needs the column sums of the whole
``R`` of iteration ``t - 1``. One pass over the rows therefore does, for
row ``i``:

1. finish the off-diagonal availability of iteration ``t - 1`` for row ``i``
   (it needs only ``R(i, :)`` and the column sums of the previous pass);
2. search ``A(i, :) + S(i, :)`` for its maximum, its first arg-maximum and
   the second maximum;
3. update the responsibility row ``R(i, :)``;
4. add ``Rp(i, :)`` to the column sums of this iteration.

The diagonal of ``A`` (needed for the exemplar test) is updated afterwards in
O(N) by :func:`finish_iteration`. ``S``, ``R`` and ``A`` stream through memory
about once per iteration: read ``S``, ``A``, ``R``; write ``A``, ``R``; steps
2-4 read the row again from cache, where step 1 left it (:func:`update_row`).

Memory layout
-------------
``S``, ``R`` and ``A`` are C-contiguous ``(n, n)`` arrays of one float dtype
(float32 or float64). Column sums are accumulated in float64 in
``col_sum_acc`` and rounded once per iteration into ``col_sum`` (message
dtype). ``row_values`` holds one scratch row per task.

References
----------
B. J. Frey and D. Dueck, "Clustering by Passing Messages Between Data
Points", Science 315 (2007), 972-976.
"""

import numpy as np
from numba import prange

from fastap._kernels._jit import parallel_kernel, serial_kernel
from fastap._kernels._order import bits_view, lowest_key_like, order_key

# --------------------------------------------------------------------------
# Row search: max, first arg-max and second max of A(i, :) + S(i, :).
#
# A float compare chain does not vectorize in Numba (the compiler may not
# reorder float max without "no-NaN" flags, which AP's -inf sentinels rule
# out); it cost ~0.6 ns per element, as much as streaming the row from
# memory. Integer reductions do vectorize, so the row is searched on
# order-preserving integer keys (see _order.py). "+ 0" when the row is
# written turns -0.0 into +0.0, so equal floats have equal keys.
# --------------------------------------------------------------------------


# Helpers take slices rather than (start, stop) bounds: with an offset index
# Numba cannot prove the index non-negative, keeps its wraparound branch and
# the loop does not vectorize (0.4 vs 0.13 ns per element).


@serial_kernel
def _max_key(segment_bits):
    top = lowest_key_like(segment_bits)
    for k in range(segment_bits.size):
        top = max(top, order_key(segment_bits[k]))
    return top


@serial_kernel
def _first_index_of_key(segment_bits, key):
    n = segment_bits.size
    first = n
    for k in range(n):
        first = min(first, k if order_key(segment_bits[k]) == key else n)
    return first


# The row is searched in chunks: one vectorized pass records each chunk's
# maximum; the arg-maximum and the second maximum then need only the chunk
# maxima and one chunk (three full passes cost twice as much).
SEARCH_CHUNK = 256


@serial_kernel
def search_chunks(n_samples):
    """Number of search chunks in a row, the length of a ``chunk_top`` row."""
    return (n_samples + SEARCH_CHUNK - 1) // SEARCH_CHUNK


@serial_kernel
def search_row(row_values, chunk_top):
    """Return ``(best_index, best_value, second_value)`` of a row.

    ``best_index`` is the first index of the maximum (as ``np.argmax``) and
    ``second_value`` the maximum over all other indices (equal to
    ``best_value`` on ties). ``row_values[best_index]`` is overwritten;
    ``chunk_top`` (int64, at least ``ceil(n / 256)`` long) is scratch.
    """
    n = row_values.size
    row_bits = bits_view(row_values)
    n_chunks = search_chunks(n)
    best_chunk = 0
    best_key = lowest_key_like(row_bits)
    for chunk in range(n_chunks):
        top = _max_key(row_bits[chunk * SEARCH_CHUNK : (chunk + 1) * SEARCH_CHUNK])
        chunk_top[chunk] = top
        if top > best_key:  # strictly: the first chunk holding the maximum
            best_key = top
            best_chunk = chunk
    start = best_chunk * SEARCH_CHUNK
    best_chunk_bits = row_bits[start : start + SEARCH_CHUNK]
    offset = _first_index_of_key(best_chunk_bits, best_key)
    best_index = start + offset

    second_key = max(_max_key(best_chunk_bits[:offset]), _max_key(best_chunk_bits[offset + 1 :]))
    for chunk in range(n_chunks):
        if chunk != best_chunk:
            second_key = max(second_key, chunk_top[chunk])

    best_value = row_values[best_index]
    # Turn the key back into a float through the shared memory of the row.
    row_bits[best_index] = second_key
    row_bits[best_index] = order_key(row_bits[best_index])
    second_value = row_values[best_index]
    return best_index, best_value, second_value


# --------------------------------------------------------------------------
# One row of the fused pass.
# --------------------------------------------------------------------------


@serial_kernel
def next_availability(a, r, col_sum_k, damping, one_minus_damping, zero):
    """Off-diagonal availability update of one element (scalar)."""
    positive_r = max(r, zero)
    clipped = max(positive_r - col_sum_k, zero)
    return a * damping - clipped * one_minus_damping


@serial_kernel
def next_responsibility(r, s, subtracted, damping, one_minus_damping):
    """Responsibility update of one element (scalar)."""
    return r * damping + (s - subtracted) * one_minus_damping


@serial_kernel
def finish_availability_row(i, A_row, R_row, col_sum, damping, one_minus_damping):
    """Off-diagonal availability update of row ``i`` (the diagonal is kept)."""
    zero = A_row.dtype.type(0)
    diagonal = A_row[i]
    for k in range(A_row.size):
        A_row[k] = next_availability(
            A_row[k], R_row[k], col_sum[k], damping, one_minus_damping, zero
        )
    A_row[i] = diagonal


# Hot loops hold no per-element branch or index comparison (a select on
# ``k == i`` costs 64-bit mask work on every element): the diagonal and the
# arg-max column are saved before a loop and fixed after it.


@serial_kernel
def availability_and_values(
    i, S_row, A_row, R_row, col_sum, previous_damping, previous_one_minus_damping,
    finish_previous, row_values,
):
    """Step 1 for row ``i``: finish ``A(i, :)`` (with the damping of the
    iteration it belongs to) and form ``A + S + 0``."""
    zero = S_row.dtype.type(0)
    if not finish_previous:  # first iteration: A is zero
        for k in range(S_row.size):
            row_values[k] = A_row[k] + S_row[k] + zero
        return
    diagonal = A_row[i]  # A(i, i) is already final
    for k in range(S_row.size):
        a = next_availability(
            A_row[k], R_row[k], col_sum[k], previous_damping, previous_one_minus_damping, zero
        )
        A_row[k] = a
        row_values[k] = a + S_row[k] + zero
    A_row[i] = diagonal
    row_values[i] = diagonal + S_row[i] + zero


@serial_kernel
def responsibility_row(
    S_row, R_row, best_index, best_value, second_value, damping, one_minus_damping
):
    """Step 3 for one row; the arg-max column is compared with the second maximum."""
    r_at_best = R_row[best_index]
    for k in range(S_row.size):
        R_row[k] = next_responsibility(R_row[k], S_row[k], best_value, damping, one_minus_damping)
    R_row[best_index] = next_responsibility(
        r_at_best, S_row[best_index], second_value, damping, one_minus_damping
    )


@serial_kernel
def responsibility_row_and_sums(
    i, S_row, R_row, best_index, best_value, second_value, damping, one_minus_damping,
    col_sum_acc,
):
    """Steps 3 and 4 for row ``i`` in one loop.

    The loop adds ``max(R, 0)`` everywhere; the two sums that need another
    term (the arg-max column, whose ``R`` is fixed after the loop, and the
    diagonal, added unclipped) are saved before and redone after, each as a
    single addition, which is bitwise what the plain order gives.
    """
    zero = S_row.dtype.type(0)
    r_at_best = R_row[best_index]
    sum_before_best = col_sum_acc[best_index]
    sum_before_diagonal = col_sum_acc[i]
    for k in range(S_row.size):
        r = next_responsibility(R_row[k], S_row[k], best_value, damping, one_minus_damping)
        R_row[k] = r
        col_sum_acc[k] += max(r, zero)
    R_row[best_index] = next_responsibility(
        r_at_best, S_row[best_index], second_value, damping, one_minus_damping
    )
    col_sum_acc[best_index] = sum_before_best + max(R_row[best_index], zero)
    col_sum_acc[i] = sum_before_diagonal + R_row[i]


@serial_kernel
def update_row(
    i, S_row, A_row, R_row, col_sum, damping, one_minus_damping, previous_damping,
    previous_one_minus_damping, finish_previous, row_values, chunk_top, accumulate_columns,
    col_sum_acc,
):
    """Steps 1-3 for row ``i`` (its diagonal column), and 4 into
    ``col_sum_acc`` if ``accumulate_columns``.

    Step 3 re-reads the row's ``S`` and ``R`` from cache, where step 1 has
    just brought them. (Overlapping step 3 of row ``i`` with step 1 of row
    ``i + 1`` in one loop was slower: 1.24-1.47x the CPU time of this
    form on one thread at N = 4,000-16,000, float64, 2-core AMD EPYC VM;
    nine streams in one loop against five and four.)
    """
    availability_and_values(
        i, S_row, A_row, R_row, col_sum, previous_damping, previous_one_minus_damping,
        finish_previous, row_values,
    )
    best_index, best_value, second_value = search_row(row_values, chunk_top)
    if accumulate_columns:
        responsibility_row_and_sums(
            i, S_row, R_row, best_index, best_value, second_value, damping, one_minus_damping,
            col_sum_acc,
        )
    else:
        responsibility_row(
            S_row, R_row, best_index, best_value, second_value, damping, one_minus_damping
        )


@serial_kernel
def _update_rows(
    first_row, last_row, S, A, R, col_sum, col_sum_acc, damping, one_minus_damping,
    previous_damping, previous_one_minus_damping, finish_previous, row_values, chunk_top,
    accumulate_columns,
):
    """Steps 1-3 (and 4 if ``accumulate_columns``) for rows ``[first, last)``."""
    for i in range(first_row, last_row):
        update_row(
            i, S[i], A[i], R[i], col_sum, damping, one_minus_damping, previous_damping,
            previous_one_minus_damping, finish_previous, row_values, chunk_top,
            accumulate_columns, col_sum_acc,
        )


@serial_kernel
def _add_positive_part_of_segment(R_segment, col_sum_segment):
    zero = R_segment.dtype.type(0)
    for k in range(R_segment.size):
        col_sum_segment[k] += max(R_segment[k], zero)


@serial_kernel
def add_positive_part(diagonal_index, R_segment, col_sum_segment):
    """Step 4 on one row segment: ``col_sum_segment += Rp`` of the segment.

    ``diagonal_index`` is the position of the row's diagonal within the
    segment (any value outside ``[0, size)`` when it lies elsewhere); there
    ``R`` is added unclipped. The segment is cut around the diagonal with
    slices, which keeps each loop vectorized.
    """
    size = R_segment.size
    if 0 <= diagonal_index < size:
        _add_positive_part_of_segment(R_segment[:diagonal_index], col_sum_segment[:diagonal_index])
        col_sum_segment[diagonal_index] += R_segment[diagonal_index]
        _add_positive_part_of_segment(
            R_segment[diagonal_index + 1 :], col_sum_segment[diagonal_index + 1 :]
        )
    else:
        _add_positive_part_of_segment(R_segment, col_sum_segment)


# --------------------------------------------------------------------------
# Whole passes.
# --------------------------------------------------------------------------


# Two orders for the column sums of step 4, both independent of the thread
# count:
#
# - "ordered" (float64): every column sum is added row by row, 0, 1, 2, ...,
#   scikit-learn's order, so float64 results are bitwise scikit-learn's. In
#   parallel, rows are processed in blocks; after each block, each task adds
#   the block's rows into the sums of the columns it owns (reading rows the
#   other tasks wrote, while they are still in cache).
# - "grouped" (float32, which has no bitwise reference to follow): rows form
#   fixed groups of ``group_rows`` (a function of n only); each group's sum is
#   added row by row in float64 into its own row of ``group_sums`` by the one
#   task that updates the group, then the groups are added in group order.
#   No cross-thread reads and one parallel region per pass: ~12% faster.
#
# Arguments shared by the pass kernels
# ------------------------------------
# S : ndarray (n, n), C order, float32 or float64
#     Similarities with the preferences on the diagonal. Read only.
# A, R : ndarray (n, n), C order, dtype of S
#     Messages, overwritten in place. On return R holds this iteration's
#     responsibilities; A the previous iteration's availabilities (completed
#     off the diagonal when finish_previous).
# col_sum : ndarray (n,), dtype of S
#     Column sums of Rp from the previous pass. Read only.
# col_sum_acc : ndarray (n,), float64
#     Zero on entry; receives this pass's column sums of Rp.
# damping, one_minus_damping : scalars of the dtype of S
#     The damping of this iteration (responsibilities, and the diagonal of A
#     in finish_iteration).
# previous_damping, previous_one_minus_damping : scalars of the dtype of S
#     The damping the previous iteration ran with: its off-diagonal
#     availabilities, finished here, use it (a damping change between two
#     iterations must not reach back into the earlier one).
# finish_previous : bool
#     False on the first iteration, where A is all zero.
# row_values : ndarray (n_tasks, n), dtype of S;  chunk_top : (n_tasks, search_chunks(n)), int64
#     Scratch, one row per task (task t uses row t).


@serial_kernel
def update_messages_serial(
    S, A, R, col_sum, col_sum_acc, damping, one_minus_damping, previous_damping,
    previous_one_minus_damping, finish_previous, row_values, chunk_top,
):
    """One fused AP pass on one thread, ordered column sums (see above)."""
    _update_rows(
        np.int64(0), S.shape[0], S, A, R, col_sum, col_sum_acc, damping, one_minus_damping,
        previous_damping, previous_one_minus_damping, finish_previous, row_values[0],
        chunk_top[0], True,
    )


@parallel_kernel
def update_messages_parallel(
    S, A, R, col_sum, col_sum_acc, damping, one_minus_damping, previous_damping,
    previous_one_minus_damping, finish_previous, row_values, chunk_top, block_rows,
):
    """One fused AP pass on ``row_values.shape[0]`` tasks, ordered column sums.

    Within a block of ``block_rows`` rows, task ``t`` owns a contiguous share
    of the rows (steps 1-3); then each task owns a range of columns and adds
    the block's rows into their sums in increasing row order (step 4). No
    float is accumulated by two tasks; the result is bitwise that of
    :func:`update_messages_serial` for any thread count.
    """
    n = S.shape[0]
    n_tasks = row_values.shape[0]
    n_chunks = min(n, 4 * n_tasks)
    for block_start in range(0, n, block_rows):
        block_stop = min(block_start + block_rows, n)
        block_size = block_stop - block_start
        for task in prange(n_tasks):
            first_row = block_start + task * block_size // n_tasks
            last_row = block_start + (task + 1) * block_size // n_tasks
            _update_rows(
                first_row, last_row, S, A, R, col_sum, col_sum_acc, damping,
                one_minus_damping, previous_damping, previous_one_minus_damping,
                finish_previous, row_values[task], chunk_top[task], False,
            )
        for chunk in prange(n_chunks):
            start = chunk * n // n_chunks
            stop = (chunk + 1) * n // n_chunks
            col_sum_segment = col_sum_acc[start:stop]
            for i in range(block_start, block_stop):
                add_positive_part(i - start, R[i, start:stop], col_sum_segment)


@serial_kernel
def _update_group(
    group, group_rows, S, A, R, col_sum, group_sums, damping, one_minus_damping,
    previous_damping, previous_one_minus_damping, finish_previous, row_values, chunk_top,
):
    n = S.shape[0]
    group_sum = group_sums[group]
    group_sum[:] = 0.0
    _update_rows(
        group * group_rows, min((group + 1) * group_rows, n), S, A, R, col_sum, group_sum,
        damping, one_minus_damping, previous_damping, previous_one_minus_damping,
        finish_previous, row_values, chunk_top, True,
    )


@serial_kernel
def update_messages_grouped_serial(
    S, A, R, col_sum, group_sums, damping, one_minus_damping, previous_damping,
    previous_one_minus_damping, finish_previous, row_values, chunk_top, group_rows,
):
    """One fused AP pass on one thread, grouped column sums (see above).

    ``group_sums`` : ndarray (ceil(n / group_rows), n), float64, scratch.
    The caller adds the groups with :func:`add_group_sums`.
    """
    for group in range(group_sums.shape[0]):
        _update_group(
            group, group_rows, S, A, R, col_sum, group_sums, damping, one_minus_damping,
            previous_damping, previous_one_minus_damping, finish_previous, row_values[0],
            chunk_top[0],
        )


@parallel_kernel
def update_messages_grouped_parallel(
    S, A, R, col_sum, group_sums, damping, one_minus_damping, previous_damping,
    previous_one_minus_damping, finish_previous, row_values, chunk_top, group_rows,
):
    """As :func:`update_messages_grouped_serial`; task ``t`` updates groups
    ``t, t + n_tasks, ...`` (each group wholly by one task, rows in order)."""
    n_tasks = row_values.shape[0]
    n_groups = group_sums.shape[0]
    for task in prange(n_tasks):
        for group in range(task, n_groups, n_tasks):
            _update_group(
                group, group_rows, S, A, R, col_sum, group_sums, damping, one_minus_damping,
                previous_damping, previous_one_minus_damping, finish_previous, row_values[task],
                chunk_top[task],
            )


@parallel_kernel
def add_group_sums(group_sums, col_sum_acc):
    """``col_sum_acc += group_sums[0] + group_sums[1] + ...``, in group order
    for every column (tasks own ranges of columns)."""
    n = col_sum_acc.size
    n_chunks = min(n, 64)
    for chunk in prange(n_chunks):
        start = chunk * n // n_chunks
        stop = (chunk + 1) * n // n_chunks
        col_sum_segment = col_sum_acc[start:stop]
        for group in range(group_sums.shape[0]):
            group_segment = group_sums[group, start:stop]
            for k in range(stop - start):
                col_sum_segment[k] += group_segment[k]


@serial_kernel
def _zero_rows(M, first_row, last_row):
    zero = M.dtype.type(0)
    for i in range(first_row, last_row):
        row = M[i]
        for k in range(row.size):
            row[k] = zero


@parallel_kernel
def zero_rows_as_pass(M, n_tasks, rows_per_unit, grouped):
    """``M[:] = 0``, each row written by the task that updates it in the
    pass: blocks of ``rows_per_unit`` rows shared by the tasks as
    :func:`update_messages_parallel` shares them, or (``grouped``) groups of
    ``rows_per_unit`` rows dealt out as :func:`update_messages_grouped_parallel`
    deals them. On a machine with several memory nodes a page lands on the
    node of the thread that first writes it: the pass then reads local memory.
    """
    n = M.shape[0]
    if grouped:
        n_groups = (n + rows_per_unit - 1) // rows_per_unit
        for task in prange(n_tasks):
            for group in range(task, n_groups, n_tasks):
                _zero_rows(M, group * rows_per_unit, min((group + 1) * rows_per_unit, n))
        return
    for block_start in range(0, n, rows_per_unit):
        block_size = min(block_start + rows_per_unit, n) - block_start
        for task in prange(n_tasks):
            _zero_rows(
                M, block_start + task * block_size // n_tasks,
                block_start + (task + 1) * block_size // n_tasks,
            )


@serial_kernel
def finish_iteration(A, R, col_sum, col_sum_acc, damping, one_minus_damping, is_exemplar):
    """Close an iteration in O(n): diagonal availabilities and exemplar flags.

    Rounds ``col_sum_acc`` into ``col_sum`` (then zeroes ``col_sum_acc`` for
    the next pass), updates ``A(k, k)`` and sets
    ``is_exemplar[k] = A(k, k) + R(k, k) > 0`` in place.

    Returns
    -------
    n_exemplars : int
    n_changed : int
        Number of samples whose exemplar flag differs from its previous value.
    """
    n = A.shape[0]
    n_exemplars = 0
    n_changed = 0
    for k in range(n):
        col_sum[k] = col_sum_acc[k]
        col_sum_acc[k] = 0.0
        A[k, k] = A[k, k] * damping - (R[k, k] - col_sum[k]) * one_minus_damping
        exemplar = A[k, k] + R[k, k] > 0
        n_exemplars += exemplar
        n_changed += exemplar != is_exemplar[k]
        is_exemplar[k] = exemplar
    return n_exemplars, n_changed


@parallel_kernel
def complete_availability(A, R, col_sum, damping, one_minus_damping):
    """Finish the off-diagonal availabilities of the last iteration.

    After the loop, ``A`` is complete on its diagonal only; this brings the
    whole matrix to the state scikit-learn's loop ends in (for warm starts
    and for inspecting the messages). Rows are independent.
    """
    for i in prange(A.shape[0]):
        # int64 as the serial callers' index (a prange index is unsigned: a
        # second compile of the helper).
        finish_availability_row(np.int64(i), A[i], R[i], col_sum, damping, one_minus_damping)


@parallel_kernel
def shift_preference(A, R, col_sum, delta, finish_previous, damping, one_minus_damping):
    """Move the messages to a preference ``delta`` higher, in place.

    A new preference moves the undamped targets at once: ``R_new(k, k)``
    by ``delta`` (the max over ``k' != k`` does not read ``S(k, k)``), so
    ``col_sum(k)`` by ``delta`` and ``A_new(i, k)`` by the change of
    ``min(0, col_sum(k) - Rp(i, k))``; ``A(k, k)`` does not depend on
    ``R(k, k)``. Damping would let the messages follow only geometrically;
    shifting them by the change of their targets lets a warm start begin
    where the new preference puts the old messages. With
    ``finish_previous`` the last iteration's off-diagonal availabilities are
    finished first, row by row in the same pass (as
    :func:`complete_availability` would, one pass earlier); rows are
    independent.
    """
    n = A.shape[0]
    for i in prange(n):
        shift_preference_row(
            np.int64(i), A[i], R[i], col_sum, delta, finish_previous, damping,
            one_minus_damping,
        )
    for k in range(n):
        R[k, k] += delta
        col_sum[k] += delta


@serial_kernel
def shift_preference_row(i, A_row, R_row, col_sum, delta, finish_previous, damping,
                         one_minus_damping):
    """Row ``i`` of :func:`shift_preference` (its off-diagonal
    availabilities; ``R`` and the sums are moved by the caller)."""
    zero = A_row.dtype.type(0)
    if finish_previous:
        finish_availability_row(i, A_row, R_row, col_sum, damping, one_minus_damping)
    diagonal = A_row[i]
    for k in range(A_row.size):
        target = col_sum[k] - max(R_row[k], zero)
        A_row[k] += min(target + delta, zero) - min(target, zero)
    A_row[i] = diagonal
