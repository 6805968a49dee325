"""The typed configuration schema: a tree of dataclasses, one per YAML section, with their checks.

There is no registry and no config inheritance: every config file states its values, and every
value has a typed field here with a default equal to the released SegNeXt recipe (mmseg 0.x
configs, which trained the released checkpoints) unless the field's comment says otherwise.
segnext_jt/config.py reads YAML files into these classes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal, Optional, Union

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
    # ImageNet-pretrained MSCAN weights: a file, an http(s) URL or zoo:mscan_<size> (segnext_jt/hub.py
    # downloads and caches); every backbone key must match, the ImageNet classifier head.* is dropped.
    pretrained: Optional[str] = None

    def validate(self, where: str) -> None:
        if not (len(self.embed_dims) == len(self.depths) == len(self.mlp_ratios) == 4):
            raise ConfigError(f"{where}: embed_dims, depths and mlp_ratios need 4 entries each "
                              f"(got {self.embed_dims}, {self.depths}, {self.mlp_ratios})")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ConfigError(f"{where}.drop_path_rate must be in [0, 1), got {self.drop_path_rate}")
        if self.pretrained and str(self.pretrained).startswith("zoo:"):  # a typo fails now, not at training
            from .hub import HubError, zoo_url
            try:
                zoo_url(self.pretrained)
            except HubError as exc:
                raise ConfigError(f"{where}.pretrained: {exc}") from None


@dataclass
class HamConfig:
    """NMF2D settings (mmseg ham_kwargs)."""
    md_s: int = 1
    # NMF rank. mmseg 0.x/1.x configs use 16 for every size; the original repo and JSeg default to
    # 64 for B and L (docs/design.md §8, row 1). The released L checkpoint's own config text decides.
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
class SplitDirsConfig:
    """Where one split's files are: folders relative to data.root (absolute paths as given)."""
    img_dir: str = ""
    ann_dir: str = ""
    # Optional text file (relative to data.root) listing sample names, one per line, without suffix
    # (mmseg's `split=`); without it every image in img_dir with a same-named label is a sample.
    split_file: Optional[str] = None

    def validate(self, where: str) -> None:
        for name in ("img_dir", "ann_dir"):
            if not getattr(self, name):
                raise ConfigError(f"{where}.{name} is required (a folder, relative to data.root)")


@dataclass
class DataConfig:
    # A benchmark layout (class list and label convention fixed, see segnext_jt/data/build.py) or
    # 'custom': your folders (train_dirs/val_dirs) and your classes.
    dataset: Literal["ade20k", "demo_mnist", "cityscapes", "voc12_aug", "pascal_context59", "coco_stuff164k",
                     "isaid", "custom"] = "ade20k"
    root: str = "data/ade/ADEChallengeData2016"
    # the layouts' split names (sub-folders or split-file names); not used by 'custom'
    train_split: str = "training"
    val_split: str = "validation"
    # 0 -> ignore, k -> k-1 after reading a label. null = the layout's convention (ADE20K, Pascal
    # Context: true; the others: false); custom: false unless set.
    reduce_zero_label: Optional[bool] = None
    # custom only: class names, or the path of a classes.txt (one name per line; relative to root)
    classes: Union[list[str], str, None] = None
    # custom only: RGB per class for prediction overlays; generated when absent
    palette: Optional[list[list[int]]] = None
    # per-split folders: required for custom, optional for a layout (replaces its own folders)
    train_dirs: Optional[SplitDirsConfig] = None
    val_dirs: Optional[SplitDirsConfig] = None
    # file endings; null = the layout's (custom: .jpg or .png images, .png labels)
    img_suffix: Optional[str] = None
    seg_map_suffix: Optional[str] = None
    # the stored label value meaning "ignore" (mapped to 255, the ignore value of loss and metric)
    ignore_index: int = 255
    # stored value -> class id before reduce_zero_label (a value missing from it is an error), or
    # the name of a built-in table ('coco_stuff164k': raw stuffthingmaps ids -> 171 train ids)
    label_map: Union[dict[int, int], str, None] = None
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
        if self.num_workers < 0:
            raise ConfigError(f"{where}.num_workers must be >= 0, got {self.num_workers}")
        if not 0 <= self.ignore_index <= 255:
            raise ConfigError(f"{where}.ignore_index must be in 0..255 (labels are 8-bit), got {self.ignore_index}")
        for name in ("train_dirs", "val_dirs"):
            if getattr(self, name) is not None:
                getattr(self, name).validate(f"{where}.{name}")
        from .data.config_checks import check_data_config  # lazy: the data package imports this module
        check_data_config(self, where)

    def declared_num_classes(self) -> Optional[int]:
        """The class count the config declares (None: a classes.txt, read when the dataset is built)."""
        if self.dataset == "custom":
            return len(self.classes) if isinstance(self.classes, list) else None
        from .data.build import LAYOUTS
        return len(LAYOUTS[self.dataset].classes)


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
    # Softmax averaged over this many NMF bases draws per view. 1 = the released protocol (one draw
    # per view); K > 1 is a lower-noise estimator of a slightly different quantity (README, "Eval noise").
    nmf_draws: int = 1

    def validate(self, where: str) -> None:
        for name in ("scale", "slide_crop", "slide_stride"):
            v = getattr(self, name)
            if len(v) != 2 or any(x < 1 for x in v):
                raise ConfigError(f"{where}.{name} needs 2 positive entries, got {v}")
        if self.size_divisor < 1:
            raise ConfigError(f"{where}.size_divisor must be >= 1, got {self.size_divisor}")
        if not self.tta_ratios or any(r <= 0 for r in self.tta_ratios):
            raise ConfigError(f"{where}.tta_ratios needs at least one positive ratio, got {self.tta_ratios}")
        if self.batch_size < 1:
            raise ConfigError(f"{where}.batch_size must be >= 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ConfigError(f"{where}.num_workers must be >= 0, got {self.num_workers}")
        if self.seed < 0:
            raise ConfigError(f"{where}.seed must be >= 0, got {self.seed}")
        if not 1 <= self.nmf_draws <= 64:
            raise ConfigError(f"{where}.nmf_draws must be in 1..64, got {self.nmf_draws}")


# --------------------------------------------------------------------------------------------
# Reference numbers
# --------------------------------------------------------------------------------------------
@dataclass
class ReferenceConfig:
    """Published mIoU (%) a run of this config is compared with (repro/report.py); all null when
    there is nothing to compare with (the demo, your own data)."""
    ss: Optional[float] = None       # single scale
    msflip: Optional[float] = None   # multi-scale + flip
    ss_range: Optional[list[float]] = None  # [low, high] of single-scale results over seeds, if published
    source: Optional[str] = None     # where the numbers come from (paper table, README, log)

    def validate(self, where: str) -> None:
        for name in ("ss", "msflip"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 100.0:
                raise ConfigError(f"{where}.{name} is an mIoU in percent (0..100), got {value}")
        if self.ss_range is not None:
            if len(self.ss_range) != 2 or not 0.0 <= self.ss_range[0] <= self.ss_range[1] <= 100.0:
                raise ConfigError(f"{where}.ss_range needs [low, high] percentages with low <= high, "
                                  f"got {self.ss_range}")
        has_numbers = any(v is not None for v in (self.ss, self.msflip, self.ss_range))
        if has_numbers and not (self.source or "").strip():
            raise ConfigError(f"{where}.source: say where the reference numbers come from (paper table, README)")


@dataclass
class Config:
    name: str = "segnext"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    # where the YAML came from (not a YAML key)
    source: Optional[str] = field(default=None, metadata={"internal": True})

    def validate(self) -> "Config":
        self.model.validate("model")
        self.data.validate("data")
        self.train.validate("train")
        self.eval.validate("eval")
        self.reference.validate("reference")
        self._check_num_classes()
        return self

    def _check_num_classes(self) -> None:
        """The head must predict the classes a custom config lists. A classes.txt, and the benchmark
        layouts, are checked when the dataset is built (model-only configs, e.g. of a checkpoint or
        a test fixture, keep the default data section with any head)."""
        if self.data.dataset != "custom":
            return
        declared = self.data.declared_num_classes()
        head = self.model.decode_head.num_classes
        if declared is not None and declared != head:
            raise ConfigError(f"model.decode_head.num_classes={head} but data.classes lists {declared} classes; "
                              "they must be equal")

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.pop("source", None)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)
