"""FLOPs and bytes of one SegNeXt training step (forward, backward) for the README's roofline
estimate, counted on the PyTorch reference (mmseg 1.2.2's model, the same network as the project's).

    .bench-ref/venv/bin/python bench/roofline.py --size t --batch 1 --res 512

FLOPs: torch.utils.flop_counter (convolutions, matmuls, bmm: 2 per multiply-add; elementwise ops,
norms, softmax and the loss are not counted: few FLOPs, many bytes), except the convolution backward,
counted here as one forward convolution per gradient asked for (input, weight): torch 2.13's formula
ignores `groups` in the weight gradient, which overcounts a depthwise layer by its channel count. Bytes: every aten op's input and output tensors read/written once, i.e. the traffic of
an unfused eager run (weights included); a fused run moves less, a run whose working set misses the
caches more. Prints `RESULT {json}`.
"""
import argparse, json, os, sys
from pathlib import Path
import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

BENCH = Path(os.environ.get("SEGNEXT_BENCH_DIR", Path(__file__).resolve().parents[2] / "shared" / "bench"))
sys.path.insert(0, str(BENCH / "torch_ref"))
import ref_segnext as R  # noqa: E402


def conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation,
                        _transposed, _output_padding, _groups, output_mask, out_shape=None, **_kw):
    """2 * MACs of the forward convolution (w_shape already holds in_channels / groups), once for
    each of the input and weight gradients that are computed (not transposed convolutions)."""
    fwd = 2 * grad_out_shape[0] * int(np.prod(grad_out_shape[1:])) * int(np.prod(w_shape[1:]))
    return fwd * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


class ByteCounter(TorchDispatchMode):
    """Sum of the sizes of every aten op's tensor inputs and outputs."""

    def __init__(self):
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves((args, kwargs, out)):
            if isinstance(t, torch.Tensor):
                self.bytes += t.numel() * t.element_size()
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="t", choices=["t", "s", "b", "l"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--res", type=int, default=512)
    a = ap.parse_args()
    torch.manual_seed(0)
    model = R.build_model(a.size).train()
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((a.batch, 3, a.res, a.res), dtype=np.float32))
    label = torch.from_numpy(rng.integers(0, 150, (a.batch, a.res, a.res)).astype(np.int64))
    out = {"size": a.size, "batch": a.batch, "res": a.res,
           "params": sum(p.numel() for p in model.parameters())}
    fc, bc = FlopCounterMode(display=False), ByteCounter()
    with fc, bc:
        loss = model.loss(x, label)["losses"]["loss_ce"]
    out["fwd_flops"], out["fwd_bytes"] = fc.get_total_flops(), bc.bytes
    fc = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: conv_backward_flops})
    bc = ByteCounter()
    with fc, bc:
        loss.backward()
    out["bwd_flops"], out["bwd_bytes"] = fc.get_total_flops(), bc.bytes
    print("RESULT", json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
