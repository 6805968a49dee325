"""Checkpoint I/O without torch: safe torch/JSeg readers, the native .npz format, key conversion.
Its errors (`CheckpointError` and subclasses) are in segnext_jt.errors.

Nothing here imports torch or jittor; models are handled by duck typing (`state_dict()` /
`load_state_dict()`).
"""
from .convert import (
    KIND_KEY,
    SOURCES,
    CheckpointContents,
    LoadReport,
    MatchReport,
    count_parameters,
    load_checkpoint,
    match_state_dict,
    normalize_state_dict,
    read_any_checkpoint,
    read_checkpoint,
)
from .native import STATE_DICT_PREFIX, load_npz, save_npz
from .torch_pickle import read_jittor_pickle, read_torch_checkpoint

__all__ = [
    "read_any_checkpoint",
    "read_checkpoint",
    "load_checkpoint",
    "match_state_dict",
    "normalize_state_dict",
    "count_parameters",
    "save_npz",
    "load_npz",
    "read_torch_checkpoint",
    "read_jittor_pickle",
    "CheckpointContents",
    "MatchReport",
    "LoadReport",
    "SOURCES",
    "KIND_KEY",
    "STATE_DICT_PREFIX",
]
