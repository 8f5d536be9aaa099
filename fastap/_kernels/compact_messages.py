"""The compact engine's message updates: ``S`` and per-row exception lists.

On top of the lean engine (``lean_messages.py``: off the diagonal
``R = c S - z + E``, nothing of ``R`` stored but ``z``, ``E`` and the
diagonal) the availabilities are compressed too. For a pair ``(i, k)``,
``i != k``, whose ``R`` was never positive, ``max(0, R) = 0`` in every
update, so all such pairs of column ``k`` take the same update from the
same start (zero) and hold one value, ``acol(k)`` ::

    A_t(i, k) = acol_t(k),  acol_t(k) = d_t acol_{t-1}(k) - max(-cs_t(k), 0) (1 - d_t)

(``cs`` the column sums; this is the lean engine's cold form, bitwise its
full formula where ``R <= 0``). Only pairs whose ``R`` was once positive,
the exceptions, keep their own ``A``, in per-row lists that never drop an
entry while it differs from ``acol`` (an entry equal to its column's
``acol`` again takes the column's updates from then on, and rejoins with
that value if its ``R`` turns positive again: dropping it is exact). An
iteration reads ``S`` once plus the lists (the lean engine reads ``S`` and
``A`` and writes ``A``).

One pass over the rows does, for row ``j``, the lean engine's steps on a
per-thread scratch row that holds ``acol`` outside the row being updated:

1. finish the last iteration's availability of the row's exceptions (``R``
   rebuilt exactly as the lean engine does), drop those equal to ``acol``
   again, and write the others and ``A(j, j)`` into the scratch row, which
   is then the row of ``A``;
2. the lean search of ``A + S`` on it (``lean_messages``' chunk keys);
3. the lean step 3 (``z``, ``E``, ``R(j, j)``);
4. add the positive part of ``R_t(j, :)`` into the group's column sums
   (only chunks where ``c max(S) - z`` is positive, as the lean engine) and
   append each newly positive pair to the row's list, with its pending
   availability ``acol(k)``; the scratch row is then ``acol`` again.

The column sums add the same terms in the same order as the lean engine's
(a pair never positive adds +0.0 there), so every message, and so every
result, is the lean engine's bitwise.

The exception lists
-------------------
A pool: row ``i`` owns slots ``[start[i], start[i + 1])`` and fills the
first ``count[i]`` of them, in no order. A row whose slots are full counts
the newly positive pairs it could not append in ``missed[i]``; the driver
then grows the pool and appends them (:func:`append_missed_exceptions`,
which finds them again from ``R``) before the next pass.

Arrays
------
S, R_diagonal, row_offset, the correction lists (``E``): as in
``lean_messages.py``. acol : (n,), dtype of S: the availability of the
never-positive pairs of each column (pending as the lean engine's ``A``
off the diagonal). A_diagonal : (n,), dtype of S: ``A(k, k)``, complete.
Each thread owns whole groups of rows (rows, their lists and scalars), so
results do not depend on the number of threads.
"""

import numba
import numpy as np
from numba import prange

from fastap._kernels._jit import parallel_kernel, serial_kernel
from fastap._kernels.lean_messages import (
    lean_chunk_keys,
    lean_chunk_sums,
    lean_fix_list_sums,
    lean_rebuilt_responsibility,
    lean_save_list_sums,
    lean_search_row,
    lean_update_row_scalars,
)
from fastap._kernels.messages import SEARCH_CHUNK, next_availability, search_chunks

# --------------------------------------------------------------------------
# Step 1: the row's exceptions finished and the row of A formed.
# --------------------------------------------------------------------------


@serial_kernel
def _mark_exceptions(ex_columns, n_exceptions, slot):
    """``slot[k] = p + 1`` for the exception at position ``p``."""
    for p in range(n_exceptions):
        slot[ex_columns[p]] = p + 1


@serial_kernel
def _touch_row(S_row):
    """Read one element per cache line: the row then streams into cache at
    the memory's bandwidth, and the exceptions' scattered reads of it hit
    the cache (read cold, one by one, they cost ~3x the whole pass)."""
    top = S_row.dtype.type(-np.inf)
    for k in range(0, S_row.size, 64 // S_row.itemsize):
        top = max(top, S_row[k])
    return top


@serial_kernel
def _finish_exceptions(
    S_row, col_sum, scale, offset, ex_columns, ex_values, n_exceptions, e_columns, e_values,
    n_entries, slot, damping, one_minus_damping, saved,
):
    """The last iteration's availability of the marked exceptions, with
    ``R = c S - z``, or ``c S - z + E`` at the correction list's columns
    (computed first, from the old values, into ``saved``)."""
    dtype = S_row.dtype.type
    zero = dtype(0)
    for m in range(n_entries):
        k = e_columns[m]
        p = slot[k] - 1
        if p >= 0:
            r = lean_rebuilt_responsibility(scale, S_row[k], offset, dtype(e_values[m]))
            saved[m] = next_availability(
                ex_values[p], r, col_sum[k], damping, one_minus_damping, zero
            )
    for p in range(n_exceptions):
        k = ex_columns[p]
        ex_values[p] = next_availability(
            ex_values[p], scale * S_row[k] - offset, col_sum[k], damping, one_minus_damping,
            zero,
        )
    for m in range(n_entries):
        p = slot[e_columns[m]] - 1
        if p >= 0:
            ex_values[p] = dtype(saved[m])


@serial_kernel
def _drop_settled(S_row, acol, ex_columns, ex_values, n_exceptions, slot, chunk_out_row):
    """Drop the exceptions whose availability equals their column's
    ``acol`` again (their updates are then the column's, and a pair whose
    ``R`` turns positive again rejoins with ``acol``, its value: exact).
    Keeps ``slot`` and the chunks' largest unlisted ``S``; returns the count."""
    kept = 0
    for p in range(n_exceptions):
        k = ex_columns[p]
        value = ex_values[p]
        if value == acol[k]:
            slot[k] = 0
            chunk = k // SEARCH_CHUNK
            chunk_out_row[chunk] = max(chunk_out_row[chunk], S_row[k])
        else:
            ex_columns[kept] = k
            ex_values[kept] = value
            slot[k] = kept + 1
            kept += 1
    return kept


@serial_kernel
def _row_keys(S_row, A_row, chunk_top):
    """Largest key of ``A + S + 0`` per search chunk."""
    n = S_row.size
    for chunk in range(search_chunks(n)):
        lo = np.uint64(chunk * SEARCH_CHUNK)
        hi = np.uint64(min(chunk * SEARCH_CHUNK + SEARCH_CHUNK, n))
        chunk_top[chunk] = lean_chunk_keys(lo, hi, S_row, A_row)


# --------------------------------------------------------------------------
# Step 4: column sums and the newly positive pairs.
# --------------------------------------------------------------------------


@serial_kernel
def _unlisted_chunk_max(lo, hi, j, S_row, slot):
    """Largest ``S(j, k)`` of a chunk over the columns not in the row's
    exception list (``slot <= 0``) and off the diagonal."""
    top = S_row.dtype.type(-np.inf)
    for k in range(lo, hi):
        if slot[k] <= 0 and k != j:
            top = max(top, S_row[k])
    return top


@serial_kernel
def _append_exception(k, acol, ex_columns, ex_values, n_exceptions, slot, missed):
    """Append column ``k`` with its pending availability ``acol(k)``, or
    count it as missed when the row's slots are full."""
    if n_exceptions < ex_columns.size:
        ex_columns[n_exceptions] = k
        ex_values[n_exceptions] = acol[k]
        slot[k] = n_exceptions + 1
        return n_exceptions + 1, missed
    return n_exceptions, missed + 1


@serial_kernel
def _append_chunk(lo, hi, S_row, scale, offset, slot, acol, ex_columns, ex_values,
                  n_exceptions, missed):
    zero = S_row.dtype.type(0)
    for k in range(lo, hi):
        if scale * S_row[k] - offset > zero and slot[k] == 0:
            n_exceptions, missed = _append_exception(
                k, acol, ex_columns, ex_values, n_exceptions, slot, missed
            )
    return n_exceptions, missed


@serial_kernel
def _sums_and_new_exceptions(
    j, S_row, chunk_max_row, chunk_out_row, group_sum, scale, offset, e_columns, e_values,
    n_entries, R_diagonal_j, acol, ex_columns, ex_values, n_exceptions, slot, saved_sums,
):
    """Step 4 for row ``j`` (the lean engine's sums, bitwise) and the pairs
    whose ``R`` turned positive. The correction list's columns and the
    diagonal are marked in ``slot`` (their ``R`` is not ``c S - z``);
    ``chunk_out_row``: each chunk's largest ``S`` over the unlisted columns.
    Returns ``(n_exceptions, missed)``."""
    zero = S_row.dtype.type(0)
    for m in range(n_entries):
        k = e_columns[m]
        if slot[k] == 0:
            slot[k] = -1
    slot[j] = -1
    diagonal_before = lean_save_list_sums(j, group_sum, e_columns, n_entries, saved_sums)
    missed = 0
    n = S_row.size
    for chunk in range(search_chunks(n)):
        if scale * chunk_max_row[chunk] - offset > zero:
            lo = np.uint64(chunk * SEARCH_CHUNK)
            hi = np.uint64(min(chunk * SEARCH_CHUNK + SEARCH_CHUNK, n))
            lean_chunk_sums(lo, hi, S_row, group_sum, scale, offset)
            # R = c S - z rounds monotonically in S: no unlisted pair of the
            # chunk is positive unless its largest unlisted S says so.
            if scale * chunk_out_row[chunk] - offset > zero:
                n_exceptions, missed = _append_chunk(
                    lo, hi, S_row, scale, offset, slot, acol, ex_columns, ex_values,
                    n_exceptions, missed,
                )
                chunk_out_row[chunk] = _unlisted_chunk_max(lo, hi, j, S_row, slot)
    lean_fix_list_sums(
        j, diagonal_before, S_row, group_sum, scale, offset, e_columns, e_values, n_entries,
        R_diagonal_j, saved_sums,
    )
    for m in range(n_entries):
        k = e_columns[m]
        r = lean_rebuilt_responsibility(scale, S_row[k], offset, S_row.dtype.type(e_values[m]))
        if slot[k] == -1 and r > zero:
            n_exceptions, missed = _append_exception(
                k, acol, ex_columns, ex_values, n_exceptions, slot, missed
            )
    return n_exceptions, missed


@serial_kernel
def _restore_row(j, acol, A_row, slot, ex_columns, n_exceptions, e_columns, n_entries):
    """The scratch row back to ``acol``, the marks back to zero."""
    for p in range(n_exceptions):
        k = ex_columns[p]
        slot[k] = 0
        A_row[k] = acol[k]
    for m in range(n_entries):
        slot[e_columns[m]] = 0
    slot[j] = 0
    A_row[j] = acol[j]


# --------------------------------------------------------------------------
# The pass.
# --------------------------------------------------------------------------


@serial_kernel
def _update_compact_row(j, S, chunk_maxima, acol, A_diagonal, col_sum, group_sum, R_diagonal,
                        row_offset, corrections, exceptions, finish, previous, current,
                        resolution, scratch):
    """Steps 1-4 for row ``j`` (tuples as :func:`update_compact_messages_serial`)."""
    e_columns, e_values, e_count, evicted = corrections
    ex_columns, ex_values, ex_start, ex_count, missed = exceptions
    A_row, slot, chunk_values, chunk_top, saved = scratch
    chunk_max, chunk_out = chunk_maxima
    dtype = S.dtype.type
    S_row = S[j]
    start, stop = ex_start[j], ex_start[j + 1]
    row_columns = ex_columns[start:stop]
    row_values = ex_values[start:stop]
    n_exceptions = ex_count[j]
    _mark_exceptions(row_columns, n_exceptions, slot)
    # The test is never true (S is finite or -inf): it keeps the reads.
    if finish and n_exceptions > 0 and _touch_row(S_row) == np.inf:
        chunk_values[0] = S_row[0]
    if finish:
        _finish_exceptions(
            S_row, col_sum, dtype(previous[0]), dtype(row_offset[j]), row_columns, row_values,
            n_exceptions, e_columns[j], e_values[j], e_count[j], slot, dtype(previous[1]),
            dtype(previous[2]), saved[1],
        )
    n_exceptions = _drop_settled(
        S_row, acol, row_columns, row_values, n_exceptions, slot, chunk_out[j]
    )
    for p in range(n_exceptions):
        A_row[row_columns[p]] = row_values[p]
    A_row[j] = A_diagonal[j]
    _row_keys(S_row, A_row, chunk_top)
    best_index, best_value, second_value = lean_search_row(S_row, A_row, chunk_top, chunk_values)
    scale64, damping64, one_minus64 = current
    lean_update_row_scalars(
        j, S_row, best_index, best_value, second_value, R_diagonal, row_offset, e_columns[j],
        e_values[j], e_count, evicted, scale64, damping64, one_minus64, resolution,
    )
    n_entries = e_count[j]
    n_exceptions, missed_j = _sums_and_new_exceptions(
        j, S_row, chunk_max[j], chunk_out[j], group_sum, dtype(scale64), dtype(row_offset[j]),
        e_columns[j], e_values[j], n_entries, R_diagonal[j], acol, row_columns, row_values,
        n_exceptions, slot, saved[0],
    )
    missed[j] = missed_j
    ex_count[j] = n_exceptions
    _restore_row(j, acol, A_row, slot, row_columns, n_exceptions, e_columns[j], n_entries)


@serial_kernel
def _update_compact_group(group, group_rows, S, chunk_maxima, acol, A_diagonal, col_sum,
                          group_sums, R_diagonal, row_offset, corrections, exceptions, finish,
                          previous, current, resolution, scratch):
    n = S.shape[0]
    group_sum = group_sums[group]
    group_sum[:] = 0.0
    scratch[0][:] = acol  # the scratch row of A holds acol outside the row updated
    for j in range(group * group_rows, min((group + 1) * group_rows, n)):
        _update_compact_row(
            j, S, chunk_maxima, acol, A_diagonal, col_sum, group_sum, R_diagonal, row_offset,
            corrections, exceptions, finish, previous, current, resolution, scratch,
        )


# Arguments shared by the pass kernels
# ------------------------------------
# S, col_sum, group_sums, R_diagonal, row_offset, previous, current, resolution,
#     group_rows, finish: as lean_messages' pass kernels.
# chunk_maxima : (chunk_max, chunk_out), both (n, search_chunks(n)), dtype of S:
#     lean_messages.off_diagonal_chunk_maxima(S), and the same over each row's
#     unlisted columns only (updated as pairs join the lists).
# acol, A_diagonal: see the module docstring (read only in the pass).
# corrections : (columns, values, count, evicted), the lean correction lists.
# exceptions : (columns, values, start, count, missed): the pool (see the
#     module docstring); missed (n,), int64, written.
# row_availability : (n_threads, n), dtype of S; slot : (n_threads, n), int32,
#     zero; chunk_values, chunk_top, saved: as lean_messages'. Scratch, one row
#     per thread (numba.get_thread_id()).


@serial_kernel
def update_compact_messages_serial(
    S, chunk_maxima, acol, A_diagonal, col_sum, group_sums, R_diagonal, row_offset, corrections,
    exceptions, finish, previous, current, resolution, group_rows, row_availability, slot,
    chunk_values, chunk_top, saved,
):
    """One compact pass on one thread (see the shared arguments above)."""
    scratch = (row_availability[0], slot[0], chunk_values[0], chunk_top[0], saved[0])
    for group in range(group_sums.shape[0]):
        _update_compact_group(
            group, group_rows, S, chunk_maxima, acol, A_diagonal, col_sum, group_sums, R_diagonal,
            row_offset, corrections, exceptions, finish, previous, current, resolution, scratch,
        )


@parallel_kernel
def update_compact_messages_parallel(
    S, chunk_maxima, acol, A_diagonal, col_sum, group_sums, R_diagonal, row_offset, corrections,
    exceptions, finish, previous, current, resolution, group_rows, row_availability, slot,
    chunk_values, chunk_top, saved,
):
    """One compact pass on Numba's threads, each group wholly on one thread
    (the serial pass's result, bitwise). Call it inside
    ``numba.parallel_chunksize(1)``, as the lean pass."""
    for group in prange(group_sums.shape[0]):
        thread = numba.get_thread_id()
        scratch = (
            row_availability[thread], slot[thread], chunk_values[thread], chunk_top[thread],
            saved[thread],
        )
        _update_compact_group(
            group, group_rows, S, chunk_maxima, acol, A_diagonal, col_sum, group_sums, R_diagonal,
            row_offset, corrections, exceptions, finish, previous, current, resolution, scratch,
        )


@serial_kernel
def advance_column_availability(acol, cold_terms, damping):
    """Finish the never-positive pairs' availability of the last iteration:
    ``acol = acol d - cold_terms`` (``lean_messages.cold_availability_terms``)."""
    for k in range(acol.size):
        acol[k] = acol[k] * damping - cold_terms[k]


@serial_kernel
def finish_compact_iteration(
    A_diagonal, R_diagonal, col_sum, col_sum_acc, damping, one_minus_damping, is_exemplar
):
    """Close an iteration in O(n), as ``lean_messages.finish_lean_iteration``
    with ``A(k, k)`` in ``A_diagonal``. Returns ``(n_exemplars, n_changed)``."""
    n_exemplars = 0
    n_changed = 0
    for k in range(A_diagonal.size):
        col_sum[k] = col_sum_acc[k]
        col_sum_acc[k] = 0.0
        A_diagonal[k] = (
            A_diagonal[k] * damping - (R_diagonal[k] - col_sum[k]) * one_minus_damping
        )
        exemplar = A_diagonal[k] + R_diagonal[k] > 0
        n_exemplars += exemplar
        n_changed += exemplar != is_exemplar[k]
        is_exemplar[k] = exemplar
    return n_exemplars, n_changed


# --------------------------------------------------------------------------
# Whole-state operations outside the loop.
# --------------------------------------------------------------------------


@parallel_kernel
def complete_compact_exceptions(S, col_sum, row_offset, corrections, exceptions, scale,
                                damping, one_minus_damping, slot, saved):
    """Finish the exceptions' availability of the last iteration (the
    columns' share is :func:`advance_column_availability`). ``slot``,
    ``saved``: per-thread scratch as in the pass."""
    e_columns, e_values, e_count, _ = corrections
    ex_columns, ex_values, ex_start, ex_count, _ = exceptions
    dtype = S.dtype.type
    for i in prange(S.shape[0]):
        thread = numba.get_thread_id()
        start, stop = ex_start[i], ex_start[i + 1]
        n_exceptions = ex_count[i]
        _mark_exceptions(ex_columns[start:stop], n_exceptions, slot[thread])
        _finish_exceptions(
            S[i], col_sum, scale, dtype(row_offset[i]), ex_columns[start:stop],
            ex_values[start:stop], n_exceptions, e_columns[i], e_values[i], e_count[i],
            slot[thread], damping, one_minus_damping, saved[thread, 1],
        )
        for p in range(start, start + n_exceptions):
            slot[thread, ex_columns[p]] = 0


@serial_kernel
def _exact_responsibility(S_row, scale, offset, k, e_columns, e_values, n_entries):
    """``R(i, k)`` off the diagonal as the lean engine rebuilds it."""
    dtype = S_row.dtype.type
    for m in range(n_entries):
        if e_columns[m] == k:
            return lean_rebuilt_responsibility(scale, S_row[k], offset, dtype(e_values[m]))
    return scale * S_row[k] - offset


@parallel_kernel
def shift_compact_preference(S, acol, col_sum, row_offset, corrections, exceptions, delta,
                             scale):
    """Move the (complete) availabilities to preferences ``delta``
    (``(n,)``, dtype of S) higher, as ``lean_messages.shift_lean_preference``:
    every ``A(i, k)`` by the change of ``min(0, col_sum(k) - Rp(i, k))``,
    ``Rp = 0`` for the columns' share. ``R(k, k)`` and ``col_sum`` are left
    to the caller."""
    e_columns, e_values, e_count, _ = corrections
    ex_columns, ex_values, ex_start, ex_count, _ = exceptions
    dtype = S.dtype.type
    zero = dtype(0)
    for i in prange(S.shape[0]):
        offset = dtype(row_offset[i])
        for p in range(ex_start[i], ex_start[i] + ex_count[i]):
            k = ex_columns[p]
            r = _exact_responsibility(S[i], scale, offset, k, e_columns[i], e_values[i], e_count[i])
            target = col_sum[k] - max(r, zero)
            ex_values[p] = ex_values[p] + (min(target + delta[k], zero) - min(target, zero))
    for k in range(acol.size):
        target = col_sum[k] - zero
        acol[k] += min(target + delta[k], zero) - min(target, zero)


@parallel_kernel
def materialize_compact_availability(acol, A_diagonal, exceptions, A):
    """Write the whole ``A`` (``(n, n)``, dtype of acol) the state stands for."""
    ex_columns, ex_values, ex_start, ex_count, _ = exceptions
    for i in prange(A.shape[0]):
        A_row = A[i]
        for k in range(acol.size):
            A_row[k] = acol[k]
        for p in range(ex_start[i], ex_start[i] + ex_count[i]):
            A_row[ex_columns[p]] = ex_values[p]
        A_row[i] = A_diagonal[i]


@parallel_kernel
def copy_exception_pool(old_columns, old_values, old_start, count, columns, values, start):
    """Each row's entries from the old pool into the new one (its slots
    from ``start``)."""
    for i in prange(count.size):
        for p in range(count[i]):
            columns[start[i] + p] = old_columns[old_start[i] + p]
            values[start[i] + p] = old_values[old_start[i] + p]


@parallel_kernel
def append_missed_exceptions(rows, S, acol, row_offset, corrections, exceptions, scale,
                             chunk_out):
    """Append, to each of ``rows`` (int64), every pair whose ``R`` (as the
    last pass left it) is positive and that is not yet listed: those its
    pass counted as missed (the pool must have room for them); their rows of
    ``chunk_out`` follow."""
    e_columns, e_values, e_count, _ = corrections
    ex_columns, ex_values, ex_start, ex_count, _ = exceptions
    n = S.shape[0]
    dtype = S.dtype.type
    zero = dtype(0)
    for position in prange(rows.size):
        i = rows[position]
        listed = np.zeros(n, dtype=np.bool_)
        start = ex_start[i]
        for p in range(start, start + ex_count[i]):
            listed[ex_columns[p]] = True
        listed[i] = True
        offset = dtype(row_offset[i])
        for k in range(n):
            if not listed[k]:
                r = _exact_responsibility(S[i], scale, offset, k, e_columns[i], e_values[i],
                                          e_count[i])
                if r > zero and ex_count[i] < ex_start[i + 1] - start:
                    ex_columns[start + ex_count[i]] = k
                    ex_values[start + ex_count[i]] = acol[k]
                    ex_count[i] += 1
                    listed[k] = True
        for chunk in range(chunk_out.shape[1]):
            top = S.dtype.type(-np.inf)
            for k in range(chunk * SEARCH_CHUNK, min(chunk * SEARCH_CHUNK + SEARCH_CHUNK, n)):
                if not listed[k]:
                    top = max(top, S[i, k])
            chunk_out[i, chunk] = top
