"""segnext_jt: SegNeXt (MSCAN + LightHamHead) in Jittor, faithful to mmsegmentation.

`runtime` is imported first: it prepares the environment (offline oneDNN, CPU/CUDA detection)
before Jittor is imported anywhere.
"""
from . import runtime  # noqa: F401  (must come first)
from .config import Config, ConfigError, load_config
from .models import EncoderDecoder, build_segmentor


def load_checkpoint(model, path, strict: bool = True, logger=print):
    """Load any supported checkpoint (mmseg .pth, original-repo .pth, JSeg .pkl, ImageNet MSCAN
    pretrain, native .npz) into `model`; returns the key report. See segnext_jt.io."""
    from .io import load_checkpoint as _load
    return _load(model, path, strict=strict, logger=logger)


__all__ = ["Config", "ConfigError", "load_config", "build_segmentor", "EncoderDecoder", "load_checkpoint"]
__version__ = "0.1.0"
