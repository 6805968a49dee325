"""EncoderDecoder: MSCAN backbone + LightHamHead, with mmseg's loss and whole/slide inference."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .. import runtime  # noqa: F401
import jittor as jt
from jittor import nn

from . import cpu_ops
from .ham_head import LightHamHead, NMFKey
from .layers import resize_bilinear
from .mscan import MSCAN

FLOAT32_EPS = float(np.finfo(np.float32).eps)


def cross_entropy_mmseg(logits: jt.Var, label: jt.Var, ignore_index: int = 255) -> jt.Var:
    """mmseg CrossEntropyLoss(avg_non_ignore=False): sum of per-pixel CE over non-ignored pixels
    divided by the number of ALL pixels (+ float32 eps)."""
    peak = logits.max(dim=1, keepdims=True).detach()
    shifted = logits - peak
    log_prob = shifted - jt.log(jt.exp(shifted).sum(dim=1, keepdims=True))
    valid = (label != ignore_index)
    safe_label = jt.where(valid, label, jt.zeros_like(label)).int32()
    picked = jt.gather(log_prob, 1, safe_label.unsqueeze(1)).squeeze(1)
    total = -(picked * valid.float32()).sum()
    return total / (label.numel() + FLOAT32_EPS)


def pixel_accuracy(logits: jt.Var, label: jt.Var, ignore_index: int = 255) -> jt.Var:
    """mmseg accuracy(): top-1 in % over non-ignored pixels."""
    pred = jt.argmax(logits, dim=1)[0]
    valid = (label != ignore_index)
    correct = ((pred == label) & valid).float32().sum()
    return correct * 100.0 / jt.maximum(valid.float32().sum(), 1.0)


class EncoderDecoder(nn.Module):
    def __init__(self, backbone: MSCAN, decode_head: LightHamHead, ignore_index: int = 255):
        self.backbone = backbone
        self.decode_head = decode_head
        self.ignore_index = ignore_index

    @property
    def num_classes(self) -> int:
        return self.decode_head.num_classes

    def load_state_dict(self, state: dict) -> None:
        """Assign numpy arrays (or Vars) by name; unknown names or shape changes raise (no silent skips
        as in Jittor's lenient loader). Use segnext_jt.load_checkpoint for files."""
        own = self.state_dict()
        for name, value in state.items():
            if name not in own:
                raise KeyError(f"load_state_dict: unexpected key {name!r}")
            arr = value.numpy() if isinstance(value, jt.Var) else np.asarray(value)
            if tuple(arr.shape) != tuple(own[name].shape):
                raise ValueError(f"load_state_dict: {name} has shape {tuple(arr.shape)}, "
                                 f"the model expects {tuple(own[name].shape)}")
            own[name].assign(jt.array(arr.astype(str(own[name].dtype))))

    def set_nmf_seed(self, seed: int) -> None:
        """Seed of the NMF bases stream (see ham_head.NMFBasesSampler)."""
        self.decode_head.nmf.sampler.seed = int(seed)
        self.decode_head.nmf.sampler.calls = 0

    # ---------------------------------------------------------------- forward paths
    def extract_feat(self, img: jt.Var) -> list[jt.Var]:
        return self.backbone(img)

    def encode_decode(self, img: jt.Var, nmf_keys: Optional[Sequence[NMFKey]] = None,
                      nmf_bases=None) -> jt.Var:
        """Logits resized (bilinear, align_corners=False) to the input size.

        In inference every image of a batch runs alone: oneDNN and Jittor pick kernels and
        reduction orders by shape, batch size included, and an image's logits must not depend on
        what else is in its batch (bit-identical, tests/test_model_api.py)."""
        batch = img.shape[0]
        if self.training or batch == 1:
            logits = self.decode_head(self.extract_feat(img), nmf_keys, nmf_bases)
            return resize_bilinear(logits, img.shape[2:])
        if nmf_keys is None and nmf_bases is None and self.decode_head.nmf.rand_init:
            nmf_keys = self.decode_head.nmf.sampler.next_adhoc_keys(batch)  # as one batched call
        return jt.concat([self.encode_decode(img[i:i + 1], None if nmf_keys is None else [nmf_keys[i]],
                                             None if nmf_bases is None else nmf_bases[i:i + 1])
                          for i in range(batch)], dim=0)

    def execute(self, img: jt.Var, nmf_keys=None, nmf_bases=None) -> jt.Var:
        return self.encode_decode(img, nmf_keys, nmf_bases)

    def loss(self, img: jt.Var, label: jt.Var, nmf_keys=None, nmf_bases=None) -> dict:
        """Training losses as mmseg logs them: decode.loss_ce, decode.acc_seg and their total."""
        logits = self.decode_head(self.extract_feat(img), nmf_keys, nmf_bases)
        logits = resize_bilinear(logits, label.shape[-2:])
        fused = cpu_ops.cross_entropy_pixels(logits, label, self.ignore_index)
        if fused is None:
            loss_ce = cross_entropy_mmseg(logits, label, self.ignore_index)
            with jt.no_grad():
                acc = pixel_accuracy(logits.detach(), label, self.ignore_index)
        else:  # the same two quantities from one native pass over the logits
            per_pixel, hit = fused
            loss_ce = per_pixel.sum() / (label.numel() + FLOAT32_EPS)
            with jt.no_grad():
                valid = (label != self.ignore_index).float32().sum()
                acc = hit.sum() * 100.0 / jt.maximum(valid, 1.0)
        return {"loss": loss_ce, "decode.loss_ce": loss_ce, "decode.acc_seg": acc}

    def predict(self, img: jt.Var, nmf_keys: Optional[Sequence[NMFKey]] = None, mode: str = "whole",
                crop_size: Sequence[int] = (512, 512), stride: Sequence[int] = (341, 341)) -> jt.Var:
        """Test-time logits at input size: 'whole' image or 'slide' windows (mmseg semantics)."""
        if mode == "whole":
            return self.encode_decode(img, nmf_keys)
        if mode == "slide":
            return self.slide_inference(img, nmf_keys, crop_size, stride)
        raise ValueError(f"predict: mode must be 'whole' or 'slide', got {mode!r}")

    def slide_inference(self, img: jt.Var, nmf_keys: Optional[Sequence[NMFKey]],
                        crop_size: Sequence[int], stride: Sequence[int]) -> jt.Var:
        """Overlapping windows; the last one in each row/column is shifted to end at the border.
        Window logits are summed and divided by the per-pixel window count. Each window draws its
        own NMF bases (key: the image key + window index)."""
        h_crop, w_crop = crop_size
        h_stride, w_stride = stride
        batch, _, h_img, w_img = img.shape
        h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
        w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
        preds = jt.zeros([batch, self.num_classes, h_img, w_img], "float32")
        count = np.zeros((h_img, w_img), dtype=np.float32)
        window = 0
        for h_idx in range(h_grids):
            for w_idx in range(w_grids):
                y1 = min(h_idx * h_stride, max(h_img - h_crop, 0))
                x1 = min(w_idx * w_stride, max(w_img - w_crop, 0))
                y2, x2 = min(y1 + h_crop, h_img), min(x1 + w_crop, w_img)
                keys = None if nmf_keys is None else [tuple(k) + (window,) for k in nmf_keys]
                crop_logits = self.encode_decode(img[:, :, y1:y2, x1:x2], keys)
                preds[:, :, y1:y2, x1:x2] += crop_logits
                count[y1:y2, x1:x2] += 1
                window += 1
        return preds / jt.array(count).broadcast(preds.shape, [0, 1])


def build_segmentor(cfg) -> EncoderDecoder:
    """Build the model from a `Config` (or its `model` section)."""
    model_cfg = getattr(cfg, "model", cfg)
    bb, head = model_cfg.backbone, model_cfg.decode_head
    backbone = MSCAN(bb.embed_dims, bb.depths, bb.mlp_ratios, bb.drop_rate, bb.drop_path_rate)
    decode_head = LightHamHead(
        in_channels=head.in_channels, in_index=head.in_index, channels=head.channels,
        ham_channels=head.ham_channels, num_classes=head.num_classes, dropout_ratio=head.dropout_ratio,
        gn_groups=head.gn_groups, align_corners=head.align_corners, md_r=head.ham.md_r,
        train_steps=head.ham.train_steps, eval_steps=head.ham.eval_steps, rand_init=head.ham.rand_init,
        nmf_grad=head.ham.grad, md_s=head.ham.md_s)
    seed = getattr(getattr(cfg, "eval", None), "seed", 0)
    model = EncoderDecoder(backbone, decode_head, ignore_index=head.ignore_index)
    model.set_nmf_seed(seed)
    return model
