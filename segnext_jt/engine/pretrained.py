"""The backbone's ImageNet initialisation, shared by the trainer and the pre-flight check: every
backbone key must match the file; only the ImageNet classifier (`head.*`) is dropped."""
from __future__ import annotations

from ..io import load_checkpoint


def init_backbone(model, resolved) -> dict:
    """Load `resolved` (a hub.Resolved) into `model.backbone` strictly. Returns the log.json entry
    with the one-line summary under "line"; raises a one-line CheckpointMismatchError otherwise."""
    report = load_checkpoint(model, resolved.path, logger=None, backbone_strict=True)
    n, dropped = len(report.matched), len(report.dropped)
    total = n + len(report.missing) + len(report.mismatched)  # the model's backbone keys
    line = (f"backbone initialised from {resolved.describe()}: {n}/{total} keys matched"
            + (f", {dropped} ImageNet classifier keys (head.*) dropped" if dropped else ""))
    return {"spec": resolved.spec, "path": resolved.path, "url": resolved.url, "keys_matched": n,
            "keys_dropped": report.dropped, "line": line}
