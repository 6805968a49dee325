#!/usr/bin/env python
"""Store one seeded NMF bases draw in a checkpoint, so that evaluation becomes deterministic.

    python tools/freeze_nmf_bases.py CKPT OUT.npz [--seed S] [--config CONFIG | --rank R]

SegNeXt's head draws new random NMF bases on every forward (`rand_init: true`), which is one reason
the same checkpoint gives different mIoU from run to run. The fixed-bases alternative (OpenVINO
Training Extensions' design) draws the bases once and keeps them with the weights. This tool takes any
checkpoint segnext_jt reads, draws U[0,1) bases of shape (ham_channels, md_r) from the seeded stream
segnext_jt.rng.NMF_STORED_BASES_KEY, L2-normalises their columns as the head does, and writes a
native .npz with the extra tensor `decode_head.hamburger.ham.bases`. Evaluate it with
`--cfg-options model.decode_head.ham.rand_init=false`. This is a different model from the released
one (one fixed draw instead of a fresh draw per image); README "Eval noise" compares the protocols.
"""
from __future__ import annotations

import argparse
import os
import sys

from segnext_jt.io.native import FROZEN_BASES_KEY
HAM_IN_KEY = "decode_head.hamburger.ham_in.conv.weight"


def _parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="checkpoint to read (.pth, .pkl or .npz; a full segmentor, not a backbone)")
    p.add_argument("output", help="native checkpoint to write (must end with .npz)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bases draw (default 0)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--config", help="take the NMF rank from model.decode_head.ham.md_r of this config")
    group.add_argument("--rank", type=int, help="NMF rank md_r (default 16, as every mmseg SegNeXt config)")
    return p.parse_args(argv)


def _run(args) -> int:
    from segnext_jt.cli import UsageError, check_output_file
    from segnext_jt.interrupts import install_signal_handlers
    from segnext_jt.io import KIND_KEY, STATE_DICT_PREFIX, read_checkpoint, save_npz
    from segnext_jt.io.reading import ensure_file
    if not args.output.endswith(".npz"):
        raise UsageError(f"output {args.output!r} must end with .npz (the only format this tool writes)")
    from segnext_jt.config_schema import check_range, check_seed
    check_seed(args.seed, "--seed")
    rank = args.rank if args.rank is not None else 16
    if args.config:
        from segnext_jt.config import load_config
        rank = load_config(args.config).model.decode_head.ham.md_r
    check_range(rank, "--rank", 1, 512)  # the config's md_r range: a huge rank would ask for gigabytes
    check_output_file(args.output, "output")
    ensure_file(args.checkpoint)
    install_signal_handlers()
    contents = read_checkpoint(args.checkpoint)
    state = dict(contents.state_dict)
    if contents.backbone_only or HAM_IN_KEY not in state:
        print(f"error: {args.checkpoint} has no SegNeXt decode head ({HAM_IN_KEY} missing): "
              "expected a full segmentor checkpoint", file=sys.stderr)
        return 1
    channels = int(state[HAM_IN_KEY].shape[0])
    replaced = FROZEN_BASES_KEY in state
    from segnext_jt.models.ham_head import frozen_nmf_bases
    state[FROZEN_BASES_KEY] = frozen_nmf_bases(args.seed, channels, rank)
    meta = {KIND_KEY: "model", "checkpoint_meta": contents.meta,
            "nmf_bases": {"seed": args.seed, "shape": [1, channels, rank], "from": os.path.basename(args.checkpoint),
                          "source": contents.source}}
    save_npz(args.output, {STATE_DICT_PREFIX + k: v for k, v in state.items()}, meta)
    print(f"{'replaced' if replaced else 'stored'} NMF bases (seed {args.seed}, {channels}x{rank}) in {args.output}; "
          "evaluate with --cfg-options model.decode_head.ham.rand_init=false")
    return 0


def main(argv=None) -> int:
    args = _parse_args(argv)
    from segnext_jt.cli import run_checkpoint_tool
    return run_checkpoint_tool(lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
