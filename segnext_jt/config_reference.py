"""The ``reference:`` section of a config: the published mIoU a run of it is compared with
(repro/report.py), where each number comes from, and the other published numbers for the same model
and data when the sources disagree (e.g. SegNeXt-T on ADE20K: paper 41.1, official repo README 41.4,
mmseg 41.50).

``others`` go with the numbers of the file that states them: through ``base:`` they are inherited
only by a file without a ``reference:`` section of its own (segnext_jt/config.py,
read_config_tree), so SegNeXt-S or a Cityscapes config never shows SegNeXt-T's ADE20K values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .errors import ConfigError


def _check_miou(value: Optional[float], where: str) -> None:
    if value is not None and not 0.0 <= value <= 100.0:
        raise ConfigError(f"{where} is an mIoU in percent (0..100), got {value}")


@dataclass
class PublishedValue:
    """Another published number for the same model and data, with where it was published."""
    ss: Optional[float] = None
    msflip: Optional[float] = None
    source: Optional[str] = None     # e.g. "SegNeXt paper (arXiv 2209.08575) Table 4"

    def validate(self, where: str) -> None:
        _check_miou(self.ss, f"{where}.ss")
        _check_miou(self.msflip, f"{where}.msflip")
        if self.ss is None and self.msflip is None:
            raise ConfigError(f"{where}: give ss and/or msflip (an entry without a number says nothing)")
        if not (self.source or "").strip():
            raise ConfigError(f"{where}.source: say where this number was published")


@dataclass
class ReferenceConfig:
    """Published mIoU (%) a run of this config is compared with (repro/report.py); all null when
    there is nothing to compare with (the demo, your own data)."""
    ss: Optional[float] = None       # single scale
    msflip: Optional[float] = None   # multi-scale + flip
    ss_range: Optional[list[float]] = None  # [low, high] of single-scale results over seeds, if published
    source: Optional[str] = None     # where ss, msflip and ss_range come from (paper table, README, log)
    others: Optional[list[PublishedValue]] = None  # other published values, each with its source

    def validate(self, where: str) -> None:
        for name in ("ss", "msflip"):
            _check_miou(getattr(self, name), f"{where}.{name}")
        if self.ss_range is not None:
            if len(self.ss_range) != 2 or not 0.0 <= self.ss_range[0] <= self.ss_range[1] <= 100.0:
                raise ConfigError(f"{where}.ss_range needs [low, high] percentages with low <= high, "
                            f"got {self.ss_range}")
        has_numbers = any(v is not None for v in (self.ss, self.msflip, self.ss_range))
        if has_numbers and not (self.source or "").strip():
            raise ConfigError(f"{where}.source: say where the reference numbers come from (paper table, README)")
        for i, other in enumerate(self.others or []):
            other.validate(f"{where}.others[{i}]")
