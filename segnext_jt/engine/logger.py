"""JSON-lines training log in mmseg 0.x / mmcv `*.log.json` format (what the released logs use).

Line 1 is the run metadata (env_info, seed, exp_name, mmseg_version, config, CLASSES, PALETTE);
then `mode: train` lines every log_interval iterations and `mode: val` lines after evaluations.
Floats are rounded to 5 decimals like mmcv's TextLoggerHook. Our val lines carry the training
iteration in `iter` (older mmseg convention; repro.logs reads both conventions).

Every file written here is strict JSON: NaN/inf (e.g. the IoU of a class absent from the
validation set) are written as `null` where mmcv would write the non-standard `NaN`.
"""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, Callable, Optional

from ..files import atomic_file, dumps_strict, write_text_atomic
from ..io.limits import short_repr


def round_floats(value: Any) -> Any:
    """mmcv's 5-decimal rounding; NaN/inf become None (JSON null), NumPy scalars Python numbers."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return round(value, 5) if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [round_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: round_floats(v) for k, v in value.items()}
    tolist = getattr(value, "tolist", None)  # numpy scalar or array
    if callable(tolist):
        return round_floats(tolist())
    return value


def _line_iter(record: dict, path: str, line: int) -> int:
    """The `iter` of a train/val line, or a one-line TrainSetupError naming the line ("x", 1e400,
    a list or a negative number there would otherwise end in a traceback)."""
    value = record.get("iter", 0) or 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        from .checkpoint import TrainSetupError
        raise TrainSetupError(f"{path}: line {line}: 'iter' is {short_repr(value)}, not an iteration number; "
                              "fix or delete that line to resume")
    return value


def _warn_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class JsonLogWriter:
    """Append-only JSON-lines file. On resume, lines after the resumed iteration are dropped (they
    belong to work that is being redone) and the file is rewritten atomically first. A line that
    does not parse (the last one torn by a kill during its write) is dropped with one warning."""

    def __init__(self, path: str, meta: Optional[dict] = None, resume_iter: Optional[int] = None,
                 warn: Callable[[str], None] = _warn_stderr):
        self.path = path
        self.warn = warn
        if resume_iter is not None and os.path.isfile(path):
            self._truncate_after(resume_iter, meta)
        elif meta is not None:  # a new run (or a resume whose log is gone) starts with the metadata
            self._rewrite([dumps_strict(meta)])

    def _truncate_after(self, iteration: int, meta: Optional[dict]) -> None:
        """Rewrite the log without the lines after `iteration`, streamed: one line in memory at a
        time (a 3-million-line log.json cost 1 GB when read whole), straight into the atomic file."""
        torn: list[int] = []  # line numbers (the first few) of lines that do not parse
        n_torn, last_nonblank, wrote_any = 0, 0, False
        with open(self.path, "rb") as src, atomic_file(self.path, "w") as out:
            for n, raw in enumerate(src, 1):
                if not raw.strip():
                    continue
                last_nonblank = n
                try:
                    record = json.loads(raw.decode("utf-8"))
                    if not isinstance(record, dict):
                        raise ValueError("not a JSON object")
                except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                    n_torn += 1
                    if len(torn) < 6:
                        torn.append(n)
                    continue
                if "mode" in record and _line_iter(record, self.path, n) > iteration:
                    continue
                if not wrote_any and meta is not None and "mode" in record:
                    out.write(dumps_strict(meta) + "\n")  # the metadata line itself was lost
                out.write(dumps_strict(record) + "\n")
                wrote_any = True
            if not wrote_any and meta is not None:
                out.write(dumps_strict(meta) + "\n")
        if n_torn:
            where = ("its last line" if n_torn == 1 and torn == [last_nonblank] else
                     f"line(s) {', '.join(map(str, torn[:5]))}{' ...' if n_torn > 5 else ''}")
            self.warn(f"warning: {self.path}: dropped {where}, which is not valid JSON (torn by an "
                      f"interrupted write); continuing")

    def _rewrite(self, lines: list[str]) -> None:
        write_text_atomic(self.path, "".join(line + "\n" for line in lines))

    def write(self, record: dict) -> None:
        line = json.dumps(round_floats(record), allow_nan=False) + "\n"
        with open(self.path, "a") as f:
            f.write(line)
            f.flush()
