"""Evaluate a checkpoint on the config's validation split (what tools/eval.py and the seed sweep run)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..config import Config
from ..data.build import build_dataset
from ..data.loader import ValLoader
from ..io import load_checkpoint
from ..models import build_segmentor
from .evaluator import Evaluator
from .visualize import default_palette, output_names, save_prediction


def check_dataset_matches(cfg: Config, dataset) -> None:
    if dataset.num_classes != cfg.model.decode_head.num_classes:
        raise ValueError(f"{cfg.source}: model.decode_head.num_classes={cfg.model.decode_head.num_classes} "
                         f"but the {cfg.data.dataset!r} dataset at {cfg.data.root} has {dataset.num_classes} classes")


def majority_baseline(dataset) -> dict:
    """mIoU/aAcc (%) of predicting the most frequent ground-truth class of the split everywhere:
    the floor a trained model must clear."""
    from .metrics import IoUMetric
    counts = np.zeros(dataset.num_classes, dtype=np.int64)
    for i in range(len(dataset)):  # two streaming passes: counts, then the metric
        label = dataset.load_label(i)
        counts += np.bincount(label[label != 255].ravel(), minlength=dataset.num_classes)[:dataset.num_classes]
    majority = int(counts.argmax())
    metric = IoUMetric(dataset.num_classes, class_names=dataset.classes)
    for i in range(len(dataset)):
        label = dataset.load_label(i)
        metric.update(np.full(label.shape, majority, dtype=np.int64), label)
    result = metric.compute()
    return {"class": dataset.classes[majority], "mIoU": result["mIoU"], "aAcc": result["aAcc"]}


def run_evaluation(cfg: Config, checkpoint: Optional[str], ms_flip: bool = False, out_dir: Optional[str] = None,
                   limit: Optional[int] = None, progress: bool = True, model=None, logger=print,
                   allow_nonfinite: bool = False, dataset=None) -> dict:
    """Returns a JSON-able summary: mIoU/mAcc/aAcc (%), per-class IoU/Acc (%), counts, timing, table.
    `allow_nonfinite` evaluates a checkpoint with NaN/inf weights (to inspect it; refused otherwise).
    `model` (already loaded; `checkpoint` is then only reported) and `dataset` (the config's
    validation split) are built from the config when not given; a given model's NMF bases stream is
    left as it was."""
    if dataset is None:
        dataset = build_dataset(cfg.data, "val", cfg.model.decode_head.num_classes)
    check_dataset_matches(cfg, dataset)
    if model is None:
        model = build_segmentor(cfg)
        load_checkpoint(model, checkpoint, strict=True, logger=lambda *a: None, allow_nonfinite=allow_nonfinite)
    with model.nmf_seed(cfg.eval.seed):
        return _evaluate(cfg, checkpoint, ms_flip, out_dir, limit, progress, model, dataset)


def _evaluate(cfg: Config, checkpoint: Optional[str], ms_flip: bool, out_dir: Optional[str], limit: Optional[int],
              progress: bool, model, dataset) -> dict:
    evaluator = Evaluator(model, cfg.eval, cfg.data.mean, cfg.data.std, dataset.num_classes, dataset.classes)
    indices = None if limit is None else list(range(min(limit, len(dataset))))
    loader = ValLoader(dataset, batch_size=cfg.eval.batch_size, num_workers=cfg.eval.num_workers, indices=indices)
    palette = dataset.palette or default_palette(dataset.num_classes)
    on_pred = None
    if out_dir:
        names = output_names(dataset.filename(i) for i in range(len(dataset)))

        def on_pred(sample, pred, probs):
            save_prediction(out_dir, sample.filename, pred, sample.img, palette, names.get(sample.filename))
    try:
        result = evaluator.evaluate(loader, ms_flip=ms_flip, on_prediction=on_pred, progress=progress,
                                    desc="ms+flip" if ms_flip else "eval")
    finally:
        loader.close()
    m = result.metrics

    def pct(v):
        return None if np.isnan(v) else float(v) * 100

    return {
        "config": cfg.source, "checkpoint": checkpoint, "seed": cfg.eval.seed, "ms_flip": ms_flip,
        "nmf_draws": cfg.eval.nmf_draws,
        "pipeline": cfg.eval.pipeline, "mode": cfg.eval.mode,
        **({"batched": True} if cfg.eval.batched else {}),  # only then can the batch size change a result
        "mIoU": m["mIoU"], "mAcc": m["mAcc"], "aAcc": m["aAcc"],
        "per_class": {name: {"IoU": pct(i), "Acc": pct(a)} for name, i, a in zip(dataset.classes, m["IoU"], m["Acc"])},
        "per_class_iou": [pct(v) for v in m["IoU"]],
        "class_names": list(dataset.classes),  # the declared names, in per_class_iou's order
        "num_images": result.num_images, "views_per_image": result.views_per_image,
        "forward_calls": result.forward_calls, "seconds": result.seconds, "table": result.table,
        "metric_state": result.metric_state,
    }
