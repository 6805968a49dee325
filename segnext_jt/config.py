"""Typed configuration: one YAML file -> a tree of dataclasses, validated with helpful errors.

There is no registry and no config inheritance: every config file states its values, and every
value has a typed field here with a default equal to the released SegNeXt recipe (mmseg 0.x
configs, which trained the released checkpoints) unless the field's comment says otherwise.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml


class ConfigError(ValueError):
    """A config file or override has an unknown key or a value of the wrong type."""


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------
@dataclass
class BackboneConfig:
    embed_dims: list[int] = field(default_factory=lambda: [32, 64, 160, 256])
    depths: list[int] = field(default_factory=lambda: [3, 3, 5, 2])
    mlp_ratios: list[float] = field(default_factory=lambda: [8, 8, 4, 4])
    drop_rate: float = 0.0
    drop_path_rate: float = 0.1
    # ImageNet-pretrained MSCAN file (mscan_t.pth ...), loaded non-strictly like mmseg's init_cfg.
    pretrained: Optional[str] = None

    def validate(self, where: str) -> None:
        if not (len(self.embed_dims) == len(self.depths) == len(self.mlp_ratios) == 4):
            raise ConfigError(f"{where}: embed_dims, depths and mlp_ratios need 4 entries each "
                              f"(got {self.embed_dims}, {self.depths}, {self.mlp_ratios})")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ConfigError(f"{where}.drop_path_rate must be in [0, 1), got {self.drop_path_rate}")


@dataclass
class HamConfig:
    """NMF2D settings (mmseg ham_kwargs)."""
    md_s: int = 1
    # NMF rank. mmseg 0.x/1.x configs use 16 for every size; the original repo and JSeg default to
    # 64 for B and L (spec section 8, row 1). The released L checkpoint's own config text decides.
    md_r: int = 16
    train_steps: int = 6
    eval_steps: int = 7
    # rand_init=True: new U[0,1) bases every forward (reference). False: bases stored in the model
    # (a buffer `decode_head.hamburger.ham.bases` saved with the checkpoint).
    rand_init: bool = True
    # 'full': back-propagate through every NMF iteration (mmseg, original repo: released numbers).
    # 'one_step': HamNet one-step gradient, the iterations run without grad (JSeg).
    grad: Literal["full", "one_step"] = "full"

    def validate(self, where: str) -> None:
        if self.md_s != 1:
            raise ConfigError(f"{where}.md_s: only MD_S=1 is used by SegNeXt, got {self.md_s}")
        for name in ("md_r", "train_steps", "eval_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class HeadConfig:
    in_channels: list[int] = field(default_factory=lambda: [64, 160, 256])
    in_index: list[int] = field(default_factory=lambda: [1, 2, 3])
    channels: int = 256
    ham_channels: int = 256
    dropout_ratio: float = 0.1
    num_classes: int = 150
    gn_groups: int = 32
    align_corners: bool = False
    ignore_index: int = 255
    ham: HamConfig = field(default_factory=HamConfig)

    def validate(self, where: str) -> None:
        if len(self.in_channels) != len(self.in_index):
            raise ConfigError(f"{where}: in_channels {self.in_channels} and in_index {self.in_index} "
                              "must have the same length")
        for name in ("channels", "ham_channels"):
            if getattr(self, name) % self.gn_groups:
                raise ConfigError(f"{where}.{name}={getattr(self, name)} is not divisible by "
                                  f"gn_groups={self.gn_groups}")
        if self.num_classes < 1:
            raise ConfigError(f"{where}.num_classes must be >= 1, got {self.num_classes}")
        self.ham.validate(where + ".ham")


@dataclass
class ModelConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    decode_head: HeadConfig = field(default_factory=HeadConfig)

    def validate(self, where: str) -> None:
        self.backbone.validate(where + ".backbone")
        self.decode_head.validate(where + ".decode_head")
        dims = self.backbone.embed_dims
        expected = [dims[i] for i in self.decode_head.in_index]
        if expected != list(self.decode_head.in_channels):
            raise ConfigError(f"{where}.decode_head.in_channels={self.decode_head.in_channels} does not "
                              f"match backbone.embed_dims at in_index: expected {expected}")


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
@dataclass
class DataConfig:
    dataset: Literal["ade20k", "demo_mnist", "cityscapes"] = "ade20k"
    root: str = "data/ade/ADEChallengeData2016"
    train_split: str = "training"
    val_split: str = "validation"
    reduce_zero_label: bool = True
    # train pipeline (mmseg ADE20K 512x512)
    scale: list[int] = field(default_factory=lambda: [2048, 512])
    ratio_range: list[float] = field(default_factory=lambda: [0.5, 2.0])
    crop_size: list[int] = field(default_factory=lambda: [512, 512])
    cat_max_ratio: float = 0.75
    flip_prob: float = 0.5
    photometric: bool = True
    mean: list[float] = field(default_factory=lambda: [123.675, 116.28, 103.53])
    std: list[float] = field(default_factory=lambda: [58.395, 57.12, 57.375])
    num_workers: int = 4

    def validate(self, where: str) -> None:
        if len(self.scale) != 2 or len(self.crop_size) != 2 or len(self.ratio_range) != 2:
            raise ConfigError(f"{where}: scale, crop_size and ratio_range need 2 entries each")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ConfigError(f"{where}: mean and std need 3 entries (RGB)")


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
@dataclass
class OptimizerConfig:
    lr: float = 6e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.01
    # mmseg paramwise_cfg.custom_keys: first matching substring (sorted alphabetically, then
    # longest first) sets lr_mult / decay_mult.
    custom_keys: dict[str, dict[str, float]] = field(default_factory=lambda: {
        "pos_block": {"decay_mult": 0.0},
        "norm": {"decay_mult": 0.0},
        "head": {"lr_mult": 10.0},
    })


@dataclass
class ScheduleConfig:
    # 'mm0': mmcv poly x linear warmup (trained the released checkpoints, default);
    # 'mm1': mmengine LinearLR then PolyLR restarted after warm-up.
    style: Literal["mm0", "mm1"] = "mm0"
    warmup_iters: int = 1500
    warmup_ratio: float = 1e-6
    power: float = 1.0
    min_lr: float = 0.0


@dataclass
class TrainConfig:
    max_iters: int = 160000
    batch_size: int = 16  # total over all processes (mmseg 1x16)
    eval_interval: int = 16000
    checkpoint_interval: int = 16000
    log_interval: int = 50
    max_keep_checkpoints: int = 3
    seed: int = 0
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    sync_bn: bool = False

    def validate(self, where: str) -> None:
        for name in ("max_iters", "batch_size", "eval_interval", "checkpoint_interval", "log_interval"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name} must be >= 1, got {getattr(self, name)}")


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------
@dataclass
class EvalConfig:
    # 'stretch': mmseg 0.x Resize(keep_ratio) + ResizeToMultiple(32): what measured the released
    # numbers (default). 'pad': mmseg 1.x pads to a multiple of 32 and crops the logits back.
    pipeline: Literal["stretch", "pad"] = "stretch"
    scale: list[int] = field(default_factory=lambda: [2048, 512])
    size_divisor: int = 32
    mode: Literal["whole", "slide"] = "whole"
    slide_crop: list[int] = field(default_factory=lambda: [512, 512])
    slide_stride: list[int] = field(default_factory=lambda: [341, 341])
    tta_ratios: list[float] = field(default_factory=lambda: [0.5, 0.75, 1.0, 1.25, 1.5, 1.75])
    tta_flip: bool = True
    batch_size: int = 1
    num_workers: int = 2
    seed: int = 0  # NMF bases seed at test time


@dataclass
class Config:
    name: str = "segnext"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # where the YAML came from (not a YAML key)
    source: Optional[str] = field(default=None, metadata={"internal": True})

    def validate(self) -> "Config":
        self.model.validate("model")
        self.data.validate("data")
        self.train.validate("train")
        return self

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.pop("source", None)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`, converting where YAML is looser (int -> float)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return _build(tp, value, where)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            hint = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}{extra}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {_coerce(k, args[0], where): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # PyYAML (YAML 1.1) reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {_type_name(tp)}")  # pragma: no cover


def _build(cls: type, data: dict, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if not f.metadata.get("internal")]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            hint = difflib.get_close_matches(str(key), names, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{where}: unknown key {key!r}{extra}; valid keys: {', '.join(names)}")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}" if where else key)
    return cls(**kwargs)


def config_from_dict(data: dict, source: str = "<dict>") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        cfg = _build(Config, data, "")
        cfg.source = source
        return cfg.validate()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def parse_overrides(options: list[str]) -> dict:
    """`key.sub=value` strings (mmseg --cfg-options) -> nested dict; values are parsed as YAML."""
    out: dict = {}
    for opt in options or []:
        if "=" not in opt:
            raise ConfigError(f"--cfg-options: expected key=value, got {opt!r}")
        key, raw = opt.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def _merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path: Union[str, Path], overrides: Optional[list[str]] = None) -> Config:
    """Read a YAML config, apply `key=value` overrides, validate, return a typed Config."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if overrides:
        data = _merge(data, parse_overrides(overrides))
    return config_from_dict(data, source=str(path))
