"""The model, module for module mmseg 1.x: mscan.py (MSCAN backbone, its checkpoint key maps in
mscan_keys.py), ham_head.py (LightHamHead), segmentor.py (EncoderDecoder), layers.py (building
blocks with PyTorch numerics); the fast paths behind them in kernels/.

The names below are imported on first use (PEP 562): io/convert.py imports mscan_keys, and the io
package must stay free of Jittor, which the model modules import.
"""
from __future__ import annotations

import importlib

_MODULE_OF = {"MSCAN": "mscan", "LightHamHead": "ham_head", "NMF2D": "ham_head", "NMFBasesSampler": "ham_head",
              "EncoderDecoder": "segmentor", "build_segmentor": "segmentor", "cross_entropy_mmseg": "segmentor"}

__all__ = list(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value
