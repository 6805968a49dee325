from .ham_head import LightHamHead, NMF2D, NMFBasesSampler
from .mscan import MSCAN
from .segmentor import EncoderDecoder, build_segmentor, cross_entropy_mmseg

__all__ = ["MSCAN", "LightHamHead", "NMF2D", "NMFBasesSampler", "EncoderDecoder", "build_segmentor",
           "cross_entropy_mmseg"]
