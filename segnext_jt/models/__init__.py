from .ham_head import KEY_ADHOC, KEY_EVAL, KEY_TRAIN, LightHamHead, NMF2D, NMFBasesSampler, image_key
from .mscan import MSCAN
from .segmentor import EncoderDecoder, build_segmentor, cross_entropy_mmseg

__all__ = ["MSCAN", "LightHamHead", "NMF2D", "NMFBasesSampler", "EncoderDecoder", "build_segmentor",
           "cross_entropy_mmseg", "image_key", "KEY_TRAIN", "KEY_EVAL", "KEY_ADHOC"]
