"""JSON-lines training log in mmseg 0.x / mmcv `*.log.json` format (what the released logs use).

Line 1 is the run metadata (env_info, seed, exp_name, mmseg_version, config, CLASSES, PALETTE);
then `mode: train` lines every log_interval iterations and `mode: val` lines after evaluations.
Floats are rounded to 5 decimals like mmcv's TextLoggerHook. Our val lines carry the training
iteration in `iter` (older mmseg convention; repro.logs reads both conventions).
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Optional


def round_floats(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isnan(value) or math.isinf(value) else round(value, 5)
    if isinstance(value, list):
        return [round_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: round_floats(v) for k, v in value.items()}
    return value


class JsonLogWriter:
    """Append-only JSON-lines file. On resume, lines after the resumed iteration are dropped (they
    belong to work that is being redone) and the file is rewritten atomically first."""

    def __init__(self, path: str, meta: Optional[dict] = None, resume_iter: Optional[int] = None):
        self.path = path
        if resume_iter is not None and os.path.isfile(path):
            self._truncate_after(resume_iter)
        elif meta is not None:  # a new run (or a resume whose log is gone) starts with the metadata
            self._rewrite([json.dumps(meta)])

    def _truncate_after(self, iteration: int) -> None:
        kept = []
        with open(self.path) as f:
            for n, line in enumerate(f):
                if not line.strip():
                    continue
                record = json.loads(line)
                if n > 0 and "mode" in record and int(record.get("iter", 0)) > iteration:
                    continue
                kept.append(line.rstrip("\n"))
        self._rewrite(kept)

    def _rewrite(self, lines: list[str]) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(round_floats(record)) + "\n")
            f.flush()
