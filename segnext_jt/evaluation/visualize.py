"""Prediction outputs: label PNGs (class ids) and colour-palette overlays."""
from __future__ import annotations

import collections
import os
from typing import Dict, Iterable, Optional, Sequence

import numpy as np
from PIL import Image

from ..files import atomic_file


def colorize(pred: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) RGB uint8; ids outside the palette (e.g. 255) are black."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[:len(palette)] = np.asarray(palette, dtype=np.uint8)
    return table[np.clip(pred, 0, 255).astype(np.uint8)]


def overlay(img_bgr: np.ndarray, pred: np.ndarray, palette: Sequence[Sequence[int]], alpha: float = 0.5) -> np.ndarray:
    """Blend the colourised prediction over the image (mmseg's show_result uses opacity 0.5)."""
    rgb = img_bgr[:, :, ::-1].astype(np.float32)
    blended = rgb * (1 - alpha) + colorize(pred, palette).astype(np.float32) * alpha
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def output_names(image_paths: Iterable[str]) -> Dict[str, str]:
    """Image path -> where its outputs go, relative to the output folder and without a suffix: the
    path relative to the folder that holds all the images, so val/a/x.jpg and val/b/x.jpg become a/x
    and b/x instead of overwriting each other. Images whose names differ only in the suffix (x.jpg,
    x.png) keep it (x.jpg, x.png), and so never share an output either."""
    paths = list(dict.fromkeys(image_paths))
    if not paths:
        return {}
    absolute = {p: os.path.abspath(p) for p in paths}
    root = os.path.commonpath([os.path.dirname(a) for a in absolute.values()])
    relative = {p: os.path.relpath(a, root) for p, a in absolute.items()}
    stems = {p: os.path.splitext(r)[0] for p, r in relative.items()}
    taken = collections.Counter(stems.values())
    return {p: (stem if taken[stem] == 1 else relative[p]) for p, stem in stems.items()}


def save_prediction(out_dir: str, image_path: str, pred: np.ndarray, img_bgr: np.ndarray,
                    palette: Sequence[Sequence[int]], name: Optional[str] = None) -> tuple[str, str]:
    """Write <name>.png (uint8 class ids, 0-based: ADE20K's 0 'other' is not a class) and
    <name>_overlay.jpg under `out_dir`. `name` (see `output_names`; it may hold sub-folders, which
    are created) defaults to the image's file name without its suffix. Returns both paths."""
    if name is None:
        name = os.path.splitext(os.path.basename(image_path))[0]
    label_path = os.path.join(out_dir, name + ".png")
    overlay_path = os.path.join(out_dir, name + "_overlay.jpg")
    os.makedirs(os.path.dirname(label_path), exist_ok=True)
    _save_atomic(Image.fromarray(pred.astype(np.uint8)), label_path, "PNG")
    _save_atomic(Image.fromarray(overlay(img_bgr, pred, palette)), overlay_path, "JPEG", quality=92)
    return label_path, overlay_path


def _save_atomic(image: "Image.Image", path: str, fmt: str, **kwargs) -> None:
    """An interrupted run never leaves a truncated image (see files.atomic_file)."""
    with atomic_file(path, "wb") as f:
        image.save(f, format=fmt, **kwargs)


def default_palette(num_classes: int, seed: int = 1) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(num_classes, 3)).tolist()
