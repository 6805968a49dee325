"""Deterministic, iteration-based data loading with optional worker processes.

Which sample and which augmentation rng each batch slot gets is fixed by
:mod:`.sampling` (a pure function of ``(seed, iteration, slot)``), so batches
are bit-identical for any ``num_workers`` and when resuming at
``start_iter``. Worker processes come from :mod:`.worker_pool` ('spawn' or
'forkserver'; light workers that import only ``segnext_jt.data`` by default,
``light_workers=False`` gives the standard behaviour).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .dataset import RawSample, SegDataset
from ..rng import stream_seed
from .sampling import (SampleLoadError, load_train_sample, load_unnormalized_train_sample, load_val_sample,
                       sample_indices)
from .transport import DeferredNormalize, split_off_normalize
from .worker_pool import WorkerPool


def worker_error(info: Tuple[str, str, Optional[str], str]) -> SampleLoadError:
    """A data worker's failure (WorkerPool's error info) as the same one line as without workers;
    the worker's traceback only with SEGNEXT_DEBUG=1 (it names the worker's frames, not the bad
    file, which the line names)."""
    type_name, message, filename, tb = info
    if type_name != SampleLoadError.__name__:  # a SampleLoadError's message names its cause already
        message = f"{type_name}: {message}"
    from ..cli import debug_enabled
    return SampleLoadError(message + (f"\n--- worker traceback ---\n{tb}" if debug_enabled() else ""), filename)

__all__ = ["TrainLoader", "ValLoader"]


class _WorkerOwner:
    """Owns an optional worker pool: close() stops it (idempotent); usable as a context manager."""

    _pool: Optional[WorkerPool] = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class TrainLoader(_WorkerOwner):
    """Endless (or ``max_iters``-long) iterator of training batches.

    Each batch is a dict: 'img' float32 (B, 3, H, W), 'gt_seg' int64 (B, H, W),
    'filenames' list[str], 'iter' int (B = number of slots). All samples of a batch must end with the
    same size (the pipeline pads to the crop size).

    Args:
        dataset: a :class:`SegDataset` (picklable).
        pipeline: callable ``(results, rng) -> results`` (picklable).
        batch_size, seed: see :mod:`.sampling` for the sampling rule;
            ``batch_size`` is the global batch size.
        slots: the positions of the global batch this process loads (e.g.
            ``range(rank * b, (rank + 1) * b)`` for data-parallel rank
            ``rank``); default all. Sample order and augmentation depend on
            the global slot only, so any split across processes gives the
            same samples.
        num_workers: 0 loads in this process.
        start_iter: first iteration to produce (for resuming).
        max_iters: stop before this iteration (None: endless).
        prefetch: batches in flight ahead of the consumer (default
            2 * num_workers, at least 2).
        mp_context: 'spawn' or 'forkserver'.
        light_workers: start workers without the main script / package
            ``__init__`` (see :mod:`.worker_pool`).
        transport: how worker samples reach this process: 'uint8' (default) stops the workers'
            pipeline before a trailing Normalize(+Pad) and normalises the batch here (a quarter
            of the bytes; see :mod:`.transport`), 'float32' sends normalised samples. The batches
            are bit-identical either way; pipelines without that ending always send float32.

    Use as a context manager (or call :meth:`close`) so workers stop cleanly.
    """

    def __init__(self, dataset: SegDataset, pipeline: Callable, batch_size: int, seed: int,
                 num_workers: int = 0, start_iter: int = 0, max_iters: Optional[int] = None,
                 slots: Optional[Sequence[int]] = None, prefetch: Optional[int] = None,
                 mp_context: str = "spawn", light_workers: bool = True, transport: str = "uint8"):
        if transport not in ("uint8", "float32"):
            raise ValueError(f"transport must be 'uint8' or 'float32', got {transport!r}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.slots = list(range(batch_size)) if slots is None else [int(x) for x in slots]
        if not self.slots or len(set(self.slots)) != len(self.slots) or not all(
                0 <= x < batch_size for x in self.slots):
            raise ValueError(f"slots must be distinct positions in 0..{batch_size - 1}, got {slots!r}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if start_iter < 0:
            raise ValueError(f"start_iter must be >= 0, got {start_iter}")
        if len(dataset) == 0:
            raise ValueError("the dataset is empty")
        self.dataset = dataset
        self.pipeline = pipeline
        self.batch_size = int(batch_size)
        self.seed = stream_seed(seed)
        self.num_workers = int(num_workers)
        self.max_iters = max_iters
        self.prefetch = max(2, 2 * self.num_workers) if prefetch is None else max(1, int(prefetch))
        self._next_iter = int(start_iter)  # next batch handed out
        self._next_submit = int(start_iter)  # next batch sent to workers
        self._pending: Dict[int, Dict[int, Tuple[np.ndarray, np.ndarray, str]]] = {}
        self._pool: Optional[WorkerPool] = None
        self._deferred: Optional[DeferredNormalize] = None
        if self.num_workers > 0:
            split = split_off_normalize(pipeline) if transport == "uint8" else None
            task, worker_pipeline = load_train_sample, pipeline
            if split is not None:
                (worker_pipeline, self._deferred), task = split, load_unnormalized_train_sample
            self._pool = WorkerPool(task, (dataset, worker_pipeline, self.seed), self.num_workers,
                                    mp_context, light_workers)

    def __len__(self) -> int:
        if self.max_iters is None:
            raise TypeError("an endless TrainLoader has no length (set max_iters)")
        return max(0, self.max_iters - self._next_iter)

    def indices(self, it: int) -> List[int]:
        return sample_indices(self.seed, it, self.batch_size, len(self.dataset))

    def __iter__(self) -> "TrainLoader":
        return self

    def __next__(self) -> Dict[str, Any]:
        if self.max_iters is not None and self._next_iter >= self.max_iters:
            raise StopIteration
        it = self._next_iter
        batch = self.batch(it) if self._pool is None else self._collate(it, self._collect(it), self._deferred)
        self._next_iter += 1
        return batch

    def batch(self, it: int) -> Dict[str, Any]:
        """Batch `it` (this process's slots), loaded in this process without moving the iterator:
        the same arrays the iteration hands out for `it` (the trainer's warm-up step of a resume)."""
        indices = self.indices(it)
        samples = [load_train_sample(self.dataset, self.pipeline, self.seed, it, slot, indices[slot])
                   for slot in self.slots]
        return self._collate(it, samples, None)  # loaded here through the whole pipeline: normalised

    def _submit_ahead(self) -> None:
        assert self._pool is not None
        limit = self._next_iter + self.prefetch
        if self.max_iters is not None:
            limit = min(limit, self.max_iters)
        while self._next_submit < limit:
            it = self._next_submit
            indices = self.indices(it)
            for slot in self.slots:
                self._pool.submit((it, slot), (it, slot, indices[slot]))
            self._pending[it] = {}
            self._next_submit += 1

    def _collect(self, it: int) -> List[Tuple[np.ndarray, np.ndarray, str]]:
        assert self._pool is not None
        self._submit_ahead()
        got = self._pending[it]
        while len(got) < len(self.slots):
            (rit, slot), ok, out = self._pool.get()
            if not ok:
                self.close()
                raise worker_error(out)
            self._pending[rit][slot] = out
        del self._pending[it]
        self._submit_ahead()
        return [got[s] for s in self.slots]

    def _collate(self, it: int, samples: Sequence[Tuple[np.ndarray, np.ndarray, str]],
                 deferred: Optional[DeferredNormalize]) -> Dict[str, Any]:
        """Stack the samples; `deferred` normalises and pads them here when the workers stopped before it."""
        if deferred is None:
            shapes = {s[0].shape for s in samples} | {(s[0].shape[0],) + s[1].shape for s in samples}
        else:  # the sizes the samples will have once padded here
            shapes = {deferred.target_shape(*s[0].shape[1:]) for s in samples} | \
                     {deferred.target_shape(*s[1].shape) for s in samples}
        if len(shapes) != 1:
            detail = ", ".join(f"{s[2]}: img {s[0].shape} label {s[1].shape}" for s in samples)
            raise SampleLoadError(f"iteration {it}: samples differ in size (pad them to the crop size): {detail}")
        if deferred is None:
            img = np.stack([s[0] for s in samples])
            seg = np.stack([s[1] for s in samples]).astype(np.int64)
        else:
            img, seg = deferred.collate([s[0] for s in samples], [s[1] for s in samples])
        return {"img": img, "gt_seg": seg, "filenames": [s[2] for s in samples], "iter": it}


class ValLoader(_WorkerOwner):
    """Ordered iterator over raw validation samples, in batches (lists).

    Yields lists of :class:`RawSample` (or of ``transform(raw)`` when a
    picklable ``transform`` is given, which then runs in the workers).
    """

    def __init__(self, dataset: SegDataset, batch_size: int = 1, num_workers: int = 0,
                 transform: Optional[Callable[[RawSample], Any]] = None, indices: Optional[Sequence[int]] = None,
                 prefetch: Optional[int] = None, mp_context: str = "spawn", light_workers: bool = True):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.transform = transform
        self.indices = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
        self.num_workers = int(num_workers)
        self.prefetch = max(2, 2 * self.num_workers) if prefetch is None else max(1, int(prefetch))
        self.mp_context = mp_context
        self.light_workers = light_workers
        self._pool: Optional[WorkerPool] = None

    def __len__(self) -> int:
        return (len(self.indices) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[List[Any]]:
        if self.num_workers == 0:
            for start in range(0, len(self.indices), self.batch_size):
                yield [load_val_sample(self.dataset, self.transform, i)
                       for i in self.indices[start:start + self.batch_size]]
            return
        self.close()
        self._pool = WorkerPool(load_val_sample, (self.dataset, self.transform), self.num_workers,
                                self.mp_context, self.light_workers)
        try:
            n = len(self.indices)
            ahead = self.prefetch * self.batch_size
            submitted = 0
            done: Dict[int, Any] = {}
            for start in range(0, n, self.batch_size):
                stop = min(start + self.batch_size, n)
                while submitted < min(n, stop + ahead):
                    self._pool.submit(submitted, (self.indices[submitted],))
                    submitted += 1
                while any(k not in done for k in range(start, stop)):
                    key, ok, out = self._pool.get()
                    if not ok:
                        raise worker_error(out)
                    done[key] = out
                yield [done.pop(k) for k in range(start, stop)]
        finally:
            self.close()
