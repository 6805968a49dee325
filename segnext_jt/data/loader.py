"""Deterministic, iteration-based data loading with optional worker processes.

Sample ``slot`` of iteration ``it`` is a pure function of ``(seed, it, slot)``:

* its dataset index is ``perm(seed, epoch)[pos % N]`` with
  ``pos = it * batch_size + slot`` and ``epoch = pos // N``;
* its augmentation rng is ``np.random.default_rng([seed, it, slot])``.

So batches are bit-identical for any ``num_workers`` and when resuming at
``start_iter``. Workers are separate processes started with 'spawn' (default)
or 'forkserver' — never 'fork', because the parent runs Jittor threads. By
default (``light_workers=True``) they run :mod:`segnext_jt.data._worker_boot`
instead of re-running the parent's main script, so a worker imports only
``segnext_jt.data`` (NumPy + Pillow), not the trainer's Jittor imports. The
dataset and pipeline must then be importable from modules (not defined in
the main script); ``light_workers=False`` gives the standard behaviour.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing as mp
import os
import pickle
import queue
import signal
import sys
import time
import traceback
import types
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .ade20k import RawSample, SegDataset

__all__ = ["SampleLoadError", "TrainLoader", "ValLoader", "sample_indices", "sample_rng", "load_train_sample"]

# Domain tag that keeps the permutation streams apart from the per-sample
# streams: SeedSequence pads entropy with zeros, so [seed, epoch] alone would
# equal [seed, it=epoch, slot=0].
_PERM_TAG = 0x7065726D  # "perm"
_POLL_S = 0.5  # how often a waiting parent / idle worker checks the other side


class SampleLoadError(RuntimeError):
    """Loading or augmenting one sample failed; names the file (and, from a
    worker, carries the worker's traceback in the message)."""

    def __init__(self, message: str, filename: Optional[str] = None):
        super().__init__(message)
        self.filename = filename


# --------------------------------------------------------------------------
# Index / rng rules
# --------------------------------------------------------------------------


def _check_seed(seed: int) -> int:
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    return seed


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The sample order of one epoch."""
    return np.random.default_rng([_check_seed(seed), int(epoch), _PERM_TAG]).permutation(n)


def sample_indices(seed: int, it: int, batch_size: int, n: int) -> List[int]:
    """Dataset indices of the samples of iteration ``it``."""
    out: List[int] = []
    perm: Optional[np.ndarray] = None
    perm_epoch = -1
    for slot in range(batch_size):
        pos = it * batch_size + slot
        epoch = pos // n
        if epoch != perm_epoch:
            perm, perm_epoch = epoch_permutation(seed, epoch, n), epoch
        out.append(int(perm[pos % n]))  # type: ignore[index]
    return out


def sample_rng(seed: int, it: int, slot: int) -> np.random.Generator:
    """The augmentation rng of sample ``slot`` of iteration ``it``."""
    return np.random.default_rng([_check_seed(seed), int(it), int(slot)])


def load_train_sample(dataset: SegDataset, pipeline: Callable, seed: int, it: int, slot: int,
                      index: int) -> Tuple[np.ndarray, np.ndarray, str]:
    """(img float32 (3,H,W), gt_seg uint8 (H,W), filename) of one sample."""
    try:
        item = dataset.get(index, rng=sample_rng(seed, it, slot), pipeline=pipeline)
    except Exception as e:
        name = _safe_filename(dataset, index)
        raise SampleLoadError(f"failed to load {name} (dataset index {index}, iteration {it}, slot {slot}): "
                              f"{type(e).__name__}: {e}", name) from e
    return item["img"], item["gt_seg"], item["filename"]


def _safe_filename(dataset: Any, index: int) -> str:
    try:
        return str(dataset.filename(index))
    except Exception:
        return f"<sample {index}>"


def _load_val_sample(dataset: SegDataset, transform: Optional[Callable[[RawSample], Any]], index: int) -> Any:
    try:
        raw = dataset.load_raw(index)
        return raw if transform is None else transform(raw)
    except Exception as e:
        name = _safe_filename(dataset, index)
        raise SampleLoadError(f"failed to load {name} (dataset index {index}): {type(e).__name__}: {e}",
                              name) from e


# --------------------------------------------------------------------------
# Worker pool
# --------------------------------------------------------------------------

_BOOT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker_boot.py")


@contextlib.contextmanager
def _light_main():
    """Make spawned children run _worker_boot.py instead of the parent's main."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    missing = object()
    saved = {k: getattr(main, k, missing) for k in ("__spec__", "__file__")}
    main.__spec__ = None  # type: ignore[assignment]
    main.__file__ = _BOOT_PATH
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is missing:
                with contextlib.suppress(AttributeError):
                    delattr(main, k)
            else:
                setattr(main, k, v)


class _FoundMain(Exception):
    pass


def _refers_to_main(obj: Any) -> bool:
    """Whether pickling ``obj`` references a class or function of ``__main__``.

    Raises ValueError if ``obj`` cannot be pickled at all.
    """
    class _Probe(pickle.Pickler):
        def reducer_override(self, o: Any) -> Any:
            if isinstance(o, (type, types.FunctionType)) and getattr(o, "__module__", None) == "__main__":
                raise _FoundMain
            return NotImplemented

    try:
        _Probe(io.BytesIO()).dump(obj)
    except _FoundMain:
        return True
    except Exception as e:
        raise ValueError(f"loader workers need a picklable dataset and pipeline/transform: {type(e).__name__}: "
                         f"{e}") from e
    return False


def _worker_loop(kind: str, payload: Tuple, tasks: Any, results: Any) -> None:
    """Run tasks until a None sentinel (or until the parent is gone)."""
    # Ctrl-C goes to the whole process group: let the parent handle it and
    # shut us down in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = mp.parent_process()
    parent_pid = os.getppid()  # parent_process() can be None with the light boot; a re-parented
    while True:                # worker (parent killed, even by SIGKILL) must not linger
        try:
            task = tasks.get(timeout=_POLL_S)
        except queue.Empty:
            if (parent is not None and not parent.is_alive()) or os.getppid() != parent_pid:
                # nobody reads our results any more: a normal exit would wait forever for the
                # result queue's feeder thread to flush into the full pipe
                os._exit(0)
            continue
        if task is None:
            return
        key, args = task
        try:
            if kind == "train":
                dataset, pipeline, seed = payload
                out = load_train_sample(dataset, pipeline, seed, *args)
            else:
                dataset, transform = payload
                out = _load_val_sample(dataset, transform, *args)
            # Pickle here, not in the queue's feeder thread, so a failure is
            # reported as this task's error instead of being lost.
            results.put((key, True, pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)))
        except BaseException as e:  # report everything, including SystemExit from user code
            filename = getattr(e, "filename", None)
            results.put((key, False, (f"{type(e).__name__}: {e}", filename, traceback.format_exc())))


class _Pool:
    """Worker processes fed through one task queue; results by key."""

    def __init__(self, kind: str, payload: Tuple, num_workers: int, mp_context: str, light_workers: bool):
        if mp_context not in ("spawn", "forkserver"):
            raise ValueError(f"mp_context must be 'spawn' or 'forkserver' (never 'fork' next to Jittor), "
                             f"got {mp_context!r}")
        if light_workers and _refers_to_main(payload):
            raise ValueError("the dataset, pipeline or transform uses classes or functions defined in the main "
                             "script, which light loader workers do not import: move them to a module or pass "
                             "light_workers=False")
        ctx = mp.get_context(mp_context)
        self._tasks = ctx.Queue()
        self._results = ctx.Queue()
        self._procs: List[Any] = []
        self._closed = False
        try:
            with _light_main() if light_workers else contextlib.nullcontext():
                for i in range(num_workers):
                    p = ctx.Process(target=_worker_loop, args=(kind, payload, self._tasks, self._results),
                                    name=f"segnext-data-{i}", daemon=True)
                    p.start()
                    self._procs.append(p)
        except BaseException:
            self.close()
            raise

    def submit(self, key: Any, args: Tuple) -> None:
        self._tasks.put((key, args))

    def get(self) -> Tuple[Any, bool, Any]:
        """Next finished task as (key, ok, result or error info); raises if a
        worker died without reporting."""
        while True:
            try:
                key, ok, out = self._results.get(timeout=_POLL_S)
                return key, ok, pickle.loads(out) if ok else out
            except queue.Empty:
                dead = [p for p in self._procs if not p.is_alive()]
                if dead:
                    p = dead[0]
                    raise RuntimeError(f"data loader worker {p.name} (pid {p.pid}) exited unexpectedly with code "
                                       f"{p.exitcode} (crashed or killed, e.g. out of memory; see its stderr)")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Drop tasks nobody will consume so workers reach their sentinel soon.
        with contextlib.suppress(queue.Empty, OSError, EOFError, ValueError):
            while True:
                self._tasks.get_nowait()
        for p in self._procs:
            if p.is_alive():
                with contextlib.suppress(Exception):
                    self._tasks.put(None)
        # A worker exits only once its queued results are flushed into the
        # pipe, so keep draining while waiting for them.
        deadline = time.monotonic() + 5.0
        while any(p.is_alive() for p in self._procs) and time.monotonic() < deadline:
            try:
                self._results.get(timeout=0.05)
            except (queue.Empty, OSError, EOFError, ValueError):
                pass
        for p in self._procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
        for q in (self._tasks, self._results):
            q.cancel_join_thread()  # do not block on undelivered items at exit
            q.close()
        self._procs = []


# --------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------


class _WorkerOwner:
    """Owns an optional worker pool: close() stops it (idempotent); usable as a context manager."""

    _pool: Optional["_Pool"] = None

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
        batch_size, seed: see the module docstring for the sampling rule;
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
            ``__init__`` (see the module docstring).

    Use as a context manager (or call :meth:`close`) so workers stop cleanly.
    """

    def __init__(self, dataset: SegDataset, pipeline: Callable, batch_size: int, seed: int,
                 num_workers: int = 0, start_iter: int = 0, max_iters: Optional[int] = None,
                 slots: Optional[Sequence[int]] = None, prefetch: Optional[int] = None,
                 mp_context: str = "spawn", light_workers: bool = True):
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
        self.seed = _check_seed(seed)
        self.num_workers = int(num_workers)
        self.max_iters = max_iters
        self.prefetch = max(2, 2 * self.num_workers) if prefetch is None else max(1, int(prefetch))
        self._next_iter = int(start_iter)  # next batch handed out
        self._next_submit = int(start_iter)  # next batch sent to workers
        self._pending: Dict[int, Dict[int, Tuple[np.ndarray, np.ndarray, str]]] = {}
        self._pool: Optional[_Pool] = None
        if self.num_workers > 0:
            self._pool = _Pool("train", (dataset, pipeline, self.seed), self.num_workers, mp_context,
                               light_workers)

    def __len__(self) -> int:
        if self.max_iters is None:
            raise TypeError("an endless TrainLoader has no length (set max_iters)")
        return max(0, self.max_iters - self._next_iter)

    @property
    def next_iter(self) -> int:
        """The iteration of the batch the next ``next()`` returns."""
        return self._next_iter

    def indices(self, it: int) -> List[int]:
        return sample_indices(self.seed, it, self.batch_size, len(self.dataset))

    def __iter__(self) -> "TrainLoader":
        return self

    def __next__(self) -> Dict[str, Any]:
        if self.max_iters is not None and self._next_iter >= self.max_iters:
            raise StopIteration
        it = self._next_iter
        if self._pool is None:
            indices = self.indices(it)
            samples = [load_train_sample(self.dataset, self.pipeline, self.seed, it, slot, indices[slot])
                       for slot in self.slots]
        else:
            samples = self._collect(it)
        self._next_iter += 1
        return self._collate(it, samples)

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
                message, filename, tb = out
                self.close()
                raise SampleLoadError(f"{message}\n--- worker traceback ---\n{tb}", filename)
            self._pending[rit][slot] = out
        del self._pending[it]
        self._submit_ahead()
        return [got[s] for s in self.slots]

    def _collate(self, it: int, samples: Sequence[Tuple[np.ndarray, np.ndarray, str]]) -> Dict[str, Any]:
        shapes = {s[0].shape for s in samples} | {(s[0].shape[0],) + s[1].shape for s in samples}
        if len(shapes) != 1:
            detail = ", ".join(f"{s[2]}: img {s[0].shape} label {s[1].shape}" for s in samples)
            raise SampleLoadError(f"iteration {it}: samples differ in size (pad them to the crop size): {detail}")
        img = np.stack([s[0] for s in samples])
        seg = np.stack([s[1] for s in samples]).astype(np.int64)
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
        self._pool: Optional[_Pool] = None

    def __len__(self) -> int:
        return (len(self.indices) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[List[Any]]:
        if self.num_workers == 0:
            for start in range(0, len(self.indices), self.batch_size):
                yield [_load_val_sample(self.dataset, self.transform, i)
                       for i in self.indices[start:start + self.batch_size]]
            return
        self.close()
        self._pool = _Pool("val", (self.dataset, self.transform), self.num_workers, self.mp_context,
                           self.light_workers)
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
                        message, filename, tb = out
                        raise SampleLoadError(f"{message}\n--- worker traceback ---\n{tb}", filename)
                    done[key] = out
                yield [done.pop(k) for k in range(start, stop)]
        finally:
            self.close()

