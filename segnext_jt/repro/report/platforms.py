"""Which platform each training seed ran on, and what that does to the variance split.

A seed's platform id comes from its result.json ("platform": segnext_jt.platform_info() of the
training run, key "platform_id" or "id"), else from its training log's header (the same dict under
"platform", or the "Platform id: ..." line of env_info), else it is "unknown". A sweep whose seeds
carry one id (or none at all) gets no platform section, so its report is what it was before
platforms were recorded. A sweep that mixes ids gets a warning at the top and, with >= 2 seeds on
each of >= 2 known platforms, a three-level decomposition (platform, training seed within platform,
eval seed: stats.nested_variance_decomposition); otherwise the report says that its train-seed
variance includes the platform noise.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from segnext_jt.repro.report import stats
from segnext_jt.repro.report.log_parsing import TrainingLog
from segnext_jt.repro.report.power_section import protocol_table
from segnext_jt.repro.report.text import PROTOCOL_LABEL, fmt, md_code
from segnext_jt.repro.sweep.results import PROTOCOLS, RunResult

UNKNOWN = "unknown"
_ENV_INFO_ID = re.compile(r"^Platform id:\s*(\S+)\s*$", re.MULTILINE)
_ID_TEXT = re.compile(r"[0-9A-Za-z_.:-]{1,64}")  # what a platform id may look like in the report

CONFOUNDED = ("The train-seed variance includes the platform noise here: the report cannot separate "
              "them (that needs >= 2 training seeds on each of >= 2 known platforms).")
NESTED_INTRO = (
    "Seeds ran on several platforms, so the variance is split three ways (random-effects nested "
    "ANOVA, method of moments): *platform* (hardware and software: the same seed can give other "
    "bits on another CPU), *train seed* within a platform, and *eval seed* (NMF bases). The "
    "platform F test is MS_platform / MS_train.")


def _id_from_platform_dict(value: Any) -> Optional[str]:
    if isinstance(value, dict):
        for key in ("id", "platform_id"):
            pid = value.get(key)
            if isinstance(pid, str) and _ID_TEXT.fullmatch(pid):
                return pid
    return None


def seed_platform(run: RunResult, log: Optional[TrainingLog]) -> str:
    """The platform id of one training seed (see the module docstring); never raises."""
    pid = _id_from_platform_dict(run.platform)  # result.json's "platform", parsed with the run
    if pid:
        return pid
    if log is not None:
        pid = _id_from_platform_dict(log.meta.get("platform"))
        if pid:
            return pid
        env = log.meta.get("env_info")
        match = _ENV_INFO_ID.search(env) if isinstance(env, str) else None
        if match and _ID_TEXT.fullmatch(match.group(1)):
            return match.group(1)
    return UNKNOWN


@dataclass
class Platforms:
    """The platforms of a sweep whose seeds do not all share one (None from analyze_platforms
    otherwise)."""
    by_seed: dict[int, str]
    groups: dict[str, list[int]]  # platform id -> its seeds, in order of first appearance
    nested: dict[str, stats.NestedDecomposition]  # by protocol, when the design separates platforms
    separable: bool

    @property
    def warning(self) -> str:
        parts = "; ".join(f"{pid}: seeds {seeds}" for pid, seeds in self.groups.items())
        return (f"the training seeds ran on {len(self.groups)} different platforms ({parts}): "
                f"differences between them mix hardware/software noise into the seed spread")

    def to_json(self) -> dict[str, Any]:
        return {"mixed": True, "by_seed": {str(s): p for s, p in self.by_seed.items()},
                "groups": self.groups, "separable": self.separable,
                "nested_decomposition": self.nested,
                "note": None if self.separable else CONFOUNDED}


def analyze_platforms(runs: dict[int, RunResult], logs: dict[int, TrainingLog]
                      ) -> Optional[Platforms]:
    """None when every seed has the same platform id (or none has one)."""
    by_seed = {seed: seed_platform(run, logs.get(seed)) for seed, run in runs.items()}
    groups: dict[str, list[int]] = {}
    for seed, pid in by_seed.items():
        groups.setdefault(pid, []).append(seed)
    if len(groups) < 2:
        return None
    known = {pid: seeds for pid, seeds in groups.items() if pid != UNKNOWN}
    nested: dict[str, stats.NestedDecomposition] = {}
    if len(known) >= 2 and all(len(seeds) >= 2 for seeds in known.values()):
        for protocol in PROTOCOLS:
            table = protocol_table(runs, protocol)
            design = {pid: {s: list(table[s].values()) for s in seeds if s in table}
                      for pid, seeds in known.items()}
            try:
                nested[protocol] = stats.nested_variance_decomposition(design)
            except ValueError:  # e.g. one eval seed per checkpoint in this protocol
                continue
    return Platforms(by_seed, groups, nested, separable=bool(nested))


def render_platforms_header(p: Optional[Platforms]) -> list[str]:
    """The warning at the top of report.md (nothing for a single-platform sweep)."""
    if p is None:
        return []
    return [f"> **Mixed platforms:** {p.warning}. "
            + ("See *Platform vs training seed vs evaluation seed* below." if p.separable
               else CONFOUNDED), ""]


def render_platforms_section(p: Optional[Platforms]) -> list[str]:
    if p is None:
        return []
    md = ["## Platform vs training seed vs evaluation seed", "",
          "| platform | training seeds |", "| --- | --- |"]
    md += [f"| {md_code(pid)} | {', '.join(map(str, seeds))} |" for pid, seeds in p.groups.items()]
    md.append("")
    if not p.separable:
        return md + [CONFOUNDED, ""]
    md += [NESTED_INTRO, "",
           "| mode | platforms | train seeds | evals | platform SD | train-seed SD | eval-seed SD "
           "| platform share | train share | eval share | F platform (p) | F train (p) |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for protocol, d in p.nested.items():
        md.append(f"| {PROTOCOL_LABEL[protocol]} | {d.n_platforms} | {d.n_train_seeds} | {d.n_total} "
                  f"| {d.var_platform ** 0.5:.3f} | {d.var_train ** 0.5:.3f} | {d.var_eval ** 0.5:.3f} "
                  f"| {fmt(d.share_platform * 100, '.0f')} % | {fmt(d.share_train * 100, '.0f')} % "
                  f"| {fmt(d.share_eval * 100, '.0f')} % | {fmt(d.f_platform, '.2f')} "
                  f"({fmt(d.p_platform, '.3g')}) | {fmt(d.f_train, '.2f')} ({fmt(d.p_train, '.3g')}) |")
        md += [f"\n_{PROTOCOL_LABEL[protocol]}: {note}_" for note in d.notes]
    return md + [""]
