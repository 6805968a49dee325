#!/usr/bin/env python
"""Segment your own images: python tools/infer.py IMAGE [IMAGE ...] --config CONFIG --checkpoint CKPT
--out DIR [--ms-flip] [--seed S]. Writes <name>.png (class ids) and <name>_overlay.jpg per image, <name>
being the image's path relative to the folder holding all the images given (without its suffix).
CKPT may also be an http(s) URL or zoo:NAME (e.g. zoo:segnext_t), downloaded once into the cache."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+")
    p.add_argument("--config", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--ms-flip", action="store_true")
    p.add_argument("--seed", type=int, help="NMF bases seed (default: eval.seed of the config)")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE")
    from segnext_jt.cli import add_device_argument, run_tool
    add_device_argument(p)
    args = p.parse_args(argv)
    from segnext_jt.errors import CheckpointError, CheckpointNotFoundError, ConfigError, DataError
    return run_tool(lambda: _run(args), usage_errors=(ConfigError, CheckpointNotFoundError),
                    input_errors=(CheckpointError, DataError),
                    interrupted_message="files written so far are complete")


def _run(args) -> int:
    from segnext_jt.cli import apply_device, check_output_dir, print_platform_line
    from segnext_jt.interrupts import install_signal_handlers
    apply_device(args.device)  # before Jittor's import; DeviceError -> exit 2
    from segnext_jt.config import load_config
    from segnext_jt.io.reading import ensure_file
    from segnext_jt.hub import is_remote, resolve
    out_dir = check_output_dir(args.out, "--out")
    if not is_remote(args.checkpoint):  # a URL or zoo:NAME is fetched once the config is known to be good
        ensure_file(args.checkpoint)
    cfg = load_config(args.config, args.cfg_options + ([f"eval.seed={args.seed}"] if args.seed is not None else []))
    checkpoint = resolve(args.checkpoint, "--checkpoint").path if is_remote(args.checkpoint) else args.checkpoint
    from segnext_jt.data.build import declared_palette
    from segnext_jt.data.dataset import RawSample, read_image_bgr
    from segnext_jt.evaluation.evaluator import Evaluator
    from segnext_jt.evaluation.visualize import output_names, save_prediction
    from segnext_jt.io import load_checkpoint
    from segnext_jt.models import build_segmentor
    install_signal_handlers()
    print_platform_line()

    n_cls = cfg.model.decode_head.num_classes
    palette = declared_palette(cfg.data, n_cls)  # the dataset's colours; generated for custom without data.palette
    samples = [RawSample(read_image_bgr(path), None, path) for path in args.images]  # before the model
    model = build_segmentor(cfg)
    load_checkpoint(model, checkpoint, strict=True, logger=lambda *a: None)
    model.eval()
    model.set_nmf_seed(cfg.eval.seed)
    evaluator = Evaluator(model, cfg.eval, cfg.data.mean, cfg.data.std, n_cls)
    names = output_names(args.images)  # relative paths: a/x.jpg and b/x.jpg must not overwrite each other
    for sample in samples:
        pred = evaluator.predict_labels([sample], ms_flip=args.ms_flip)[0][0]  # argmax on the device
        label_path, overlay_path = save_prediction(out_dir, sample.filename, pred, sample.img, palette,
                                                   names[sample.filename])
        print(f"{sample.filename} -> {label_path}, {overlay_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
