"""The message updates on a block of rows, with column sums from outside.

The distributed engine cuts the samples into contiguous row blocks; each
block holds its rows of ``S``, ``R`` and ``A`` as local ``(b, n)`` arrays
(local row ``r`` is global row ``row_offset + r``, so its diagonal element
is column ``row_offset + r``). An iteration needs the column sums of
``Rp = max(R, 0)`` (``R`` itself on the diagonal) over *all* rows, so the
single-machine fused pass (``messages.py``) is split in two here:

1. :func:`update_block_rows`: steps 1-3 of ``messages.py`` for every row
   of the block (finish the previous iteration's off-diagonal
   availabilities with the previous column sums, search ``A + S``, update
   ``R``), built from the row helpers of ``messages.py`` itself, and step 4
   fused where its order allows it (see below);
2. step 4, the block's share of the column sums of ``Rp`` added into
   running sums that the previous block handed over, so that the totals
   are added in the single machine's order whatever the blocking:

   - float64 ("ordered"): one float64 running sum per column, rows added
     0, 1, 2, ... (scikit-learn's order). Block 0 starts from zero, so it
     adds its rows during its pass (fused, as the single machine); every
     other block must wait for the running sums and then reads its ``R``
     again (:func:`add_rows_positive_parts`).
   - float32 ("grouped"): rows form fixed groups of ``group_rows`` (global
     groups, as ``_dense.group_rows_of``); each group is added in float64
     from zero, then the groups are added in group order. A group that
     starts in a block is summed during that block's pass (fused, into its
     row of ``unit_sums``); only the rows of a group that started in the
     previous block (fewer than ``group_rows``) are read again, continuing
     the ``partial`` sum that block handed over.

3. :func:`finish_block_iteration`: the diagonal availabilities and the
   exemplar flags of the block's rows, from the totals (``messages.
   finish_iteration`` restricted to the block).

Damping: the off-diagonal availabilities of an iteration are finished at
the start of the next pass, so they are finished with the damping that
iteration ran with (``previous_damping``), while the responsibilities use
this iteration's, as in ``messages.py``.

All kernels are independent of the thread count: a task owns rows (steps
1-3) or a range of columns (step 4), never a shared float accumulator.

References
----------
B. J. Frey and D. Dueck, "Clustering by Passing Messages Between Data
Points", Science 315 (2007), 972-976.
"""

from numba import prange

from fastap._kernels._jit import parallel_kernel, serial_kernel
from fastap._kernels.messages import (
    add_positive_part,
    finish_availability_row,
    shift_preference_row,
    update_row,
)

# Columns per task in step 4: long enough to stream, short enough to split
# a segment between threads.
_ADD_CHUNK_COLUMNS = 2048


@serial_kernel
def _update_rows_of_block(
    first, last, row_offset, S, A, R, col_sum, damping, one_minus_damping, previous_damping,
    previous_one_minus_damping, finish_previous, row_values, chunk_top, accumulate, col_sum_acc,
):
    """Steps 1-3 (and 4 into ``col_sum_acc`` if ``accumulate``) for local
    rows ``[first, last)`` (``messages.update_row``); diagonal columns are
    the global rows ``r + row_offset``."""
    for r in range(first, last):
        update_row(
            r + row_offset, S[r], A[r], R[r], col_sum, damping, one_minus_damping,
            previous_damping, previous_one_minus_damping, finish_previous, row_values,
            chunk_top, accumulate, col_sum_acc,
        )


@parallel_kernel
def update_block_rows(
    S, A, R, row_offset, col_sum, damping, one_minus_damping, previous_damping,
    previous_one_minus_damping, finish_previous, row_values, chunk_top, unit_bounds,
    unit_sum_rows, unit_sums,
):
    """Steps 1-3 of one iteration for every row of a block, step 4 where fused.

    Parameters
    ----------
    S : ndarray (b, n), C order, float32 or float64
        The block's rows of the similarities (preferences and noise on the
        diagonal ``S[r, row_offset + r]``). Read only.
    A, R : ndarray (b, n), C order, dtype of ``S``
        The block's messages, overwritten: ``R`` becomes this iteration's
        responsibilities, ``A`` the previous iteration's availabilities
        (finished off the diagonal when ``finish_previous``).
    row_offset : int
        Global index of the block's first row.
    col_sum : ndarray (n,), dtype of ``S``
        Complete column sums of ``Rp`` of the previous iteration. Read only.
    damping, one_minus_damping : scalars of the dtype of ``S``
        This iteration's damping (responsibilities).
    previous_damping, previous_one_minus_damping : scalars of the dtype of ``S``
        The damping the previous iteration ran with (its availabilities,
        finished here).
    finish_previous : bool
        False on the first iteration (``A`` zero) or when ``A`` is complete.
    row_values : ndarray (n_tasks, n), dtype of ``S``
    chunk_top : ndarray (n_tasks, search_chunks(n)), int64
        Scratch, one row per task.
    unit_bounds : ndarray (n_units + 1,), int64
        The block's rows cut into units of work (local row bounds).
    unit_sum_rows : ndarray (n_units,), int64
        For each unit, the row of ``unit_sums`` that receives the column
        sums of its rows' ``Rp`` (zeroed first, added in row order in
        float64), or -1 for none.
    unit_sums : ndarray (n_sums, n), float64
        Overwritten where ``unit_sum_rows`` points.

    Notes
    -----
    Task ``t`` runs units ``t, t + n_tasks, ...``, each wholly and rows in
    order, so the result does not depend on ``n_tasks``.
    """
    n_tasks = row_values.shape[0]
    n_units = unit_sum_rows.size
    for task in prange(n_tasks):
        for unit in range(task, n_units, n_tasks):
            sum_row = unit_sum_rows[unit]
            accumulate = sum_row >= 0
            target = unit_sums[max(sum_row, 0)]
            if accumulate:
                target[:] = 0.0
            _update_rows_of_block(
                unit_bounds[unit], unit_bounds[unit + 1], row_offset, S, A, R, col_sum, damping,
                one_minus_damping, previous_damping, previous_one_minus_damping,
                finish_previous, row_values[task], chunk_top[task], accumulate, target,
            )


@parallel_kernel
def finish_block_availability(A, R, row_offset, col_sum, damping, one_minus_damping):
    """Finish the last iteration's off-diagonal availabilities of a block
    with that iteration's damping (``messages.complete_availability`` on
    the block's rows). Rows are independent."""
    for r in prange(A.shape[0]):
        finish_availability_row(
            r + row_offset, A[r], R[r], col_sum, damping, one_minus_damping
        )


@parallel_kernel
def add_rows_positive_parts(R, first, last, row_offset, column_start, target):
    """Step 4 by reading ``R`` again: ``target += Rp`` of local rows
    ``[first, last)`` on the columns ``[column_start, column_start +
    target.size)``, rows in increasing order (float64 ``target``; ``R(i, i)``
    unclipped).

    Each task owns a range of columns: every sum is added in the single
    machine's order, for any thread count.
    """
    size = target.size
    n_chunks = max(1, (size + _ADD_CHUNK_COLUMNS - 1) // _ADD_CHUNK_COLUMNS)
    for chunk in prange(n_chunks):
        start = chunk * size // n_chunks
        stop = (chunk + 1) * size // n_chunks
        target_segment = target[start:stop]
        first_column = column_start + start
        for r in range(first, last):
            add_positive_part(
                r + row_offset - first_column, R[r, first_column : column_start + stop],
                target_segment,
            )


@serial_kernel
def finish_block_iteration(A, R, row_offset, col_sum, damping, one_minus_damping, is_exemplar):
    """Diagonal availabilities and exemplar flags of a block's rows.

    ``col_sum`` (n,) holds this iteration's complete column sums, rounded to
    the dtype of ``A`` (as ``messages.finish_iteration`` rounds them).
    Sets ``A(k, k) = d A(k, k) - (R(k, k) - col_sum(k)) (1 - d)`` and
    ``is_exemplar[r] = A(k, k) + R(k, k) > 0`` for ``k = row_offset + r``.

    Returns
    -------
    n_exemplars, n_changed : int
        Among the block's rows; ``n_changed`` against ``is_exemplar`` on entry.
    """
    n_exemplars = 0
    n_changed = 0
    for r in range(A.shape[0]):
        k = r + row_offset
        A[r, k] = A[r, k] * damping - (R[r, k] - col_sum[k]) * one_minus_damping
        exemplar = A[r, k] + R[r, k] > 0
        n_exemplars += exemplar
        n_changed += exemplar != is_exemplar[r]
        is_exemplar[r] = exemplar
    return n_exemplars, n_changed


@parallel_kernel
def shift_block_preference(A, R, row_offset, col_sum, delta, finish_previous, damping,
                           one_minus_damping):
    """``messages.shift_preference`` on a block's rows: the messages moved to
    a preference ``delta`` higher, the last iteration's off-diagonal
    availabilities finished first when ``finish_previous`` (rows are
    independent), then the block's diagonal responsibilities and its copy
    of every column sum (``col_sum`` (n,)) ``+ delta``: element for element
    the single machine's arithmetic, so every block's copy of the sums stays
    the single machine's one."""
    for r in prange(A.shape[0]):
        shift_preference_row(
            r + row_offset, A[r], R[r], col_sum, delta, finish_previous, damping,
            one_minus_damping,
        )
    for r in range(A.shape[0]):
        R[r, r + row_offset] += delta
    for k in range(A.shape[1]):
        col_sum[k] += delta


@parallel_kernel
def nearest_exemplar_of_block(S, row_offset, exemplars, labels):
    """``assign.nearest_exemplar`` on a block: ``labels[r]`` is the position
    in ``exemplars`` of the most similar one (first maximum); an exemplar's
    own row gets its own position. Rows are independent."""
    n_exemplars = exemplars.size
    for r in prange(S.shape[0]):
        row = S[r]
        best = 0
        best_value = row[exemplars[0]]
        for e in range(1, n_exemplars):
            value = row[exemplars[e]]
            if value > best_value:
                best_value = value
                best = e
        labels[r] = best
    for e in range(n_exemplars):
        r = exemplars[e] - row_offset
        if 0 <= r < S.shape[0]:
            labels[r] = e


@parallel_kernel
def add_within_cluster_rows(S, row_offset, labels, running):
    """``assign.within_cluster_column_sums`` on a block: adds, for each
    column ``j``, ``S[r, j]`` if row ``row_offset + r`` has the label of
    ``j`` (else zero, as the single machine adds it) into ``running[j]``
    (dtype of ``S``), rows in increasing order. Tasks own column ranges."""
    n = running.size
    zero = S.dtype.type(0)
    n_chunks = max(1, min(n, (n + _ADD_CHUNK_COLUMNS - 1) // _ADD_CHUNK_COLUMNS))
    for chunk in prange(n_chunks):
        start = chunk * n // n_chunks
        stop = (chunk + 1) * n // n_chunks
        for r in range(S.shape[0]):
            row = S[r]
            label = labels[r + row_offset]
            for j in range(start, stop):
                running[j] += row[j] if labels[j] == label else zero


@parallel_kernel
def best_exemplar_similarity_of_block(S, row_offset, exemplars, is_exemplar, best_value):
    """Each row's term of the net similarity (``assign.net_similarity``):
    ``S[i, i]`` for an exemplar, else its largest similarity to an exemplar."""
    for r in prange(S.shape[0]):
        i = r + row_offset
        row = S[r]
        if is_exemplar[i]:
            best_value[r] = row[i]
            continue
        value = row[exemplars[0]]
        for e in exemplars[1:]:
            value = max(value, row[e])
        best_value[r] = value
