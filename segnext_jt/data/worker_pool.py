"""A small process pool for the loaders: worker processes fed through one task queue.

Workers are started with 'spawn' (default) or 'forkserver', never 'fork',
because the parent runs Jittor threads. With ``light_workers=True`` they run
:mod:`segnext_jt.data._worker_boot` instead of re-running the parent's main
script, so a worker imports only ``segnext_jt.data`` (NumPy + Pillow), not the
trainer's Jittor imports. The task function and its payload must then be
importable from modules (not defined in the main script).

A task is ``task(*payload, *args)``; its result comes back pickled under the
key it was submitted with, or as ``(exception type name, message, filename,
traceback)`` when it raised (the caller decides how to word it).
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
from typing import Any, Callable, List, Tuple

_POLL_S = 0.5  # how often a waiting parent / idle worker checks the other side

_BOOT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker_boot.py")

# glibc mallopt parameters (malloc.h) and the largest mmap threshold it accepts on 64-bit.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 << 20


def keep_freed_memory() -> bool:
    """Let this process reuse freed memory instead of returning it to the OS (glibc only).

    A training sample makes dozens of NumPy temporaries of 0.3-3 MB. With glibc's defaults each
    is a fresh mmap that the kernel zero-fills page by page on first touch and unmaps on free:
    ~2,000 page faults per resize, a third of a worker's CPU time in the kernel (measured:
    19 -> 12 ms per ADE20K sample). Arrays up to 32 MB now come from the heap and freed memory
    stays mapped, so a worker's RSS stays at its peak (tens of MB). Returns False where the C
    library has no mallopt (musl, macOS, Windows): nothing changes there.
    """
    try:
        import ctypes
        import ctypes.util
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))


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


def _worker_loop(fn: Callable, payload: Tuple, tasks: Any, results: Any) -> None:
    """Run ``fn(*payload, *args)`` per task until a None sentinel (or until the parent is gone)."""
    # Ctrl-C goes to the whole process group: let the parent handle it and
    # shut us down in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_freed_memory()
    parent = mp.parent_process()
    parent_pid = os.getppid()  # parent_process() can be None with the light boot; a re-parented
    while True:                # worker (parent killed, even by SIGKILL) must not linger
        try:
            item = tasks.get(timeout=_POLL_S)
        except queue.Empty:
            if (parent is not None and not parent.is_alive()) or os.getppid() != parent_pid:
                # nobody reads our results any more: a normal exit would wait forever for the
                # result queue's feeder thread to flush into the full pipe
                os._exit(0)
            continue
        if item is None:
            return
        key, args = item
        try:
            out = fn(*payload, *args)
            # Pickle here, not in the queue's feeder thread, so a failure is
            # reported as this task's error instead of being lost.
            results.put((key, True, pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)))
        except BaseException as e:  # report everything, including SystemExit from user code
            filename = getattr(e, "filename", None)
            results.put((key, False, (type(e).__name__, str(e), filename, traceback.format_exc())))


class WorkerPool:
    """Worker processes running ``fn(*payload, *args)`` for each submitted ``(key, args)``; results by key.

    ``fn`` and ``payload`` are pickled to every worker once, at start.
    """

    def __init__(self, fn: Callable, payload: Tuple, num_workers: int, mp_context: str, light_workers: bool):
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
                    p = ctx.Process(target=_worker_loop, args=(fn, payload, self._tasks, self._results),
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
