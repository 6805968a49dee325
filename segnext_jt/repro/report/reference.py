"""The reported numbers a sweep is compared against, field by field from, in order:

1. the command line (--reference, --reference-msflip, --reference-range);
2. a config's ``reference:`` section (segnext_jt.config ReferenceConfig: ss, msflip, ss_range,
   source): the one given with --reference-from, else the sweep's own config (sweep.json's
   "config" with its "cfg_options") when that section has values. A section with a source but
   no numbers ("no published number") means exactly that: nothing to compare with;
3. the mmseg README numbers for ADE20K of the model size in the config name (SegNeXt-L if
   unknown).

``Reference.source`` says which were used.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from segnext_jt.repro import REPO_ROOT
from segnext_jt.repro.report.inputs import ReportInputError, Sweep


# mmseg README numbers for ADE20K 512x512 160k (docs/design.md §7.1): (ss, ms+flip). The seed range
# is only stated for L.
REFERENCES = {"t": (41.50, 42.59), "s": (44.16, 45.81), "b": (48.03, 49.68), "l": (50.99, 52.10)}
REFERENCE_RANGE_L = (49.60, 51.0)
_SIZE_WORDS = {"tiny": "t", "small": "s", "base": "b", "large": "l"}


@dataclass
class Reference:
    ss: Optional[float]
    msflip: Optional[float]
    ss_range: Optional[tuple[float, float]]
    source: str
    warnings: list[str] = field(default_factory=list)  # for the report, not part of its JSON
    # other published values for the same model and data (the config's reference.others), each
    # {"ss": float | None, "msflip": float | None, "source": str}: shown beside the reference
    others: list[dict[str, Any]] = field(default_factory=list)

    def for_protocol(self, protocol: str) -> Optional[float]:
        """The reported mIoU of an evaluation protocol ("ss" or "msflip")."""
        return self.ss if protocol == "ss" else self.msflip

    def range_for(self, protocol: str) -> Optional[tuple[float, float]]:
        """The reported seed range of a protocol (only stated for single scale)."""
        return self.ss_range if protocol == "ss" else None

    def has_values(self) -> bool:
        return any(v is not None for v in (self.ss, self.msflip, self.ss_range))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ss": self.ss, "msflip": self.msflip, "ss_range": self.ss_range,
                               "source": self.source}
        if self.others:  # only then: reports of configs without others are what they were
            out["others"] = self.others
        return out


def infer_size(texts: Sequence[Optional[str]]) -> Optional[str]:
    """Model size letter (t/s/b/l) from config names such as segnext_mscan-l_... or large."""
    for text in texts:
        if not text:
            continue
        low = text.lower()
        m = re.search(r"mscan[-_]?([tsbl])(?![a-z])", low) or \
            re.search(r"segnext[-_.]?([tsbl])(?![a-z])", low)
        if m:
            return m.group(1)
        m = re.search(r"segnext[-_.]?(tiny|small|base|large)", low)
        if m:
            return _SIZE_WORDS[m.group(1)]
    return None


def default_reference(sweep: Sweep) -> Reference:
    """The mmseg README numbers for the model size named by the sweep's config."""
    size = infer_size(sweep.config_names())
    if size is None:
        size, how = "l", "SegNeXt-L defaults (model size not recognisable from the config name)"
    else:
        how = f"mmseg README numbers for SegNeXt-{size.upper()} (inferred from the config name)"
    ss, ms = REFERENCES[size]
    return Reference(ss, ms, REFERENCE_RANGE_L if size == "l" else None, how)


def config_reference(path: Path, overrides: Optional[list[str]] = None) -> Optional[Reference]:
    """The ``reference:`` section of a config; None when it states nothing (no numbers, no
    source). Raises the config's one-line ConfigError when it does not load."""
    from segnext_jt.config import load_config
    cfg = load_config(path, overrides)
    section = getattr(cfg, "reference", None)
    ss, ms = getattr(section, "ss", None), getattr(section, "msflip", None)
    rng = getattr(section, "ss_range", None)
    if rng is not None:
        if len(rng) != 2:
            raise ReportInputError(f"{path}: reference.ss_range must be [LO, HI], got {rng!r}")
        rng = (float(min(rng)), float(max(rng)))
    note = (getattr(section, "source", None) or "").strip()
    if ss is None and ms is None and rng is None and not note:
        return None
    where = f"reference section of {path}"
    others = [{"ss": o.ss, "msflip": o.msflip, "source": o.source}
              for o in (getattr(section, "others", None) or [])]
    return Reference(None if ss is None else float(ss), None if ms is None else float(ms), rng,
                     f"{note} ({where})" if note else where, others=others)


def _find_config(name: str) -> Optional[Path]:
    """A recorded config path: as given (absolute or relative to the working directory), else
    relative to the repository."""
    p = Path(name)
    for cand in ([p] if p.is_absolute() else [p, REPO_ROOT / p]):
        if cand.is_file():
            return cand
    return None


def _sweep_config(sweep: Sweep) -> tuple[Optional[str], Optional[list[str]]]:
    """The config the sweep ran (sweep.json, else a result.json) and its --cfg-options."""
    plan = sweep.plan or {}
    if isinstance(plan.get("config"), str):
        opts = plan.get("cfg_options")
        return plan["config"], opts if isinstance(opts, list) else None
    runs = list(sweep.runs.values()) + ([sweep.checkpoint_eval] if sweep.checkpoint_eval else [])
    for run in runs:
        if run.config:
            return run.config, run.cfg_options
    return None, None


def sweep_config_reference(sweep: Sweep) -> Optional[Reference]:
    """The reference section of the sweep's own config, when it is found and states something.
    A config that is found but does not load is a warning (returned as an empty Reference)."""
    from segnext_jt.errors import ConfigError
    name, overrides = _sweep_config(sweep)
    path = _find_config(name) if name else None
    if path is None:
        return None
    try:
        ref = config_reference(path, overrides)
    except (ConfigError, ReportInputError) as exc:
        msg = f"the sweep's config could not be read for its reference values: {exc}"
        return Reference(None, None, None, "", warnings=[msg])
    return ref


def resolve_reference(sweep: Sweep, ref: Optional[float] = None,
                      ref_range: Optional[tuple[float, float]] = None,
                      ref_ms: Optional[float] = None,
                      reference_from: Optional[Path] = None) -> Reference:
    """Command-line values, else a config's reference section, else the mmseg defaults."""
    warnings: list[str] = []
    if reference_from is not None:
        stated = config_reference(reference_from)
        if stated is None:
            raise ReportInputError(f"{reference_from}: --reference-from: the config has no "
                                   f"reference values (reference.ss, reference.msflip, "
                                   f"reference.ss_range, reference.source)")
        base = stated
    else:
        from_sweep = sweep_config_reference(sweep)
        if from_sweep is not None:
            warnings += from_sweep.warnings
        stated = from_sweep if from_sweep is not None and (from_sweep.has_values()
                                                           or from_sweep.source) else None
        base = stated or default_reference(sweep)
    cli = ref is not None or ref_range is not None or ref_ms is not None
    return Reference(ss=ref if ref is not None else base.ss,
                     msflip=ref_ms if ref_ms is not None else base.msflip,
                     ss_range=ref_range if ref_range is not None else base.ss_range,
                     source=f"command-line values + {base.source}" if cli else base.source,
                     warnings=warnings, others=base.others)
