"""MSCAN's checkpoint keys in other layouts, mapped to this port's (mmseg 1.x's) names: the
model-specific part of io/convert.normalize_state_dict, kept beside the model as timm keeps each
model's checkpoint_filter_fn.

* ImageNet-pretrained MSCAN files hold a bare backbone (`patch_embed1.*`, `block1.*`, `norm1.*`, no
  `backbone.` prefix) plus a `head.*` classifier that has no place in a segmentor.
* The SegNeXt repo's Mlp keeps its depthwise conv inside a DWConv wrapper (`mlp.dwconv.dwconv.*`);
  mmseg's Mlp holds it directly (`mlp.dwconv.*`).

Plain Python, no Jittor: the io package that calls it stays NumPy-only (models/__init__ imports its
Jittor modules lazily for that reason).
"""
from __future__ import annotations

import re
from typing import List, Sequence, Tuple, TypeVar

Value = TypeVar("Value")

BACKBONE_PREFIX = "backbone."
IMAGENET_CLASSIFIER_PREFIX = "head."
_BARE_MSCAN_KEY = re.compile(r"^(patch_embed\d+|block\d+|norm\d+)\.")
_ORIG_DWCONV = re.compile(r"\.mlp\.dwconv\.dwconv\.")


def is_bare_mscan_key(key: str) -> bool:
    """Whether `key` names an MSCAN entry without the segmentor's `backbone.` prefix."""
    return _BARE_MSCAN_KEY.match(key) is not None


def pretrain_to_segmentor(items: Sequence[Tuple[str, Value]]) -> Tuple[List[Tuple[str, Value]], List[str]]:
    """(entries of an ImageNet-pretrained MSCAN under `backbone.`, the dropped `head.*` keys)."""
    dropped = [k for k, _ in items if k.startswith(IMAGENET_CLASSIFIER_PREFIX)]
    kept = [(BACKBONE_PREFIX + k, v) for k, v in items if not k.startswith(IMAGENET_CLASSIFIER_PREFIX)]
    return kept, dropped


def orig_to_mmseg(key: str) -> str:
    """The mmseg name of a SegNeXt-repo key (`.mlp.dwconv.dwconv.` -> `.mlp.dwconv.`); others unchanged."""
    return _ORIG_DWCONV.sub(".mlp.dwconv.", key)
