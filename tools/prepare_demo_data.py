#!/usr/bin/env python
"""Build the MNIST-derived demo dataset in the ADE20K layout.

    python tools/prepare_demo_data.py --out demo_data/ [--num-train 2000 --num-val 200 --size 128 --seed 0]

Writes <out>/ADEChallengeData2016/{images,annotations}/{training,validation}/ADE_{train,val}_%08d.{jpg,png}.
Labels: 0 = ambiguous stroke rim ("other", ignored after reduce_zero_label), 1 = background,
2..11 = digits 0..9. Read it with segnext_jt.data.DemoMNISTDataset.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from segnext_jt.data import demo_mnist as demo  # noqa: E402  (NumPy + Pillow only)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (ADEChallengeData2016 is created inside)")
    parser.add_argument("--num-train", type=int, default=2000)
    parser.add_argument("--num-val", type=int, default=200)
    parser.add_argument("--size", type=int, default=128, help="nominal canvas side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--digits", default=",".join(map(str, demo.DEMO_DIGITS)),
                        help="comma-separated MNIST digits to draw (default %(default)s; 0,1,...,9 for all)")
    parser.add_argument("--digit-scale", default="0.35,0.75",
                        help="digit side as a fraction lo,hi of the canvas's shorter side")
    parser.add_argument("--label-dilation", type=float, default=demo.DEMO_LABEL_DILATION,
                        help="widen digit labels around the stroke by this fraction of the digit size "
                             "(default %(default)s; 0 = stroke pixels only)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: up to 8; 0 = serial)")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    try:
        digits = [int(d) for d in args.digits.split(",") if d.strip()]
        scale = tuple(float(v) for v in args.digit_scale.split(","))
        root = demo.build_demo_dataset(args.out, args.num_train, args.num_val, args.size, args.seed,
                                       workers=args.workers, digits=digits, digit_scale=scale,
                                       label_dilation=args.label_dilation)
    except (demo.DataError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.num_train} train and {args.num_val} val images to {root} "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
