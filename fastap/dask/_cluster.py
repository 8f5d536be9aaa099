"""Row blocks on Dask workers: one actor per block, called directly.

Mechanism, chosen by measurement (2-vCPU VM, ``LocalCluster`` with 2 worker
processes x 1 thread, distributed 2026.8.0; ``/work/shared/
DISTRIBUTED-NOTES.md`` and ``asv_benchmarks/dask_report.py``):

- **Actors** (``client.submit(RowBlock, ..., actor=True, workers=[w])``):
  a method call goes from the client to the worker holding the block,
  skipping the scheduler, and the state is mutated in place. One round of
  calls to both workers: 2.5-3.7 ms empty, 5-8 ms with a 32 kB vector
  (``dask_report.py`` under a load average of 7-9; the notes measured
  1-2 ms on a quiet machine).
- **Pinned tasks** with state kept on the worker: 15-18 ms per round (the
  scheduler plans every task), they assume tasks are pure (a retry would
  apply an update twice) and hang after a worker restart
  (dask/distributed#8320). ``Client.run`` goes through the scheduler too.

An iteration is 3 + (P - 1) rounds (the pipeline's segments overlap): for
P = 2 about 10 ms with actors against about 60 ms with pinned tasks, when
the single machine's whole iteration at N = 4,000 takes about 60 ms.

Actors have no resilience: a lost worker loses its block. That is fine
for AP (deterministic: a rerun gives the same result), so a lost worker is
turned into a clear error at once (:class:`WorkerLostError`), never a hang.
No checkpoints of R and A are taken (a fit restarts from zero messages).

Numba threads inside workers: every call on a worker's actors runs on the
worker's single actor thread, so Numba's default ``workqueue`` layer (which
aborts on concurrent launches from two threads) never sees two at once,
even with two fits sharing a worker. Each block's kernels use as many Numba
threads as its worker has Dask threads (``nthreads``); with 1 thread per
worker (the tested set-up) every kernel runs on one core. Results never
depend on the thread count. Workers started with
``NUMBA_THREADING_LAYER=omp`` (OpenMP is installed with Numba's wheels)
remain safe if other Numba tasks share the worker.
"""

import numpy as np

from fastap.dask._block import RowBlock


# Calls with an argument of at least this size pass their arguments boxed
# (ActorBlocks.call); smaller ones, the iterations' vectors up to some
# 100,000 samples, go as they are.
_BOXED_BYTES = 1 << 20


class WorkerLostError(RuntimeError):
    """A Dask worker holding a block of the fit was lost mid-fit."""


def _lost_message(p, bounds, reason):
    return (
        f"The Dask worker holding rows {bounds[p]}-{bounds[p + 1] - 1} (block {p}) of the "
        f"affinity propagation fit was lost ({reason}). Its similarities and messages lived "
        "only there (Dask actors are not resilient). Affinity propagation is deterministic: "
        "fitting again on the remaining or new workers gives the same result."
    )


class ActorBlocks:
    """The transport of ``BlockMessageState`` to RowBlock actors.

    Parameters
    ----------
    client : distributed.Client
    actor_futures : list of distributed.Future
        Futures of the actors (kept so the actors live as long as this).
    bounds : ndarray (P + 1,)
    timeout : float or None
        Seconds a single call may take before the fit is abandoned (None:
        no limit; a lost worker is detected without it).
    """

    def __init__(self, client, actor_futures, bounds, timeout=None):
        self.client = client
        self.actor_futures = list(actor_futures)
        self.actors = []
        self.bounds = bounds
        self.timeout = timeout
        try:
            for future in self.actor_futures:
                self.actors.append(future.result())
        except BaseException:  # a refused block, a lost worker, Ctrl-C: none stays
            self.close()
            raise

    def __len__(self):
        return len(self.actors)

    def call(self, p, method, *args):
        # distributed's actor proxy keeps every call's arguments in a
        # reference cycle until the cyclic garbage collector runs (see
        # close()); large ones travel in a list emptied when the call has
        # answered, so they are freed then (a 1,000,000-point graph's
        # blocks, S rows, gathered messages: 100 MiB on the client a fit).
        box = None
        if any(getattr(argument, "nbytes", 0) >= _BOXED_BYTES for argument in args):
            box = [args]
        try:
            actor = self.actors[p]
            future = actor.unbox_and_call(method, box) if box else getattr(actor, method)(*args)
        except RuntimeError as error:  # the actor's future already failed
            raise WorkerLostError(_lost_message(p, self.bounds, error)) from error
        return _CheckedFuture(future, p, self, box)

    def results(self, futures):
        return [future.result() for future in futures]

    def close(self):
        """Let the actors go: their blocks are freed on the workers now.

        Each actor proxy holds a future of its own on the actor's key, and
        every method call leaves the proxy in a reference cycle
        (distributed's ``run_actor_function_on_worker`` closure refers to
        itself), so the proxies live until Python's cyclic garbage
        collector runs, and the blocks with them (a few fits in a row
        exhausted the workers' memory). Releasing both futures explicitly
        frees the blocks whatever still refers to the proxies.
        """
        for future in self.actor_futures:
            future.release()
        for actor in self.actors:
            # vars(): Actor.__getattr__ would turn a missing name into a call.
            proxy_future = vars(actor).get("_future")
            if proxy_future is not None:
                proxy_future.release()
        self.actor_futures = []
        self.actors = []


class _CheckedFuture:
    """An actor future whose failures name the block and what to do; the
    call's boxed arguments (``box``) are let go once it has answered."""

    def __init__(self, future, p, blocks, box=None):
        self.future = future
        self.p = p
        self.blocks = blocks
        self.box = box

    def done(self):
        return self.future.done()

    def result(self, timeout=None):
        timeout = self.blocks.timeout if timeout is None else timeout
        try:
            result = self.future.result(timeout=timeout)
            if self.box is not None:
                self.box.clear()  # the worker has them: the client's copy goes
            return result
        except OSError as error:
            raise WorkerLostError(_lost_message(self.p, self.blocks.bounds, error)) from error
        except TimeoutError as error:
            raise WorkerLostError(
                _lost_message(self.p, self.blocks.bounds, f"no answer within {timeout} s")
            ) from error


def start_blocks(client, bounds, dtype, workers=None, row_chunks=None, timeout=None,
                 block_class=RowBlock, block_options=None):
    """One ``block_class`` actor per block (``RowBlock``, or
    ``SparseRowBlock`` for a sparse graph), block ``p`` on ``workers[p]``
    (default: the cluster's workers in turn).

    ``row_chunks`` (futures of the blocks' rows of a precomputed ``S``,
    already on the workers) are handed to the actors where they live;
    ``block_options[p]`` (a dict) adds keyword arguments of block ``p``.
    Each block's size is checked against its worker's memory limit here,
    before any actor is submitted (MemoryError), and again by the block.
    """
    info = client.scheduler_info(n_workers=-1)["workers"]
    if not info:
        raise RuntimeError("The Dask cluster has no workers.")
    n_blocks = len(bounds) - 1
    if workers is None:
        addresses = sorted(info)
        workers = [addresses[p % len(addresses)] for p in range(n_blocks)]
    n_samples = int(bounds[-1])
    options_of_block = [dict(block_options[p]) if block_options is not None else {}
                        for p in range(n_blocks)]
    # Refused here, before any actor exists: an actor's constructor that
    # raises leaves its arguments (a dask array's rows) in a reference cycle
    # on the worker until the worker's garbage collector runs.
    for p in range(n_blocks):
        block_class.check_memory(
            n_samples, bounds[p], bounds[p + 1], dtype,
            info[workers[p]].get("memory_limit") or None, **options_of_block[p],
        )
    futures = []
    for p in range(n_blocks):
        worker = workers[p]
        options = options_of_block[p]
        if row_chunks is not None:
            options["S_rows"] = row_chunks[p]
        futures.append(
            client.submit(
                block_class, n_samples, int(bounds[p]), int(bounds[p + 1]), np.dtype(dtype),
                n_threads=int(info[worker].get("nthreads", 1)),
                memory_limit=info[worker].get("memory_limit") or None,
                actor=True, workers=[worker], allow_other_workers=False, pure=False, **options,
            )
        )
    # ActorBlocks releases every future when one block fails to start.
    return ActorBlocks(client, futures, bounds, timeout)
