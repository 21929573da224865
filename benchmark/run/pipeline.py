"""Keep the model busy: while it works on batch k, a loader thread reads and decodes batch k+1 and
a worker thread stores, scores and commits batch k-1.

The stages keep their order per batch and at most three batches are in flight, so memory stays
bounded and results and failures are those of the serial loop; a kill loses at most the batch the
model is on and the one being scored (the worker commits each batch as soon as it is scored, through
its own SQLite connection: connections stay in the thread that opened them). Threads
suffice: decoding (PIL, PyAV), metric kernels (numpy, numba, torch) and the model (torch, or a
served model's HTTP calls) release the GIL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

Chunk = TypeVar("Chunk")


def run_pipeline(chunks: Iterable[Chunk], *, claim: Callable[[Chunk], Chunk | None], load: Callable[[Chunk], Any],
                 infer: Callable[[Any], Any], finish: Callable[[Any, Any], Any], commit: Callable[[Any], None],
                 done: Callable[[Chunk], None]) -> None:
    """For each chunk: `claim` (here; None: nothing of it is ours), `load` (loader thread),
    `infer` (here: the model), then `finish` (store images, score) and `commit` (the store) in the
    worker thread. `done(chunk)` is called for every chunk once it is committed or found not ours."""
    loader = ThreadPoolExecutor(1, thread_name_prefix="wmbench-load")
    worker = ThreadPoolExecutor(1, thread_name_prefix="wmbench-score")
    pending: tuple[Chunk, Future] | None = None  # batch k-1, being finished

    def settle() -> None:
        nonlocal pending
        if pending is not None:
            chunk, future = pending
            pending = None
            future.result()  # the worker's errors surface here
            done(chunk)

    try:
        queue = iter(chunks)
        upcoming = _next_claimed(queue, claim, load, loader, done)
        while upcoming is not None:
            chunk, loading = upcoming
            upcoming = _next_claimed(queue, claim, load, loader, done)  # batch k+1 loads while k runs
            loaded = loading.result()
            inferred = infer(loaded)
            settle()  # batch k-1 is committed before batch k is handed to the worker
            pending = (chunk, worker.submit(lambda b=loaded, i=inferred: commit(finish(b, i))))
        settle()
    finally:
        loader.shutdown(wait=True, cancel_futures=True)
        worker.shutdown(wait=True, cancel_futures=True)


def _next_claimed(queue, claim, load, loader: ThreadPoolExecutor, done) -> tuple[Any, Future] | None:
    """The next chunk with something of ours, its load started in the loader thread."""
    for chunk in queue:
        ours = claim(chunk)
        if ours:
            return chunk, loader.submit(load, ours)
        done(chunk)
    return None
