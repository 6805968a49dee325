"""A cheap check of every image/label pair of a split, from the file headers alone: both files open
as images, the sizes agree, the label is stored in an integer mode, the pixel count is sane. What the
pre-flight check (`tools/train.py --check`) runs, so that a bad file is found before a four-day run
reaches it rather than when its sample is first drawn.
"""
from __future__ import annotations

import warnings
from typing import List, NamedTuple, Optional

from PIL import Image
from tqdm import tqdm

from ..errors import DataError
from .dataset import INTEGER_LABEL_MODES, SegDataset, check_pixels, label_mode_problem


class PairProblem(NamedTuple):
    path: str
    problem: str


def _header(path: str, what: str) -> "tuple[Optional[tuple], Optional[str], Optional[str]]":
    """((w, h), mode, None) from the header of an image file, or (None, None, problem)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:  # reads the header only; pixels are decoded on demand
                size, mode = im.size, im.mode
    except FileNotFoundError:
        return None, None, f"{what} file not found"
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for a damaged file
        return None, None, f"cannot read the {what} header ({type(exc).__name__}: {exc})"
    try:
        check_pixels(what, size)
    except DataError as exc:
        return None, None, str(exc)
    return size, mode, None


def verify_pairs(dataset: SegDataset, progress: bool = True, limit: int = 20) -> "tuple[int, List[PairProblem]]":
    """(pairs checked, problems): every sample of `dataset`, stopping after `limit` problems."""
    problems: List[PairProblem] = []
    checked = 0
    for img_path, seg_path in tqdm(dataset.samples, desc=f"check {dataset.split or 'split'}", unit="pair",
                                   disable=not progress, leave=False):
        img_size, _, problem = _header(img_path, "image")
        if problem:
            problems.append(PairProblem(img_path, problem))
        seg_size, seg_mode, seg_problem = _header(seg_path, "label")
        if seg_problem:
            problems.append(PairProblem(seg_path, seg_problem))
        elif seg_mode not in INTEGER_LABEL_MODES:
            problems.append(PairProblem(seg_path, label_mode_problem(seg_mode)))
        if img_size and seg_size and img_size != seg_size:
            problems.append(PairProblem(img_path, f"image size {img_size[0]}x{img_size[1]} does not match its "
                                                  f"label {seg_path} ({seg_size[0]}x{seg_size[1]})"))
        checked += 1
        if len(problems) >= limit:
            break
    return checked, problems[:limit]
