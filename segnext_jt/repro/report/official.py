"""The official training log to overlay on the learning curves (repro/report.py --official): a file,
or ``zoo:NAME`` for the log mmseg released with that model (segnext_jt.hub.OFFICIAL_LOGS:
zoo:segnext_t, _s, _b, _l, the ADE20K 160k runs), downloaded once into the weights cache
($SEGNEXT_HOME/checkpoints) by segnext_jt.hub, which also honours SEGNEXT_OFFLINE and
SEGNEXT_HUB_MIRROR. Offline without the file, the one error line names the URL and the cache path
to place it at.

Integrity. The weights' names carry a sha256 prefix that hub checks; the logs' names carry none and
no digest is published, so a log is trusted as far as can be checked:

1. the transfer is complete (hub: a body shorter than its Content-Length is an error);
2. the content is that model's log: it parses as an mmseg log line by line (log_parsing, strict),
   has train and val lines, and its metadata's ``exp_name``, when there, names the run
   (``segnext_mscan-l_1x16_512x512_adamw_160k_ade20k``...);
3. trust on first use: the sha256 of the first copy that passes 2 is written beside it
   (``<file>.sha256``) and every later use checks the cached file against it, so a copy changed or
   cut short afterwards is caught. Comparing that digest with another machine's pins the file.

A cached file that fails 2 or 3 is moved aside to ``<file>.bad`` (the next run downloads it again)
and the error line says why; deleting ``<file>.sha256`` accepts a new copy on purpose.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from segnext_jt import hub
from segnext_jt.repro.report.log_parsing import LogParseError, TrainingLog, parse_log

OFFLINE_HINT = "then rerun (or give --official PATH to a copy anywhere)"


class OfficialLogError(LogParseError):
    """The cached official log is not the file it should be (one line, names the file)."""


def _run_name(url: str) -> str:
    """segnext_mscan-l_1x16_512x512_adamw_160k_ade20k from the URL's folder."""
    return url.rstrip("/").split("/")[-2]


def _reject(path: str, why: str) -> OfficialLogError:
    bad = path + ".bad"
    os.replace(path, bad)
    return OfficialLogError(f"{path}: {why}; moved it to {bad} (the next run downloads it again)")


def check_official_log(path: str, run: str) -> TrainingLog:
    """Steps 2 and 3 of the module docstring for a cached official log; the parsed log."""
    recorded = path + ".sha256"
    digest = hub.file_sha256(path)
    if os.path.isfile(recorded):
        with open(recorded) as f:
            words = f.read().split()
        expected = words[0] if words else ""
        if digest != expected:
            raise _reject(path, f"its sha256 {digest[:16]}... differs from {expected[:16]}... recorded in "
                                f"{recorded} when it was first fetched (delete that file to accept a new copy)")
    try:
        log = parse_log(path, fmt="mmseg0")
    except LogParseError as exc:
        raise _reject(path, f"not an mmseg 0.x training log ({exc})") from None
    exp_name = log.meta.get("exp_name")
    if not log.train or not log.val:
        raise _reject(path, f"has {len(log.train)} train and {len(log.val)} val lines; the released log has both")
    if isinstance(exp_name, str) and run not in exp_name:
        raise _reject(path, f"its exp_name {exp_name!r} is not the run {run}")
    if not os.path.isfile(recorded):
        with open(recorded + ".tmp", "w") as f:
            f.write(f"{digest}  {os.path.basename(path)}\n")
        os.replace(recorded + ".tmp", recorded)
    return log


def load_official(spec: Optional[str], progress: bool = True) -> Optional[TrainingLog]:
    """The parsed official log of --official (None when not given)."""
    if not spec:
        return None
    if not spec.startswith(hub.ZOO_PREFIX):
        return parse_log(spec)
    name = spec[len(hub.ZOO_PREFIX):]
    if name not in hub.OFFICIAL_LOGS:
        names = ", ".join(hub.ZOO_PREFIX + n for n in hub.OFFICIAL_LOGS)
        raise hub.HubError(f"--official {spec}: no released log by that name; the names are {names}")
    url = hub.OFFICIAL_LOGS[name]
    path = hub.resolve(url, what="--official", hint=OFFLINE_HINT, progress=progress).path
    return check_official_log(path, _run_name(url))


def cached_official_path(name: str) -> Path:
    """Where zoo:NAME's log lives in the cache (for messages and tests)."""
    return Path(hub.cached_path(hub.OFFICIAL_LOGS[name]))
