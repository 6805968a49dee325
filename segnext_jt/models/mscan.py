"""MSCAN backbone (SegNeXt), module for module the mmseg 1.x `MSCAN` with the same state-dict keys.

The checkpoint key maps of other MSCAN layouts (SegNeXt repo, ImageNet pretrain) are in
mscan_keys.py; inference-time folding of a block (MSCABlock's one-line hook) is in
models/kernels/folding.py.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import runtime  # noqa: F401
import jittor as jt
from jittor import nn

from .kernels import folding
from .layers import GELU, BatchNorm2d, Conv2d, DropPath, LayerNorm


class Mlp(nn.Module):
    """fc1 (1x1) -> depthwise 3x3 -> GELU -> dropout -> fc2 (1x1) -> dropout."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        self.fc1 = Conv2d(dim, hidden, 1)
        self.dwconv = Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = GELU()
        self.fc2 = Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def execute(self, x: jt.Var) -> jt.Var:
        x = self.act(self.dwconv(self.fc1(x)))
        x = self.drop(x)
        return self.drop(self.fc2(x))


class MSCAAttention(nn.Module):
    """Multi-scale convolutional attention: depthwise 5x5, then three strip-conv branches
    (1x7/7x1, 1x11/11x1, 1x21/21x1), summed, mixed by a 1x1 conv, used as a gate on the input."""

    def __init__(self, dim: int):
        self.conv0 = Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv0_1 = Conv2d(dim, dim, (1, 7), padding=(0, 3), groups=dim)
        self.conv0_2 = Conv2d(dim, dim, (7, 1), padding=(3, 0), groups=dim)
        self.conv1_1 = Conv2d(dim, dim, (1, 11), padding=(0, 5), groups=dim)
        self.conv1_2 = Conv2d(dim, dim, (11, 1), padding=(5, 0), groups=dim)
        self.conv2_1 = Conv2d(dim, dim, (1, 21), padding=(0, 10), groups=dim)
        self.conv2_2 = Conv2d(dim, dim, (21, 1), padding=(10, 0), groups=dim)
        self.conv3 = Conv2d(dim, dim, 1)

    def execute(self, x: jt.Var) -> jt.Var:
        u = x
        attn = self.conv0(x)
        branch0 = self.conv0_2(self.conv0_1(attn))
        branch1 = self.conv1_2(self.conv1_1(attn))
        branch2 = self.conv2_2(self.conv2_1(attn))
        attn = ((attn + branch0) + branch1) + branch2  # the reference's summation order
        return self.conv3(attn) * u


class MSCASpatialAttention(nn.Module):
    """proj_1 (1x1) -> GELU -> MSCA gate -> proj_2 (1x1), plus a shortcut inside the module."""

    def __init__(self, dim: int):
        self.proj_1 = Conv2d(dim, dim, 1)
        self.activation = GELU()
        self.spatial_gating_unit = MSCAAttention(dim)
        self.proj_2 = Conv2d(dim, dim, 1)

    def execute(self, x: jt.Var) -> jt.Var:
        shortcut = x
        x = self.activation(self.proj_1(x))
        x = self.proj_2(self.spatial_gating_unit(x))
        return x + shortcut


class MSCABlock(nn.Module):
    """y = x + DropPath(ls1 * Attn(BN1(x))); z = y + DropPath(ls2 * Mlp(BN2(y)))."""

    def __init__(self, dim: int, mlp_ratio: float, drop: float = 0.0, drop_path: float = 0.0):
        self.norm1 = BatchNorm2d(dim)
        self.attn = MSCASpatialAttention(dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = BatchNorm2d(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.layer_scale_1 = jt.full([dim], 0.01, "float32")
        self.layer_scale_2 = jt.full([dim], 0.01, "float32")

    def execute(self, x: jt.Var) -> jt.Var:
        if folding.folds(self):  # eval: BN and layer scale folded into the convs (models/kernels)
            return folding.execute_block(self, x)
        ls1 = self.layer_scale_1.reshape([1, -1, 1, 1])
        ls2 = self.layer_scale_2.reshape([1, -1, 1, 1])
        x = x + self.drop_path(ls1 * self.attn(self.norm1(x)))
        x = x + self.drop_path(ls2 * self.mlp(self.norm2(x)))
        return x


class StemConv(nn.Module):
    """Stage-1 stem, stride 4: conv3x3/2 -> BN -> GELU -> conv3x3/2 -> BN (keys proj.0 .. proj.4)."""

    def __init__(self, in_channels: int, out_channels: int):
        self.proj = nn.Sequential(
            Conv2d(in_channels, out_channels // 2, 3, stride=2, padding=1),
            BatchNorm2d(out_channels // 2),
            GELU(),
            Conv2d(out_channels // 2, out_channels, 3, stride=2, padding=1),
            BatchNorm2d(out_channels),
        )

    def execute(self, x: jt.Var) -> jt.Var:
        return self.proj(x)


class OverlapPatchEmbed(nn.Module):
    """Stages 2-4: conv3x3 stride 2 -> BN."""

    def __init__(self, in_channels: int, out_channels: int):
        self.proj = Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.norm = BatchNorm2d(out_channels)

    def execute(self, x: jt.Var) -> jt.Var:
        return self.norm(self.proj(x))


class MSCAN(nn.Module):
    """Four stages of (patch embed -> blocks -> LayerNorm over channels); returns all four maps."""

    def __init__(self, embed_dims: Sequence[int] = (32, 64, 160, 256), depths: Sequence[int] = (3, 3, 5, 2),
                 mlp_ratios: Sequence[float] = (8, 8, 4, 4), drop_rate: float = 0.0,
                 drop_path_rate: float = 0.1, in_channels: int = 3):
        self.embed_dims, self.depths = list(embed_dims), list(depths)
        rates = np.linspace(0, drop_path_rate, sum(depths)).tolist()
        cur = 0
        for i in range(4):
            embed = (StemConv(in_channels, embed_dims[0]) if i == 0
                     else OverlapPatchEmbed(embed_dims[i - 1], embed_dims[i]))
            blocks = nn.Sequential(*[MSCABlock(embed_dims[i], mlp_ratios[i], drop_rate, rates[cur + j])
                                     for j in range(depths[i])])
            setattr(self, f"patch_embed{i + 1}", embed)
            setattr(self, f"block{i + 1}", blocks)
            setattr(self, f"norm{i + 1}", LayerNorm(embed_dims[i], norm_dim=1))  # over channels
            cur += depths[i]

    def execute(self, x: jt.Var) -> list[jt.Var]:
        outs = []
        for i in range(1, 5):
            x = getattr(self, f"patch_embed{i}")(x)
            x = getattr(self, f"block{i}")(x)
            x = getattr(self, f"norm{i}")(x)
            outs.append(x)
        return outs
