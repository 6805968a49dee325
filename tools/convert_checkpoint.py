#!/usr/bin/env python
"""Convert a SegNeXt checkpoint to the project's native `.npz` format.

    python tools/convert_checkpoint.py IN OUT.npz [--backbone-only]

IN may be an mmseg / ORIG torch `.pth` (zip or legacy), a JSeg `.pkl`, an ImageNet MSCAN pretrain file
or a native `.npz`; the format is detected from the content. Keys are normalised to mmseg 1.x names
and stored under `state_dict/`; the original meta goes into the JSON metadata. Nothing is unpickled
beyond tensors and plain data, and torch is not needed.
"""
from __future__ import annotations

import argparse
import os
import sys

from segnext_jt.errors import CheckpointError, one_line
from segnext_jt.io import (
    KIND_KEY,
    STATE_DICT_PREFIX,
    count_parameters,
    read_checkpoint,
    save_npz,
)

_EXAMPLES = 3


def _parse_args(argv: "list[str] | None") -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="checkpoint to read (.pth, .pkl or .npz)")
    parser.add_argument("output", help="native checkpoint to write (must end with .npz)")
    parser.add_argument("--backbone-only", action="store_true",
                        help="keep only backbone.* weights (loads like an ImageNet pretrain file)")
    return parser.parse_args(argv)


def main(argv: "list[str] | None" = None) -> int:
    args = _parse_args(argv)
    from segnext_jt.cli import run_tool
    from segnext_jt.errors import CheckpointNotFoundError
    return run_tool(lambda: _run(args), usage_errors=(CheckpointNotFoundError,), input_errors=(CheckpointError,),
                    interrupted_message="nothing written")


def _run(args: argparse.Namespace) -> int:
    from segnext_jt.cli import check_output_file
    from segnext_jt.interrupts import install_signal_handlers
    from segnext_jt.io.reading import ensure_file
    if not args.output.endswith(".npz"):
        print(f"error: output {args.output!r} must end with .npz (the only format this tool writes)", file=sys.stderr)
        return 2
    check_output_file(args.output, "output")  # before reading a possibly large input
    ensure_file(args.input)
    install_signal_handlers()
    contents = read_checkpoint(args.input)
    for note in contents.notes:
        print(f"note: {note}", file=sys.stderr)

    state_dict = contents.state_dict
    backbone_only = contents.backbone_only or args.backbone_only
    if args.backbone_only:
        state_dict = {k: v for k, v in state_dict.items() if k.startswith("backbone.")}
        if not state_dict:
            print(f"error: {args.input} has no backbone.* weights", file=sys.stderr)
            return 1

    meta = {
        KIND_KEY: "backbone" if backbone_only else "model",
        "converted_from": {
            "file": os.path.basename(args.input),
            "source": contents.source,
            "container": contents.container,
        },
        "checkpoint_meta": contents.meta,
    }
    try:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        save_npz(args.output, {STATE_DICT_PREFIX + k: v for k, v in state_dict.items()}, meta)
    except (OSError, TypeError, ValueError) as exc:
        print(f"error: cannot write {args.output}: {one_line(exc)}", file=sys.stderr)
        return 1

    total = sum(int(v.size) for v in state_dict.values())
    print(f"source: {contents.source} ({contents.container})")
    print(f"tensors: {len(state_dict)}" + (" (backbone only)" if backbone_only else ""))
    print(f"parameters: {count_parameters(state_dict):,} (all tensor elements incl. BN buffers: {total:,})")
    if contents.stripped_prefix:
        print(f"stripped 'module.' prefix: {contents.stripped_prefix} keys")
    if contents.prefixed:
        print(f"prefixed 'backbone.': {contents.prefixed} keys (ImageNet-pretrained MSCAN layout)")
    if contents.renamed:
        examples = "; ".join(f"{a} -> {b}" for a, b in contents.renamed[:_EXAMPLES])
        print(f"renamed: {len(contents.renamed)} keys, e.g. {examples}")
    else:
        print("renamed: 0 keys")
    if contents.added:
        print(f"added num_batches_tracked: {len(contents.added)} keys")
    if contents.dropped:
        print(f"dropped: {len(contents.dropped)} keys ({', '.join(contents.dropped)})")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
