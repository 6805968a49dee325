"""segnext_jt: SegNeXt (MSCAN + LightHamHead) in Jittor, faithful to mmsegmentation.

Importing the package prepares Jittor's environment (CPU/CUDA detection, offline archives, OpenMP
waiting; see `environment`) without importing Jittor, so `import segnext_jt, jittor` works in that
order. Jittor itself is imported lazily: the data and io subpackages stay NumPy-only (light worker
processes); modules that need Jittor import `segnext_jt.runtime`, which sets its process-wide flags.
"""
from __future__ import annotations

from .environment import prepare_environment

prepare_environment()

from .config import Config, load_config  # noqa: E402
from .errors import ConfigError  # noqa: E402

__version__ = "0.1.0"  # the one place of the version: setup.py reads this line


def build_segmentor(cfg):
    """Build an EncoderDecoder (MSCAN + LightHamHead) from a Config."""
    from .models import build_segmentor as _build
    return _build(cfg)


def load_checkpoint(model, path, strict: bool = True, logger=print):
    """Load any supported checkpoint (mmseg .pth, original-repo .pth, JSeg .pkl, ImageNet MSCAN
    pretrain, native .npz) into `model`; returns the key report. See segnext_jt.io."""
    from .io import load_checkpoint as _load
    return _load(model, path, strict=strict, logger=logger)


__all__ = ["Config", "ConfigError", "load_config", "build_segmentor", "load_checkpoint"]
