"""LightHamHead: the SegNeXt decoder (multi-level concat -> squeeze -> Hamburger(NMF) -> align -> cls).

NMF bases, the source of SegNeXt's eval-time randomness (the reference draws `torch.rand` on every
forward), come here from `NMFBasesSampler`: one dedicated, seeded stream *per image*, addressed by a
key such as (namespace, image id, view); segnext_jt/rng.py lists every key. An eval result
therefore depends only on (weights, seed, image, view), never on batch size, worker count, image
order or CPU vs CUDA.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from .. import runtime  # noqa: F401
import jittor as jt
from jittor import nn

from ..rng import NMF_ADHOC, NMF_STORED_BASES_KEY, NMFKey, nmf_bases
from .kernels.cpu_ops import bmm  # torch.bmm; one sgemm per image on the CPU
from .layers import Conv2d, Dropout2d, GroupNorm, resize_bilinear


class NMFBasesSampler:
    """U[0,1) bases of shape (D, R) per key (segnext_jt.rng.nmf_bases: one stream per (seed, *key)).

    Without explicit keys, draws are keyed by an internal call counter (NMF_ADHOC, call, index),
    so a fixed sequence of forward calls is reproducible for a given seed."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.calls = 0

    def next_adhoc_keys(self, batch: int) -> list[NMFKey]:
        """The keys of the next unkeyed call: (NMF_ADHOC, call, index in the batch)."""
        keys = [(NMF_ADHOC, self.calls, i) for i in range(batch)]
        self.calls += 1
        return keys

    def draw(self, keys: Optional[Sequence[NMFKey]], batch: int, d: int, r: int) -> np.ndarray:
        if keys is None:
            keys = self.next_adhoc_keys(batch)
        if len(keys) != batch:
            raise ValueError(f"NMF: got {len(keys)} bases keys for a batch of {batch}")
        return nmf_bases(self.seed, keys, d, r)


def frozen_nmf_bases(seed: int, channels: int, rank: int) -> np.ndarray:
    """The stored bases of `rand_init: false` (1, channels, rank): the seeded U[0,1) draw of
    rng.NMF_STORED_BASES_KEY with unit-L2 columns (tools/freeze_nmf_bases.py writes these)."""
    raw = nmf_bases(seed, [NMF_STORED_BASES_KEY], channels, rank)
    norm = np.sqrt((raw * raw).sum(axis=1, keepdims=True, dtype=np.float32))
    return (raw / np.maximum(norm, np.float32(1e-12))).astype(np.float32)


def l2_normalize_columns(bases: jt.Var) -> jt.Var:
    """F.normalize(bases, dim=1): each column over D divided by max(||b||_2, 1e-12)."""
    norm = jt.sqrt((bases * bases).sum(dim=1, keepdims=True))
    return bases / jt.maximum(norm, 1e-12)


class NMF2D(nn.Module):
    """Non-negative matrix factorisation by multiplicative updates, unrolled (mmseg NMF2D, MD_S=1).

    grad='full' back-propagates through every step (mmseg/original repo); 'one_step' runs the steps
    without gradient and differentiates only the final coefficient update and reconstruction (JSeg)."""

    def __init__(self, md_s: int = 1, md_r: int = 16, train_steps: int = 6, eval_steps: int = 7,
                 rand_init: bool = True, grad: str = "full", channels: Optional[int] = None, seed: int = 0):
        if md_s != 1:
            raise ValueError("NMF2D: only MD_S=1 is supported (as used by SegNeXt)")
        if grad not in ("full", "one_step"):
            raise ValueError(f"NMF2D: grad must be 'full' or 'one_step', got {grad!r}")
        self.S, self.R = md_s, md_r
        self.train_steps, self.eval_steps = train_steps, eval_steps
        self.rand_init, self.grad = rand_init, grad
        self.inv_t = 1  # mmseg stores inv_t=100 then NMF2D overrides it with 1
        self._sampler = NMFBasesSampler(seed)
        if not rand_init:
            if channels is None:
                raise ValueError("NMF2D(rand_init=False) needs `channels` to create its stored bases")
            self.bases = jt.array(frozen_nmf_bases(seed, channels // md_s, md_r)).stop_grad()

    @property
    def sampler(self) -> NMFBasesSampler:
        return self._sampler

    def _update_coef(self, x: jt.Var, bases: jt.Var, coef: jt.Var) -> jt.Var:
        numerator = bmm(x, bases, trans_a=True)  # (B, N, R)
        denominator = bmm(coef, bmm(bases, bases, trans_a=True))  # Gram first, as torch
        return coef * numerator / (denominator + 1e-6)

    def _update_bases(self, x: jt.Var, bases: jt.Var, coef: jt.Var) -> jt.Var:
        numerator = bmm(x, coef)  # (B, D, R)
        denominator = bmm(bases, bmm(coef, coef, trans_a=True))
        return bases * numerator / (denominator + 1e-6)

    def _local_inference(self, x: jt.Var, bases: jt.Var) -> tuple[jt.Var, jt.Var]:
        coef = nn.softmax(self.inv_t * bmm(x, bases, trans_a=True), dim=-1)
        steps = self.train_steps if self.training else self.eval_steps
        for _ in range(steps):
            coef = self._update_coef(x, bases, coef)
            bases = self._update_bases(x, bases, coef)
        return bases, coef

    def execute(self, x: jt.Var, keys: Optional[Sequence[NMFKey]] = None,
                bases_raw: Optional[Union[np.ndarray, jt.Var]] = None) -> jt.Var:
        b, c, h, w = x.shape
        d, n = c // self.S, h * w
        x = x.reshape([b * self.S, d, n])
        if bases_raw is not None:  # injected U[0,1) draws, e.g. the reference fixtures'
            raw = bases_raw if isinstance(bases_raw, jt.Var) else jt.array(np.asarray(bases_raw, np.float32))
            if tuple(raw.shape) != (b * self.S, d, self.R):
                raise ValueError(f"NMF: injected bases have shape {tuple(raw.shape)}, "
                                 f"expected {(b * self.S, d, self.R)}")
            bases = l2_normalize_columns(raw)
        elif self.rand_init:
            bases = l2_normalize_columns(jt.array(self._sampler.draw(keys, b * self.S, d, self.R)))
        else:
            bases = self.bases.repeat(b, 1, 1)
        if self.grad == "one_step":
            with jt.no_grad():
                bases, coef = self._local_inference(x.detach(), bases)
            bases, coef = bases.detach(), coef.detach()
        else:
            bases, coef = self._local_inference(x, bases)
        coef = self._update_coef(x, bases, coef)
        return bmm(bases, coef, trans_b=True).reshape([b, c, h, w])


class ConvModule(nn.Module):
    """mmcv ConvModule 1x1: conv (bias only without a norm) -> optional GroupNorm -> optional ReLU."""

    def __init__(self, in_channels: int, out_channels: int, gn_groups: Optional[int], relu: bool,
                 bias: Optional[bool] = None):
        self.conv = Conv2d(in_channels, out_channels, 1, bias=(gn_groups is None) if bias is None else bias)
        self.gn = GroupNorm(gn_groups, out_channels) if gn_groups else None
        self.relu = relu

    def execute(self, x: jt.Var) -> jt.Var:
        x = self.conv(x)
        if self.gn is not None:
            x = self.gn(x)
        return nn.relu(x) if self.relu else x


class Hamburger(nn.Module):
    """ham_in (1x1 conv, bias) -> ReLU -> NMF -> ham_out (1x1 conv, GN) ; ReLU(x + that)."""

    def __init__(self, ham_channels: int, gn_groups: int, nmf: NMF2D):
        self.ham_in = ConvModule(ham_channels, ham_channels, gn_groups=None, relu=False)
        self.ham = nmf
        self.ham_out = ConvModule(ham_channels, ham_channels, gn_groups=gn_groups, relu=False)

    def execute(self, x: jt.Var, keys=None, bases_raw=None) -> jt.Var:
        enjoy = nn.relu(self.ham_in(x))
        enjoy = self.ham(enjoy, keys, bases_raw)
        enjoy = self.ham_out(enjoy)
        return nn.relu(x + enjoy)


class LightHamHead(nn.Module):
    def __init__(self, in_channels: Sequence[int] = (64, 160, 256), in_index: Sequence[int] = (1, 2, 3),
                 channels: int = 256, ham_channels: int = 256, num_classes: int = 150,
                 dropout_ratio: float = 0.1, gn_groups: int = 32, align_corners: bool = False,
                 md_r: int = 16, train_steps: int = 6, eval_steps: int = 7, rand_init: bool = True,
                 nmf_grad: str = "full", md_s: int = 1):
        if align_corners:
            raise ValueError("LightHamHead: align_corners=True is not used by SegNeXt and not implemented")
        self.in_index = list(in_index)
        self.num_classes = num_classes
        # registration order follows mmseg (conv_seg first) so parameter order matches checkpoints
        self.conv_seg = Conv2d(channels, num_classes, 1)
        self.conv_seg.weight.assign(jt.init.gauss(self.conv_seg.weight.shape, "float32", 0.0, 0.01))
        self.dropout = Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.squeeze = ConvModule(sum(in_channels), ham_channels, gn_groups, relu=True)
        self.hamburger = Hamburger(ham_channels, gn_groups,
                                   NMF2D(md_s, md_r, train_steps, eval_steps, rand_init, nmf_grad, ham_channels))
        self.align = ConvModule(ham_channels, channels, gn_groups, relu=True)

    @property
    def nmf(self) -> NMF2D:
        return self.hamburger.ham

    def execute(self, feats: Sequence[jt.Var], keys: Optional[Sequence[NMFKey]] = None,
                bases_raw=None) -> jt.Var:
        inputs = [feats[i] for i in self.in_index]
        size = inputs[0].shape[2:]
        inputs = [resize_bilinear(level, size) for level in inputs]
        x = self.squeeze(jt.concat(inputs, dim=1))
        x = self.hamburger(x, keys, bases_raw)
        x = self.align(x)
        return self.conv_seg(self.dropout(x))
