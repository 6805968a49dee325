"""The files a seed sweep leaves behind, as types: one evaluation (``eval_<protocol>_s<e>.json`` and
the entries of ``result.json``'s "eval" list) and one run (``seed_<k>/result.json`` or
``checkpoint_eval/result.json``).

repro/seed_sweep.py writes them with ``to_json``; repro/report.py reads them with ``from_json`` /
:func:`load_result`, which are strict: the first problem is one ``ResultError`` line naming the file
and the key. Keys this module does not know are ignored, so newer writers stay readable.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from segnext_jt.files import read_json
from segnext_jt.io.limits import short_repr

# evaluation protocols: single-scale, multi-scale + flip (the "mode" field of the JSON files;
# not the whole/slide `mode` of an EvalConfig, nor the stretch/pad `pipeline`)
PROTOCOLS = ("ss", "msflip")
SELECTION_RULE = ("For each training seed and mode the table uses the evaluation whose eval_seed "
                  "equals the training seed when there is one, otherwise the one with the lowest "
                  "eval_seed.")

RESULT_SCHEMA = """\
{
  "seed": int | null,            # training seed; must match the directory seed_<k>; null only
                                 # in checkpoint_eval/
  "config": str | null,          # config path used for training / evaluation
  "checkpoint": str | null,      # final checkpoint path
  "final_loss": float | null,    # training loss at the end (null: taken from train_log)
  "train_log": str | null,       # training log (log.json or scalars.json); relative paths are
                                 # resolved against the seed directory, then against DIR
  "cfg_options": [str] | null,   # optional, the --cfg-options of the sweep
  "eval": [                      # may be empty (trained, not yet evaluated)
    {"eval_seed": int,           # seed of the evaluation RNG (NMF bases)
     "mode": "ss" | "msflip",    # single-scale or multi-scale + flip
     "mIoU": float,              # percent (0..100), like mmseg 1.x logs
     "aAcc": float | null, "mAcc": float | null,   # percent
     "per_class_iou": [float | null, ...] | null,  # optional, percent, null = absent class
     "seconds": float | null,    # optional wall time of this evaluation (power-analysis cost)
     "num_images": int | null,   # optional, images evaluated
     "nmf_draws": int}           # optional (default 1): NMF base draws averaged per image
  ],
  "platform": {...} | null       # optional, segnext_jt.platform_info() of the training run
}"""


class ResultError(ValueError):
    """A sweep file does not follow the expected layout; the message names the file and key."""


def _is_num(v: Any) -> bool:
    """A finite number that converts to a float (an int beyond 1e308 does not)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _opt_num(obj: dict[str, Any], key: str, where: str, error: type = ResultError
             ) -> Optional[float]:
    v = obj.get(key)
    if v is None:
        return None
    if not _is_num(v):
        raise error(f"{where}: '{key}' must be a finite number or null, got {short_repr(v)}")
    return float(v)


def _opt_pct(obj: dict[str, Any], key: str, where: str, error: type) -> Optional[float]:
    v = _opt_num(obj, key, where, error)
    if v is not None and not 0.0 <= v <= 100.0:
        raise error(f"{where}: '{key}' must be a percentage, got {v}")
    return v


def _opt_str(obj: dict[str, Any], key: str, where: str) -> Optional[str]:
    v = obj.get(key)
    if v is not None and not isinstance(v, str):
        raise ResultError(f"{where}: '{key}' must be a string or null, got {short_repr(v)}")
    return v


@dataclass
class EvalEntry:
    """One evaluation of one checkpoint (eval_<protocol>_s<e>.json, an item of result.json's eval)."""
    eval_seed: int
    protocol: str  # "ss" or "msflip"; the JSON field is "mode"
    mIoU: float
    aAcc: Optional[float] = None
    mAcc: Optional[float] = None
    per_class_iou: Optional[list[Optional[float]]] = None
    seconds: Optional[float] = None  # wall time of the evaluation, when the sweep recorded it
    num_images: Optional[int] = None
    nmf_draws: int = 1  # NMF base draws averaged per image (eval --nmf-draws)
    class_names: Optional[list[str]] = None  # the dataset's declared names, in per_class_iou's order

    def to_json(self) -> dict[str, Any]:
        return {"eval_seed": self.eval_seed, "mode": self.protocol, "mIoU": self.mIoU,
                "aAcc": self.aAcc, "mAcc": self.mAcc,
                "per_class_iou": None if self.per_class_iou is None else list(self.per_class_iou),
                "seconds": self.seconds, "num_images": self.num_images,
                "nmf_draws": self.nmf_draws,
                "class_names": None if self.class_names is None else list(self.class_names)}

    @classmethod
    def from_json(cls, obj: Any, where: str, error: type = ResultError) -> "EvalEntry":
        """Validate one entry; `where` prefixes every message (the file, and eval[i])."""
        if not isinstance(obj, dict):
            raise error(f"{where}: expected an object")
        es = obj.get("eval_seed")
        if not _is_int(es):
            raise error(f"{where}: 'eval_seed' must be an int, got {short_repr(es)}")
        protocol = obj.get("mode")  # the protocol's JSON field is "mode"
        if protocol not in PROTOCOLS:
            raise error(f"{where}: 'mode' must be one of {PROTOCOLS}, got {short_repr(protocol)}")
        miou = obj.get("mIoU")
        if not _is_num(miou) or not 0.0 <= miou <= 100.0:
            raise error(f"{where}: 'mIoU' must be a percentage in [0, 100], got {short_repr(miou)}")
        a_acc, m_acc = _opt_pct(obj, "aAcc", where, error), _opt_pct(obj, "mAcc", where, error)
        pci = obj.get("per_class_iou")
        if pci is not None:
            if not isinstance(pci, list) or not all(v is None or _is_num(v) for v in pci):
                raise error(f"{where}: 'per_class_iou' must be a list of numbers/null")
            pci = [None if v is None else float(v) for v in pci]
        secs = _opt_num(obj, "seconds", where, error)
        if secs is not None and secs < 0:
            raise error(f"{where}: 'seconds' must be >= 0, got {secs}")
        n_img = obj.get("num_images")
        if n_img is not None and (not _is_int(n_img) or n_img < 0):
            raise error(f"{where}: 'num_images' must be an int >= 0 or null, got {short_repr(n_img)}")
        draws = obj.get("nmf_draws", 1)
        if not _is_int(draws) or draws < 1:
            raise error(f"{where}: 'nmf_draws' must be an int >= 1, got {short_repr(draws)}")
        names = obj.get("class_names")
        if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)
                                  or pci is None or len(names) != len(pci)):
            raise error(f"{where}: 'class_names' must be a list of strings, one per per_class_iou entry")
        return cls(es, protocol, float(miou), a_acc, m_acc, pci, secs, n_img, draws, names)


def eval_entry_from_summary(summary: dict[str, Any], eval_seed: int, protocol: str,
                            nmf_draws: int = 1) -> dict[str, Any]:
    """The JSON-ready (not yet validated) entry for an evaluation summary
    (segnext_jt.evaluation.run.run_evaluation's return value). The protocol goes in "mode"."""
    return {"eval_seed": eval_seed, "mode": protocol, "mIoU": summary["mIoU"],
            "aAcc": summary["aAcc"], "mAcc": summary["mAcc"],
            "per_class_iou": summary["per_class_iou"], "seconds": summary["seconds"],
            "num_images": summary["num_images"], "nmf_draws": nmf_draws,
            "class_names": summary.get("class_names")}


@dataclass
class RunResult:
    """One result.json: a trained seed, or (seed None) a checkpoint-only eval-seed sweep."""
    seed: Optional[int]
    config: Optional[str]
    checkpoint: Optional[str]
    final_loss: Optional[float]
    train_log: Optional[str]
    evals: list[EvalEntry] = field(default_factory=list)
    cfg_options: Optional[list[str]] = None
    path: Optional[Path] = None  # where it was read from (not part of the JSON)
    platform: Optional[dict] = None  # segnext_jt.platform_info of the training (else the evaluation)

    def evals_for(self, protocol: str) -> list[EvalEntry]:
        return sorted((e for e in self.evals if e.protocol == protocol), key=lambda e: e.eval_seed)

    def selected(self, protocol: str) -> Optional[EvalEntry]:
        """The evaluation used in per-seed tables (see SELECTION_RULE)."""
        evs = self.evals_for(protocol)
        if not evs:
            return None
        same = [e for e in evs if self.seed is not None and e.eval_seed == self.seed]
        return same[0] if same else evs[0]

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "config": self.config, "checkpoint": self.checkpoint,
                "final_loss": self.final_loss, "train_log": self.train_log,
                "cfg_options": None if self.cfg_options is None else list(self.cfg_options),
                "eval": [e.to_json() for e in self.evals], "platform": self.platform}

    @classmethod
    def from_json(cls, obj: Any, path: Path, expect_seed: Optional[int] = None,
                  allow_null_seed: bool = False) -> "RunResult":
        """Validate a parsed result.json read from `path` (schema: RESULT_SCHEMA)."""
        if not isinstance(obj, dict):
            raise ResultError(f"{path}: expected a JSON object")
        seed = _check_seed(obj, path, expect_seed, allow_null_seed)
        if not isinstance(obj.get("eval"), list):
            raise ResultError(f"{path}: 'eval' must be a list (possibly empty)")
        evals: list[EvalEntry] = []
        seen: set[tuple[int, str]] = set()
        for i, item in enumerate(obj["eval"]):
            ev = EvalEntry.from_json(item, f"{path}: eval[{i}]")
            if (ev.eval_seed, ev.protocol) in seen:
                raise ResultError(f"{path}: eval[{i}]: duplicate entry for eval_seed "
                                  f"{ev.eval_seed}, mode {ev.protocol}")
            seen.add((ev.eval_seed, ev.protocol))
            evals.append(ev)
        opts = obj.get("cfg_options")
        if opts is not None and (not isinstance(opts, list)
                                 or not all(isinstance(o, str) for o in opts)):
            raise ResultError(f"{path}: 'cfg_options' must be a list of strings or null, got "
                              f"{short_repr(opts)}")
        where = str(path)
        return cls(seed=seed, config=_opt_str(obj, "config", where),
                   checkpoint=_opt_str(obj, "checkpoint", where),
                   final_loss=_opt_num(obj, "final_loss", where),
                   train_log=_opt_str(obj, "train_log", where), evals=evals, cfg_options=opts,
                   path=path, platform=obj.get("platform") if isinstance(obj.get("platform"), dict) else None)


def _check_seed(obj: dict[str, Any], path: Path, expect_seed: Optional[int],
                allow_null_seed: bool) -> Optional[int]:
    if "seed" not in obj:
        raise ResultError(f"{path}: missing key 'seed'")
    seed = obj["seed"]
    if seed is None:
        if not allow_null_seed:
            raise ResultError(f"{path}: 'seed' is null; only checkpoint_eval/result.json may "
                              f"have a null seed")
    elif not _is_int(seed):
        raise ResultError(f"{path}: 'seed' must be an int, got {short_repr(seed)}")
    elif expect_seed is not None and seed != expect_seed:
        raise ResultError(f"{path}: 'seed' is {short_repr(seed)} but the directory says {expect_seed}")
    elif expect_seed is None and allow_null_seed:
        raise ResultError(f"{path}: checkpoint_eval results must have \"seed\": null")
    return seed


def read_json_file(path: Path) -> Any:
    """JSON from `path` or a one-line ResultError naming it."""
    return read_json(path, ResultError)


def load_result(path: Path, expect_seed: Optional[int], allow_null_seed: bool = False
                ) -> RunResult:
    """Read and validate one result.json (schema: RESULT_SCHEMA)."""
    return RunResult.from_json(read_json_file(path), path, expect_seed, allow_null_seed)
