#!/usr/bin/env python
"""Parity of the real sizes at 512x512 against mmseg 1.2.2 in PyTorch. The PyTorch reference is not
in this repository: it is the workspace's `shared/bench/torch_ref` beside the checkout (by default
../shared/bench), built by its `setup.sh` into .bench-ref/ (tests/fixtures/README.md describes it).

    python bench/parity_512.py --sizes t,s,b,l

For each size, a PyTorch process builds the reference model, fills every parameter and buffer with
seeded random values (ref_segnext.randomize_), injects one NMF bases draw, and saves the checkpoint,
the input and its outputs; this process then loads that .pth with our torch-free reader and compares
the four stages and the full-size logits, on both compute paths and under no_grad, with the
fixtures' rule max|got - ref| <= 1e-4 * max|ref| + 1e-5. Prints one line per comparison with the
error as a fraction of that tolerance (< 1 passes).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT.parent / "shared" / "bench" / "torch_ref"
TORCH_SIDE = """
import sys, numpy as np, torch
sys.path.insert(0, sys.argv[1])
import ref_segnext as R
size, out = sys.argv[2], sys.argv[3]
torch.manual_seed(0)
model = R.build_model(size)
R.randomize_(model, 0)
model.eval()
x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 512, 512)).astype(np.float32))
raw, normed = R.draw_nmf_bases(R.nmf_bases_shape(model, 1), torch.Generator().manual_seed(0))
with torch.no_grad(), R.nmf_bases(model, normed):
    res = model(x)
torch.save({"state_dict": model.state_dict()}, out + ".pth")
np.savez(out + ".npz", x=x.numpy(), raw=raw.numpy(), full=res["seg_logits_full"].numpy(),
         **{f"stage{i + 1}": s.numpy() for i, s in enumerate(res["stages"])})
"""


def ratio(got, ref) -> float:
    return float(np.abs(got - ref).max()) / (1e-4 * float(np.abs(ref).max()) + 1e-5)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="t,s,b,l")
    p.add_argument("--torch-python", default=str(ROOT / ".bench-ref" / "venv" / "bin" / "python"))
    args = p.parse_args(argv)
    import segnext_jt
    import jittor as jt
    from segnext_jt.models.kernels import cpu_ops, folding
    env = dict(os.environ, SEGNEXT_REF_MMSEG=str(ROOT / ".bench-ref" / "mmseg"))
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            out = os.path.join(tmp, size)
            subprocess.run([args.torch_python, "-c", TORCH_SIDE, str(REF), size, out], check=True, env=env)
            ref = np.load(out + ".npz")
            model = segnext_jt.build_segmentor(segnext_jt.load_config(ROOT / "configs" / f"segnext_{size}.yaml"))
            segnext_jt.load_checkpoint(model, out + ".pth", logger=lambda *a: None)
            model.eval()
            x = jt.array(ref["x"])
            for path in ("fast", "reference"):
                cpu_ops.set_native_cpu_kernels(path == "fast")
                folding.set_eval_folding(path == "fast")
                for no_grad in (False, True):
                    with jt.flag_scope(no_grad=int(no_grad)):
                        stages = model.backbone(x)
                        full = model.encode_decode(x, None, ref["raw"])
                    r = [ratio(s.numpy(), ref[f"stage{i + 1}"]) for i, s in enumerate(stages)]
                    r.append(ratio(full.numpy(), ref["full"]))
                    worst = max(worst, *r)
                    print(f"{size.upper()} {path:9s} no_grad={int(no_grad)}  error / tolerance: stages "
                          + " ".join(f"{v:.3f}" for v in r[:4]) + f"  logits {r[4]:.3f}", flush=True)
    print(f"worst error / tolerance: {worst:.3f} ({'PASS' if worst <= 1 else 'FAIL'})")
    return 0 if worst <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
