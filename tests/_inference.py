"""Tensor-level test-time paths that the parity tests compare with the reference fixtures.

The evaluator builds its inputs in NumPy (segnext_jt.data.eval_views); these are the same steps on
an already normalised NCHW batch, as mmseg 1.x's SegDataPreProcessor and predict() run them.
"""
from __future__ import annotations

import math
from typing import Sequence

import segnext_jt.runtime  # noqa: F401  (before jittor)
import jittor as jt
from jittor import nn


def pad_bottom_right(x: jt.Var, size_divisor: int, value: float = 0.0) -> jt.Var:
    """Pad an NCHW batch at the bottom/right to a multiple of `size_divisor` (mmseg 1.x
    SegDataPreProcessor pads after normalisation, with 0)."""
    h, w = x.shape[2:]
    ph = math.ceil(h / size_divisor) * size_divisor - h
    pw = math.ceil(w / size_divisor) * size_divisor - w
    if ph == 0 and pw == 0:
        return x
    return nn.pad(x, [0, pw, 0, ph], mode="constant", value=value)


def predict_logits(model, x: jt.Var, pipeline: str = "stretch", size_divisor: int = 32,
                   nmf_keys=None, nmf_bases=None, mode: str = "whole",
                   crop_size: Sequence[int] = (512, 512), stride: Sequence[int] = (341, 341)) -> jt.Var:
    """Logits at the size of the (already resized and normalised) input `x`.

    'pad': pad to a multiple of size_divisor, predict, logits resized to the padded size, crop.
    'stretch': the input is already a multiple of 32 (ResizeToMultiple), predict directly."""
    h, w = x.shape[2:]
    if pipeline == "pad":
        x = pad_bottom_right(x, size_divisor)
    elif pipeline != "stretch":
        raise ValueError(f"pipeline must be 'stretch' or 'pad', got {pipeline!r}")
    if mode == "whole":
        logits = model.encode_decode(x, nmf_keys, nmf_bases)
    else:
        if nmf_bases is not None:
            raise ValueError("injected NMF bases are only supported in whole mode")
        logits = model.predict(x, nmf_keys, mode=mode, crop_size=crop_size, stride=stride)
    return logits[:, :, :h, :w] if tuple(logits.shape[2:]) != (h, w) else logits
