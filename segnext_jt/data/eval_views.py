"""Test-time views: the network input of one (scale, flip) view of an image, and the TTA sizes.

Two test pipelines (config key eval.pipeline; docs/design.md §4.2, §8 rows 5-6): 'stretch'
(mmseg 0.x, which measured the released numbers) and 'pad' (mmseg 1.x). "pipeline" here is only this
resize choice; whole/slide inference is eval.mode (mmseg's test_cfg name) and single-scale versus
multi-scale+flip is the evaluation protocol (`ms_flip`). Images are BGR ``uint8`` (H, W, 3) as read by
:func:`.ade20k.read_image_bgr`; sizes ``(w, h)`` follow cv2, shapes ``(h, w)`` NumPy.

This module must not import cv2, torch or jittor (it runs in loader workers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .cv2_compat import Size, check_size, cv2_resize_bilinear
from .transforms import (IMAGENET_MEAN, IMAGENET_STD, multiple_size, normalize_image, pad_to, rescale_size,
                         resize_to_multiple, scale_size)

TEST_PIPELINES = ("stretch", "pad")
TTA_RATIOS: Tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


@dataclass(frozen=True)
class ViewInfo:
    """How a network input relates to the original image (all sizes (h, w)).

    To map logits back: resize them bilinearly to ``input_shape``, keep
    ``[:valid_shape[0], :valid_shape[1]]`` (the whole input for 'stretch'),
    undo the flip if ``flip``, then resize to ``ori_shape``.
    """

    pipeline: str  # 'stretch' or 'pad'
    ori_shape: Size
    resized_shape: Size  # after the keep-ratio resize, before stretch / pad
    input_shape: Size  # the network input
    valid_shape: Size  # top-left region of the input holding the image
    flip: bool


def _check_pipeline(pipeline: str) -> None:
    if pipeline not in TEST_PIPELINES:
        raise ValueError(f"test pipeline must be one of {TEST_PIPELINES}, got {pipeline!r}")


def make_view_input(img: np.ndarray, scale: Size = (2048, 512), pipeline: str = "stretch", size_divisor: int = 32,
                    size: Optional[Size] = None, flip: bool = False, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD, to_rgb: bool = True) -> Tuple[np.ndarray, ViewInfo]:
    """Build the network input for one test view of a BGR uint8 image.

    * 'stretch' (MM0/ORIG/JSEG, released numbers): keep-ratio resize to
      ``scale`` then ResizeToMultiple(size_divisor) (bilinear stretch).
    * 'pad' (MM1): keep-ratio resize, normalise, then pad bottom/right with 0
      to a multiple of ``size_divisor``.

    ``size`` = (w, h) overrides the keep-ratio target (use :func:`tta_scales`).
    ``flip`` flips horizontally after resizing and before padding, as the
    TTA pipelines do. Returns (float32 (3, H, W) normalised input, info).
    """
    _check_pipeline(pipeline)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"make_view_input expects a BGR uint8 (H, W, 3) image, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    rw, rh = check_size(size) if size is not None else rescale_size(w, h, scale, keep_ratio=True)
    x = cv2_resize_bilinear(img, (rw, rh))
    if pipeline == "stretch":
        x = resize_to_multiple(x, size_divisor)
    if flip:
        x = x[:, ::-1]
    x = normalize_image(x, mean, std, to_rgb)
    if pipeline == "pad":
        pw, ph = multiple_size(rw, rh, size_divisor)
        x = pad_to(x, (ph, pw), 0.0)
    inp = np.ascontiguousarray(x.transpose(2, 0, 1))
    input_shape = (inp.shape[1], inp.shape[2])
    valid = input_shape if pipeline == "stretch" else (rh, rw)
    info = ViewInfo(pipeline=pipeline, ori_shape=(h, w), resized_shape=(rh, rw), input_shape=input_shape,
                    valid_shape=valid, flip=bool(flip))
    return inp, info


def tta_scales(orig_w: int, orig_h: int, ratios: Sequence[float] = TTA_RATIOS, pipeline: str = "stretch",
               scale: Size = (2048, 512)) -> List[Size]:
    """Keep-ratio resize target (w, h) per TTA ratio; pass each as ``size`` to
    :func:`make_view_input` with the same ``pipeline``.

    * 'stretch' (MM0): rescale to (int(sw*r), int(sh*r)) keeping the ratio.
    * 'pad' (MM1): Resize(scale_factor=r, keep_ratio=True): mmcv first sets
      scale = (int(w*r+.5), int(h*r+.5)) and then rescales to it.
    """
    _check_pipeline(pipeline)
    out: List[Size] = []
    for r in ratios:
        if pipeline == "stretch":
            target = (int(scale[0] * r), int(scale[1] * r))
        else:
            target = scale_size(orig_w, orig_h, r)
        out.append(rescale_size(orig_w, orig_h, target, keep_ratio=True))
    return out
