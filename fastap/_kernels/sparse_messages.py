"""The message updates of Affinity Propagation on a sparse similarity graph.

The same updates as ``messages.py`` (Frey & Dueck, 2007), with messages only
along stored pairs. A pair that is not stored has similarity ``-inf``: its
responsibility is ``-inf``, so it adds nothing to a column sum of
``max(R, 0)``, and its availability is never used (``A + S = -inf`` is
never a row maximum). Dropping those pairs therefore gives the dense
algorithm's messages on the stored pairs exactly; on a complete graph the
float64 results are bitwise those of the dense engine (and of scikit-learn).

Every scalar update goes through the dense kernels' helpers
(``messages.next_responsibility``, ``messages.next_availability``), so
the two engines cannot drift apart.

Memory layout
-------------
The graph is stored in CSR order with sorted column indices and every
diagonal pair present (the driver inserts it):

* ``indptr`` (n + 1,) int64, ``indices`` (nnz,) int32: row ``i`` owns
  positions ``indptr[i]:indptr[i + 1]``, columns ``indices[p]`` increasing.
* ``diagonal`` (n,) int64: position of pair ``(i, i)``.
* ``S``, ``R``, ``A`` (nnz,), float32 or float64: similarities (preference
  on the diagonal), responsibilities and availabilities, in CSR order.
* ``col_indptr`` (n + 1,) int64 and ``col_order`` (nnz,) int32 or int64:
  the same pairs in CSC order (column ``k``'s pairs are
  ``col_order[col_indptr[k]:col_indptr[k + 1]]``, rows increasing).

One iteration is two passes:

1. the **row pass** (a task owns a row): finish the previous iteration's
   off-diagonal availabilities of the row, search ``A + S`` for its maximum,
   first arg-maximum and second maximum, update the row's responsibilities;
2. the **column pass** (a task owns a column): add ``max(R, 0)`` (``R``
   unclipped on the diagonal) over the column's pairs in increasing row
   order, in a float64 accumulator, round it once into ``col_sum``, update
   the diagonal availability and the exemplar flag.

No float is accumulated by two tasks and each sum is added in a fixed
order, so results are bitwise independent of the thread count, without
atomics. float64 sums follow scikit-learn's order (rows 0, 1, 2, ...), which
is what makes the complete graph bitwise equal to the dense engine; float32
messages use the same float64 accumulators (the dense float32 kernel groups
rows instead, for speed; a sparse column is short, so there is nothing to
gain and no reason to differ).

Isolated samples
----------------
A sample whose row stores only its diagonal has no other candidate
exemplar: its self-responsibility ``S(k, k) - max over an empty set`` would
be ``+inf``, and the availability update ``col_sum - R(k, k)`` would turn it
into ``inf - inf = NaN``. Instead such a sample is an exemplar from the
first iteration, its ``R(k, k)`` is held at 0, and its column is treated as
certain: ``col_sum(k)`` is set to ``+inf`` after its diagonal availability
is computed from the finite sum of the other rows, so the off-diagonal
availabilities ``A(i, k)`` decay towards 0, their maximum (the limit of the
dense messages as ``R(k, k) -> +inf``). No inf or NaN enters ``R`` or ``A``.

References
----------
B. J. Frey and D. Dueck, "Clustering by Passing Messages Between Data
Points", Science 315 (2007), 972-976.
"""

import numpy as np
from numba import prange

from fastap._kernels._jit import parallel_kernel, serial_kernel
from fastap._kernels.messages import next_availability, next_responsibility

# --------------------------------------------------------------------------
# One row, one column.
# --------------------------------------------------------------------------


@serial_kernel
def _update_row(
    i, indptr, indices, diagonal, S, A, R, col_sum, damping, one_minus_damping,
    previous_damping, previous_one_minus_damping, finish_previous,
):
    """Row pass for row ``i``: finish ``A(i, :)``, search ``A + S``, update ``R(i, :)``.

    The search keeps the dense kernel's semantics: ``best`` is the first
    maximum in column order (as ``np.argmax``), ``second`` the maximum over
    all other pairs (equal to ``best`` on ties). ``A + S + 0`` turns -0.0
    into +0.0, as the dense kernel does before its integer-key search.
    """
    start = indptr[i]
    stop = indptr[i + 1]
    d = diagonal[i]
    zero = S.dtype.type(0)
    best = S.dtype.type(-np.inf)
    second = best
    best_position = d
    a_diagonal = A[d]  # already final (column pass)
    for p in range(start, stop):
        a = A[p]
        if finish_previous and p != d:
            a = next_availability(
                a, R[p], col_sum[indices[p]], previous_damping, previous_one_minus_damping, zero
            )
            A[p] = a
        value = a + S[p] + zero
        if value > best:
            second = best
            best = value
            best_position = p
        elif value > second:
            second = value
    A[d] = a_diagonal
    if stop - start == 1:
        return  # isolated sample: R(i, i) is held at 0 (see the module notes)
    r_at_best = R[best_position]
    for p in range(start, stop):
        R[p] = next_responsibility(R[p], S[p], best, damping, one_minus_damping)
    R[best_position] = next_responsibility(
        r_at_best, S[best_position], second, damping, one_minus_damping
    )


@serial_kernel
def add_column_positive_parts(first, last, col_order, R, diagonal_position, total):
    """``total`` plus ``max(R, 0)`` (``R`` itself at ``diagonal_position``)
    over the pairs ``col_order[first:last]`` of one column, in that order
    (increasing rows), in the float64 ``total``. The single machine's column
    pass starts from 0 over the whole column; a row block of the distributed
    engine continues the running sum the previous block handed over
    (``diagonal_position`` -1 when the block does not hold the column's
    diagonal): the same additions in the same order."""
    zero = R.dtype.type(0)
    for q in range(first, last):
        p = col_order[q]
        r = R[p]
        total += r if p == diagonal_position else max(r, zero)
    return total


@serial_kernel
def finish_stored_diagonal(d, isolated, A, R, column_sum, damping, one_minus_damping):
    """``A(k, k)`` from the column's complete sum (rounded to the message
    dtype) at position ``d``; returns ``(is exemplar, column sum to keep)``:
    an isolated sample is an exemplar and its column sum becomes ``+inf``
    (see "Isolated samples")."""
    A[d] = A[d] * damping - (R[d] - column_sum) * one_minus_damping
    exemplar = A[d] + R[d] > 0
    if isolated:
        column_sum = R.dtype.type(np.inf)
        exemplar = True
    return exemplar, column_sum


@serial_kernel
def _finish_column(
    k, indptr, diagonal, col_indptr, col_order, A, R, col_sum, damping, one_minus_damping,
    is_exemplar,
):
    """Column pass for column ``k``; returns ``(is exemplar now, flag changed)``.

    ``col_sum(k) = sum_i max(R(i, k), 0)`` with ``R(k, k)`` unclipped, added
    in increasing row order in float64 and rounded once, then
    ``A(k, k) = d * A(k, k) - (1 - d) * (R(k, k) - col_sum(k))``.
    """
    d = diagonal[k]
    total = add_column_positive_parts(col_indptr[k], col_indptr[k + 1], col_order, R, d, 0.0)
    exemplar, column_sum = finish_stored_diagonal(
        d, indptr[k + 1] - indptr[k] == 1, A, R, R.dtype.type(total), damping, one_minus_damping
    )
    col_sum[k] = column_sum
    changed = exemplar != is_exemplar[k]
    is_exemplar[k] = exemplar
    return exemplar, changed


# --------------------------------------------------------------------------
# Whole passes.
#
# Arguments shared by the pass kernels
# ------------------------------------
# indptr, indices, diagonal, col_indptr, col_order : the graph (see above)
# S : (nnz,) float32 or float64, read only
# A, R : (nnz,) dtype of S, overwritten in place
# col_sum : (n,) dtype of S; column sums of the previous column pass
#     (read by the row pass), rewritten by the column pass
# damping, one_minus_damping : scalars of the dtype of S, this iteration's
# previous_damping, previous_one_minus_damping : the previous iteration's,
#     with which the row pass finishes that iteration's availabilities
# finish_previous : bool; False while A is complete (first iteration)
# is_exemplar : (n,) bool, updated in place by the column pass
# --------------------------------------------------------------------------


@serial_kernel
def update_rows_serial(
    indptr, indices, diagonal, S, A, R, col_sum, damping, one_minus_damping, previous_damping,
    previous_one_minus_damping, finish_previous,
):
    """Row pass over all rows on one thread."""
    for i in range(indptr.size - 1):
        _update_row(
            i, indptr, indices, diagonal, S, A, R, col_sum, damping, one_minus_damping,
            previous_damping, previous_one_minus_damping, finish_previous,
        )


@parallel_kernel
def update_rows_parallel(
    indptr, indices, diagonal, S, A, R, col_sum, damping, one_minus_damping, previous_damping,
    previous_one_minus_damping, finish_previous,
):
    """Row pass; each row is owned by one task (rows are independent)."""
    for i in prange(indptr.size - 1):
        _update_row(
            np.int64(i), indptr, indices, diagonal, S, A, R, col_sum, damping, one_minus_damping,
            previous_damping, previous_one_minus_damping, finish_previous,
        )


@serial_kernel
def finish_columns_serial(
    indptr, diagonal, col_indptr, col_order, A, R, col_sum, damping, one_minus_damping,
    is_exemplar,
):
    """Column pass on one thread; returns ``(n_exemplars, n_changed)``."""
    n_exemplars = 0
    n_changed = 0
    for k in range(indptr.size - 1):
        exemplar, changed = _finish_column(
            k, indptr, diagonal, col_indptr, col_order, A, R, col_sum, damping,
            one_minus_damping, is_exemplar,
        )
        n_exemplars += exemplar
        n_changed += changed
    return n_exemplars, n_changed


@parallel_kernel
def finish_columns_parallel(
    indptr, diagonal, col_indptr, col_order, A, R, col_sum, damping, one_minus_damping,
    is_exemplar,
):
    """Column pass; each column is owned by one task. The two counts are
    integer reductions (exact in any order)."""
    n_exemplars = 0
    n_changed = 0
    for k in prange(indptr.size - 1):
        exemplar, changed = _finish_column(
            np.int64(k), indptr, diagonal, col_indptr, col_order, A, R, col_sum, damping,
            one_minus_damping, is_exemplar,
        )
        n_exemplars += exemplar
        n_changed += changed
    return n_exemplars, n_changed


@parallel_kernel
def complete_stored_availability(
    indptr, indices, diagonal, A, R, col_sum, damping, one_minus_damping
):
    """Finish the off-diagonal availabilities of the last iteration (rows are
    independent); brings ``A`` to the state the dense loop ends in."""
    zero = A.dtype.type(0)
    for i in prange(indptr.size - 1):
        d = diagonal[i]
        for p in range(indptr[i], indptr[i + 1]):
            if p != d:
                A[p] = next_availability(
                    A[p], R[p], col_sum[indices[p]], damping, one_minus_damping, zero
                )


@serial_kernel
def shift_stored_row(i, indptr, indices, diagonal, A, R, col_sum, delta, finish_previous, damping,
                     one_minus_damping):
    """Row ``i``'s off-diagonal availabilities moved to a preference
    ``delta`` higher (finished first when ``finish_previous``); ``i`` is a
    row of ``indptr``, whose pairs index ``col_sum`` by global column."""
    zero = A.dtype.type(0)
    d = diagonal[i]
    for p in range(indptr[i], indptr[i + 1]):
        if p == d:
            continue
        a = A[p]
        if finish_previous:
            a = next_availability(a, R[p], col_sum[indices[p]], damping, one_minus_damping, zero)
        target = col_sum[indices[p]] - max(R[p], zero)
        A[p] = a + (min(target + delta, zero) - min(target, zero))


# --------------------------------------------------------------------------
# A row block of the distributed engine (fastap/dask).
#
# A block holds rows [row_offset, row_offset + b) as a CSR graph of its own:
# ``indptr`` (b + 1,) and ``diagonal`` (b,) local positions, ``indices``
# global columns. The row pass (update_rows_*) and
# complete_stored_availability run on it unchanged (they index col_sum by
# global column, rows and positions locally). The column pass is split in
# two: the block's share of the column sums added into the running sums the
# previous block handed over (rows increasing: the single machine's order
# whatever the blocking), then, with the complete sums, the diagonals of
# the block's own rows.
# --------------------------------------------------------------------------


@parallel_kernel
def add_block_positive_parts(col_indptr, col_order, diagonal, row_offset, R, column_start,
                             running):
    """``running[j] +=`` the block's ``max(R, 0)`` of column
    ``column_start + j`` (``R(k, k)`` unclipped), its pairs in increasing
    row order, for every ``j`` of the float64 ``running``.

    ``col_indptr`` (n + 1,) and ``col_order`` are the block's pairs in CSC
    order (``sparse_graph.column_order`` on the block). Each task owns
    columns: the result does not depend on the thread count.
    """
    n_rows = diagonal.size
    for j in prange(running.size):
        k = column_start + j
        r = k - row_offset
        d = diagonal[r] if 0 <= r < n_rows else -1
        running[j] = add_column_positive_parts(
            col_indptr[k], col_indptr[k + 1], col_order, R, d, running[j]
        )


@serial_kernel
def finish_block_columns(indptr, diagonal, row_offset, A, R, col_sum, isolated_samples,
                         damping, one_minus_damping, is_exemplar):
    """The diagonals of the block's rows from this iteration's complete
    column sums ``col_sum`` (n,), rounded to the message dtype: ``A(k, k)``
    and the exemplar flags (``is_exemplar`` (b,), updated), as
    :func:`_finish_column` finishes them; then ``col_sum(k) = +inf`` for
    every isolated sample ``k`` of the whole graph (``isolated_samples``,
    int64 indices), as the single machine's column pass leaves it.

    Returns ``(n_exemplars, n_changed)`` among the block's rows.
    """
    n_exemplars = 0
    n_changed = 0
    for r in range(diagonal.size):
        k = r + row_offset
        exemplar, _ = finish_stored_diagonal(
            diagonal[r], indptr[r + 1] - indptr[r] == 1, A, R, col_sum[k], damping,
            one_minus_damping,
        )
        n_exemplars += exemplar
        n_changed += exemplar != is_exemplar[r]
        is_exemplar[r] = exemplar
    for k in isolated_samples:
        col_sum[k] = R.dtype.type(np.inf)
    return n_exemplars, n_changed


@parallel_kernel
def shift_block_stored_preference(indptr, indices, diagonal, A, R, col_sum, is_isolated, delta,
                                  finish_previous, damping, one_minus_damping):
    """Move the messages of a block's rows (the whole graph's on one
    machine) to a preference ``delta`` higher, in place: the sparse form of
    ``messages.shift_preference`` (see there), on the stored pairs, with the
    previous iteration's off-diagonal availabilities finished first when
    ``finish_previous`` (rows are independent); then the rows' diagonal
    responsibilities and every column sum (``col_sum`` (n,), global
    columns: the block's copy) ``+ delta``, except where the sample is
    isolated (``is_isolated`` (n,) bool, over the whole graph: its ``R(k, k)``
    stays 0 and its column sum infinite, see "Isolated samples")."""
    n_rows = indptr.size - 1
    for r in prange(n_rows):
        shift_stored_row(np.int64(r), indptr, indices, diagonal, A, R, col_sum, delta,
                         finish_previous, damping, one_minus_damping)
    for r in range(n_rows):
        if indptr[r + 1] - indptr[r] > 1:
            R[diagonal[r]] += delta
    for k in range(col_sum.size):
        if not is_isolated[k]:
            col_sum[k] += delta
