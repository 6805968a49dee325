"""Dataset evaluation: single scale or ms+flip, mmseg-exact metrics, seeded per-image NMF bases.

Every view of every image draws its NMF bases from the key
(NMF_EVAL, crc32(image file name), round(1000 * ratio), flip) (segnext_jt.rng.nmf_eval_key), so the
result depends only on (config, weights, seed) - not on batch size, worker count or image order. The
single-scale view uses the key of the ratio-1.0, unflipped TTA view. With `eval.nmf_draws` K > 1,
each view averages its softmax over K draws (draw d > 0 appends d to the key).

The batch size does not matter because every image runs through the network alone. With
`eval.batched` the images of a batch that share an input shape run as one forward instead: the same
bases, but the kernels' rounding may then depend on the batch (README, "Batched evaluation").
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
from tqdm import tqdm

from .. import runtime  # noqa: F401
import jittor as jt
from jittor import nn

from ..config_schema import EvalConfig
from ..progress import first_step_notice, restart_rate
from ..data.dataset import RawSample
from ..data.eval_views import ViewInfo, make_view_input, tta_scales
from ..rng import nmf_eval_key
from ..models.layers import resize_bilinear
from .metrics import IoUMetric


@dataclass(frozen=True)
class View:
    ratio: float  # None-like 0.0 marks the single-scale view at the config scale
    flip: bool
    size: Optional[tuple]  # (w, h) resize target, None = keep-ratio resize to the config scale

    def key(self, name: str, draw: int = 0) -> tuple:
        return nmf_eval_key(os.path.basename(name), self.ratio, self.flip, draw)


def plan_views(img_w: int, img_h: int, cfg: EvalConfig, ms_flip: bool) -> list[View]:
    if not ms_flip:
        return [View(1.0, False, None)]
    sizes = tta_scales(img_w, img_h, cfg.tta_ratios, cfg.pipeline, tuple(cfg.scale))
    flips = (False, True) if cfg.tta_flip else (False,)
    return [View(r, f, tuple(s)) for r, s in zip(cfg.tta_ratios, sizes) for f in flips]


def logits_to_original(logits: jt.Var, info: ViewInfo) -> jt.Var:
    """Network-input logits (1, K, h, w) -> logits at the original image size: crop the padding
    ('pad'), undo the flip, bilinear resize to the original (h, w)."""
    vh, vw = info.valid_shape
    if tuple(logits.shape[2:]) != (vh, vw):
        logits = logits[:, :, :vh, :vw]
    if info.flip:
        logits = logits[:, :, :, ::-1]
    return resize_bilinear(logits, info.ori_shape)


@dataclass
class EvalResult:
    metrics: dict
    table: str
    num_images: int
    views_per_image: int
    forward_calls: int
    seconds: float
    metric_state: dict = field(default_factory=dict)


class Evaluator:
    """Runs `model` over a dataset and accumulates IoU statistics (streaming, constant memory)."""

    def __init__(self, model, cfg: EvalConfig, mean: Sequence[float], std: Sequence[float],
                 num_classes: int, class_names: Optional[Sequence[str]] = None):
        self.model, self.cfg = model, cfg
        self.mean, self.std = list(mean), list(std)
        self.num_classes = num_classes
        self.class_names = class_names
        self.forward_calls = 0  # number of image-views that went through the network

    def predict_device(self, samples: Sequence[RawSample], ms_flip: bool) -> list:
        """Softmax probabilities (K, H, W) at original size per sample, averaged over the views (and
        the NMF draws of each view), as executed jt.Vars on the device. Views of equal input shape
        (across the samples) share one predict_draws call: one forward with `eval.batched`, else
        one per image inside it."""
        cfg = self.cfg
        sums: list = [None] * len(samples)
        plans = [plan_views(s.img.shape[1], s.img.shape[0], cfg, ms_flip) for s in samples]
        for v in range(len(plans[0]) if plans else 0):
            groups: dict = {}
            for i, s in enumerate(samples):
                view = plans[i][v]
                inp, info = make_view_input(s.img, tuple(cfg.scale), cfg.pipeline, cfg.size_divisor,
                                            size=view.size, flip=view.flip, mean=self.mean, std=self.std)
                groups.setdefault(inp.shape, []).append((i, inp, info, view, s.filename))
            for members in groups.values():
                batch = jt.array(np.stack([m[1] for m in members]))
                keys_per_draw = [[view.key(name, d) for _, _, _, view, name in members]
                                 for d in range(cfg.nmf_draws)]
                with jt.no_grad():
                    draws = self.model.predict_draws(batch, keys_per_draw, mode=cfg.mode, crop_size=cfg.slide_crop,
                                                     stride=cfg.slide_stride, batched=cfg.batched)
                self.forward_calls += len(members)
                for j, (i, _, info, _, _) in enumerate(members):
                    for logits in draws:
                        prob = nn.softmax(logits_to_original(logits[j:j + 1], info), dim=1)[0]
                        sums[i] = prob if sums[i] is None else sums[i] + prob
        n_views = len(plans[0]) if plans else 1
        probs = []
        for s in sums:  # one execution per sample, in order: the graphs the host copy used to run
            prob = s / (n_views * cfg.nmf_draws)
            prob.sync()
            probs.append(prob)
        return probs

    def predict_probs(self, samples: Sequence[RawSample], ms_flip: bool) -> list[np.ndarray]:
        """`predict_device`'s probabilities copied to the host (float32 (K, H, W) per sample)."""
        return [p.numpy() for p in self.predict_device(samples, ms_flip)]

    def predict_labels(self, samples: Sequence[RawSample], ms_flip: bool, keep_probs: bool = False):
        """Class ids (H, W) per sample, the argmax over the classes taken on the device (the first
        maximum on ties, as NumPy's argmax), so that only the labels are copied to the host (uint8
        up to 256 classes). Returns (labels as int64 arrays, probabilities as NumPy arrays when
        `keep_probs`, else Nones)."""
        probs = self.predict_device(samples, ms_flip)
        labels = [jt.argmax(p, dim=0)[0] for p in probs]
        if self.num_classes <= 256:
            labels = [x.uint8() for x in labels]
        jt.sync(labels)
        host = [x.numpy().astype(np.int64) for x in labels]
        return host, ([p.numpy() for p in probs] if keep_probs else [None] * len(probs))

    def evaluate(self, loader, ms_flip: bool = False, on_prediction: Optional[Callable] = None,
                 progress: bool = True, desc: str = "eval", keep_probs: bool = False) -> EvalResult:
        """`loader` yields lists of RawSample (data.loader.ValLoader). `on_prediction(sample, pred,
        probs)` is called per image (e.g. to write PNGs); `probs` is None unless `keep_probs` (the
        probabilities then are copied to the host)."""
        was_training = self.model.training
        self.model.eval()
        metric = IoUMetric(self.num_classes, class_names=self.class_names)
        start, calls_before, n_images, n_views = time.time(), self.forward_calls, 0, 0
        bar = tqdm(total=len(loader) if hasattr(loader, "__len__") else None, desc=desc, unit="batch",
                   disable=not progress, leave=False)
        try:
            for samples in loader:
                with first_step_notice(bar.write, progress and n_images == 0, "first evaluation batch"):
                    preds, probs = self.predict_labels(samples, ms_flip, keep_probs)
                for s, pred, p in zip(samples, preds, probs):
                    metric.update(pred, s.gt_seg)
                    if on_prediction is not None:
                        on_prediction(s, pred, p)
                bar.update(1)
                if n_images == 0:
                    restart_rate(bar)  # the rate and ETA leave out the first batch's kernel compilation
                n_images += len(samples)
            n_views = (self.forward_calls - calls_before) // max(n_images, 1)
        finally:
            bar.close()
            if was_training:
                self.model.train()
        result = metric.compute()
        return EvalResult(metrics=result, table=metric.table(), num_images=n_images, views_per_image=n_views,
                          forward_calls=self.forward_calls - calls_before, seconds=time.time() - start,
                          metric_state=metric.state())
