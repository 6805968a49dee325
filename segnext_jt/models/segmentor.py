"""EncoderDecoder: MSCAN backbone + LightHamHead, with mmseg's loss and whole/slide inference."""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Sequence

import numpy as np

from .. import runtime  # noqa: F401
import jittor as jt
from jittor import nn

from .ham_head import LightHamHead, NMFKey
from .kernels import cpu_ops
from .layers import DropPath, Dropout2d, resize_bilinear
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
        self.set_dropout_rng(np.random.default_rng(0))

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

    @contextlib.contextmanager
    def nmf_seed(self, seed: int) -> Iterator[None]:
        """Inside the block the NMF bases come from the stream of `seed` (counted from its first call);
        after it the stream is exactly as before, so a model shared with training (the trainer's
        periodic evaluation) comes back unchanged."""
        sampler = self.decode_head.nmf.sampler
        saved = sampler.seed, sampler.calls
        self.set_nmf_seed(seed)
        try:
            yield
        finally:
            sampler.seed, sampler.calls = saved

    def set_dropout_rng(self, generator) -> None:
        """The generator every DropPath/Dropout2d layer draws its masks from: a NumPy Generator, or
        segnext_jt.rng.PerSampleRNG (one stream per sample, what the trainer sets). Shared, so the masks
        of one forward depend only on the generator's state."""
        for module in self.modules():
            if isinstance(module, (DropPath, Dropout2d)):
                module.mask_rng = generator

    # ---------------------------------------------------------------- forward paths
    def extract_feat(self, img: jt.Var) -> list[jt.Var]:
        return self.backbone(img)

    def encode_decode(self, img: jt.Var, nmf_keys: Optional[Sequence[NMFKey]] = None,
                      nmf_bases=None, batched: bool = False) -> jt.Var:
        """Logits resized (bilinear, align_corners=False) to the input size.

        In inference every image of a batch runs alone by default: oneDNN and Jittor pick kernels
        and reduction orders by shape, batch size included, and an image's logits must not depend
        on what else is in its batch (bit-identical, tests/models/test_ham_head.py). `batched=True`
        runs the batch as one forward instead (for GPUs; on the CPU it measured slower); the NMF
        bases are still drawn per image key, so only the rounding can differ (README, "Batched
        evaluation")."""
        return self._encode_decode_draws(img, [nmf_keys], nmf_bases, batched)[0]

    def encode_decode_draws(self, img: jt.Var, keys_per_draw: Sequence[Sequence[NMFKey]],
                            batched: bool = False) -> list[jt.Var]:
        """Logits at input size for each NMF draw (`keys_per_draw[d]`: the keys of the batch's images
        in draw d). The backbone runs once; only the head runs once per draw."""
        return self._encode_decode_draws(img, keys_per_draw, None, batched)

    def _encode_decode_draws(self, img: jt.Var, keys_per_draw, nmf_bases,
                             batched: bool = False) -> list[jt.Var]:
        batch = img.shape[0]
        if self.training or batch == 1 or batched:
            feats = self.extract_feat(img)
            return [resize_bilinear(self.decode_head(feats, keys, nmf_bases), img.shape[2:])
                    for keys in keys_per_draw]
        if nmf_bases is None and self.decode_head.nmf.rand_init:  # unkeyed: as one batched call
            keys_per_draw = [self.decode_head.nmf.sampler.next_adhoc_keys(batch) if keys is None else keys
                             for keys in keys_per_draw]
        per_image = [self._encode_decode_draws(img[i:i + 1], [None if keys is None else [keys[i]]
                                                              for keys in keys_per_draw],
                                               None if nmf_bases is None else nmf_bases[i:i + 1])
                     for i in range(batch)]
        return [jt.concat([draws[d] for draws in per_image], dim=0) for d in range(len(keys_per_draw))]

    def execute(self, img: jt.Var, nmf_keys=None, nmf_bases=None) -> jt.Var:
        return self.encode_decode(img, nmf_keys, nmf_bases)

    def loss(self, img: jt.Var, label: jt.Var, nmf_keys=None, nmf_bases=None) -> dict:
        """Training losses as mmseg logs them: decode.loss_ce, decode.acc_seg and their total."""
        logits = self.decode_head(self.extract_feat(img), nmf_keys, nmf_bases)
        logits = resize_bilinear(logits, label.shape[-2:])
        # the same two quantities from one native pass over the logits (models/kernels), or None
        fused = cpu_ops.cross_entropy_and_accuracy(logits, label, self.ignore_index, FLOAT32_EPS)
        if fused is not None:
            loss_ce, acc = fused
        else:
            loss_ce = cross_entropy_mmseg(logits, label, self.ignore_index)
            with jt.no_grad():
                acc = pixel_accuracy(logits.detach(), label, self.ignore_index)
        return {"loss": loss_ce, "decode.loss_ce": loss_ce, "decode.acc_seg": acc}

    def predict(self, img: jt.Var, nmf_keys: Optional[Sequence[NMFKey]] = None, mode: str = "whole",
                crop_size: Sequence[int] = (512, 512), stride: Sequence[int] = (341, 341),
                batched: bool = False) -> jt.Var:
        """Test-time logits at input size: 'whole' image or 'slide' windows (mmseg semantics)."""
        return self.predict_draws(img, [nmf_keys], mode, crop_size, stride, batched)[0]

    def predict_draws(self, img: jt.Var, keys_per_draw: Sequence[Optional[Sequence[NMFKey]]],
                      mode: str = "whole", crop_size: Sequence[int] = (512, 512),
                      stride: Sequence[int] = (341, 341), batched: bool = False) -> list[jt.Var]:
        """`predict` for several NMF draws at once (keys_per_draw[d]: the keys of draw d); the
        backbone runs once per image (or window; once per batch with `batched`)."""
        if mode == "whole":
            return self._encode_decode_draws(img, keys_per_draw, None, batched)
        if mode == "slide":
            return self.slide_inference(img, keys_per_draw, crop_size, stride, batched)
        raise ValueError(f"predict: mode must be 'whole' or 'slide', got {mode!r}")

    def slide_inference(self, img: jt.Var, keys_per_draw: Sequence[Optional[Sequence[NMFKey]]],
                        crop_size: Sequence[int], stride: Sequence[int], batched: bool = False) -> list[jt.Var]:
        """Overlapping windows; the last one in each row/column is shifted to end at the border.
        Window logits are summed and divided by the per-pixel window count. Each window draws its
        own NMF bases (key: the image key + window index). One result per draw."""
        h_crop, w_crop = crop_size
        h_stride, w_stride = stride
        batch, _, h_img, w_img = img.shape
        h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
        w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
        preds = [jt.zeros([batch, self.num_classes, h_img, w_img], "float32") for _ in keys_per_draw]
        count = np.zeros((h_img, w_img), dtype=np.float32)
        window = 0
        for h_idx in range(h_grids):
            for w_idx in range(w_grids):
                y1 = min(h_idx * h_stride, max(h_img - h_crop, 0))
                x1 = min(w_idx * w_stride, max(w_img - w_crop, 0))
                y2, x2 = min(y1 + h_crop, h_img), min(x1 + w_crop, w_img)
                window_keys = [None if keys is None else [tuple(k) + (window,) for k in keys]
                               for keys in keys_per_draw]
                crop_logits = self._encode_decode_draws(img[:, :, y1:y2, x1:x2], window_keys, None, batched)
                for pred, logits in zip(preds, crop_logits):
                    pred[:, :, y1:y2, x1:x2] += logits
                count[y1:y2, x1:x2] += 1
                window += 1
        divisor = jt.array(count).broadcast(preds[0].shape, [0, 1])
        return [pred / divisor for pred in preds]


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
