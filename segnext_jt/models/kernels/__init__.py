"""The speed work behind the faithful port: the same arithmetic as the model modules, fewer passes.

The model modules (mscan.py, ham_head.py, layers.py, segmentor.py) read like mmseg 1.x's reference;
where a fast path exists they hold a one-line hook that asks this package for it and fall back to the
reference computation when it answers None. Dependencies go one way: the model modules import
kernels, kernels never import the model modules (they take the layers as arguments).

* `cpu_ops.py`: where a native CPU kernel runs (the `SEGNEXT_CPU_KERNELS` switch, dtype/device/shape
  checks), the sgemm (1x1 conv, batched matmul) and bilinear-resize kernels;
  `dwconv_ops.py`: the depthwise-convolution kernels; `train_ops.py`: the cross-entropy and
  training-mode BatchNorm kernels.
* `folding.py`: inference-time folding of an MSCAN block (BatchNorm and layer scale folded into the
  1x1 convs; the `SEGNEXT_EVAL_FOLDING` switch).

Both switches default to on; `SEGNEXT_CPU_KERNELS=jittor SEGNEXT_EVAL_FOLDING=0` (or
`cpu_ops.set_native_cpu_kernels(False)`, `folding.set_eval_folding(False)`) gives the module-by-module
path on Jittor's own operators, the path CUDA takes. The parity tests run both (tests/conftest.py,
fixture `compute_path`).
"""
