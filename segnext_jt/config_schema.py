"""The typed configuration schema: a tree of dataclasses, one per YAML section, with their checks.

There is no registry: a config file states its values (or inherits them from one explicit `base:`
file, see config.py), and every value has a typed field here with a default equal to the released SegNeXt recipe (mmseg 0.x
configs, which trained the released checkpoints) unless the field's comment says otherwise.
segnext_jt/config.py reads YAML files into these classes.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Literal, Optional, Union

import yaml

from .config_reference import ReferenceConfig
from .data.config_checks import check_data_config
from .data.layouts import DATASET_NAMES, LAYOUTS
from .errors import ConfigError, quote


# Caps far beyond any real recipe: values past them are typos or attacks that would otherwise end
# in a segfault or a MemoryError deep inside Jittor or NumPy.
MAX_SIDE = 16384          # pixels of a crop, resize target or sliding window
MAX_ITERS = 100_000_000   # the released recipe is 160k
MAX_WORKERS = 64
MAX_CLASSES = 255         # labels are 8-bit and 255 is the ignore value
MAX_WINDOWS = 1024        # sliding windows per image at the eval scale
SEED_LIMIT = 2 ** 32


def check_range(value, where: str, lo=None, hi=None, lo_open: bool = False, hi_open: bool = False) -> None:
    """One-line ConfigError unless lo <= value <= hi (open ends with lo_open/hi_open)."""
    too_low = lo is not None and (value <= lo if lo_open else value < lo)
    too_high = hi is not None and (value >= hi if hi_open else value > hi)
    if too_low or too_high:
        left = "" if lo is None else ("(" if lo_open else "[") + f"{lo}"
        right = "" if hi is None else f"{hi}" + (")" if hi_open else "]")
        want = f"in {left or '(-inf'}, {right or 'inf)'}"
        raise ConfigError(f"{where} must be {want}, got {quote(value)}")


def check_each(values, where: str, lo=None, hi=None, lo_open: bool = False, hi_open: bool = False) -> None:
    for i, value in enumerate(values):
        check_range(value, f"{where}[{i}]", lo, hi, lo_open, hi_open)


def check_seed(value: int, where: str) -> None:
    """A seed a user gives (config, --seed, --seeds): in [0, 2**32), else a one-line ConfigError
    naming `where`. (rng.stream_seed only keeps negative values out of the stream entropy.)"""
    check_range(value, where, 0, SEED_LIMIT, hi_open=True)


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
        check_each(self.embed_dims, f"{where}.embed_dims", lo=1, hi=4096)
        check_each(self.depths, f"{where}.depths", lo=1, hi=64)
        check_each(self.mlp_ratios, f"{where}.mlp_ratios", lo=0, hi=16, lo_open=True)
        check_range(self.drop_rate, f"{where}.drop_rate", 0.0, 1.0, hi_open=True)
        check_range(self.drop_path_rate, f"{where}.drop_path_rate", 0.0, 1.0, hi_open=True)
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
        check_range(self.md_r, f"{where}.md_r", 1, 512)
        for name in ("train_steps", "eval_steps"):
            check_range(getattr(self, name), f"{where}.{name}", 1, 100)


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
        check_each(self.in_index, f"{where}.in_index", 0, 3)  # the backbone has 4 stages
        for name in ("channels", "ham_channels"):
            check_range(getattr(self, name), f"{where}.{name}", 1, 8192)
        check_range(self.gn_groups, f"{where}.gn_groups", 1, 8192)
        check_range(self.dropout_ratio, f"{where}.dropout_ratio", 0.0, 1.0, hi_open=True)
        check_range(self.num_classes, f"{where}.num_classes", 1, MAX_CLASSES)
        if 0 <= self.ignore_index < self.num_classes:
            raise ConfigError(f"{where}.ignore_index={self.ignore_index} is a class id (num_classes="
                              f"{self.num_classes}); it must lie outside 0..{self.num_classes - 1}")
        for name in ("channels", "ham_channels"):
            if getattr(self, name) % self.gn_groups:
                raise ConfigError(f"{where}.{name}={getattr(self, name)} is not divisible by "
                                  f"gn_groups={self.gn_groups}")
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
# The values `data.dataset` accepts, made from the layouts' names (one list: data/layouts.py), so
# a wrong name is refused like any Literal, with a "did you mean".
DatasetName = Literal[DATASET_NAMES]


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
    # A benchmark layout (class list and label convention fixed, see segnext_jt/data/layouts.py) or
    # 'custom': your folders (train_dirs/val_dirs) and your classes.
    dataset: DatasetName = "ade20k"
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
        check_each(self.scale, f"{where}.scale", 1, MAX_SIDE)
        check_each(self.crop_size, f"{where}.crop_size", 1, MAX_SIDE)
        check_each(self.ratio_range, f"{where}.ratio_range", 0.0, 8.0, lo_open=True)
        if self.ratio_range[0] > self.ratio_range[1]:
            raise ConfigError(f"{where}.ratio_range must be [low, high] with low <= high, got {self.ratio_range}")
        check_range(self.cat_max_ratio, f"{where}.cat_max_ratio", 0.0, 1.0, lo_open=True)
        check_range(self.flip_prob, f"{where}.flip_prob", 0.0, 1.0)
        check_each(self.mean, f"{where}.mean", -1e4, 1e4)
        check_each(self.std, f"{where}.std", 0.0, 1e4, lo_open=True)
        check_range(self.num_workers, f"{where}.num_workers", 0, MAX_WORKERS)
        if not 0 <= self.ignore_index <= 255:
            raise ConfigError(f"{where}.ignore_index must be in 0..255 (labels are 8-bit), got {self.ignore_index}")
        for name in ("train_dirs", "val_dirs"):
            if getattr(self, name) is not None:
                getattr(self, name).validate(f"{where}.{name}")
        check_data_config(self, where)

    def declared_num_classes(self) -> Optional[int]:
        """The class count the config declares (None: a classes.txt, read when the dataset is built)."""
        if self.dataset == "custom":
            return len(self.classes) if isinstance(self.classes, list) else None
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

    def validate(self, where: str) -> None:
        check_range(self.lr, f"{where}.lr", 0.0, 1.0, lo_open=True)
        if len(self.betas) != 2:
            raise ConfigError(f"{where}.betas needs 2 entries [beta1, beta2], got {quote(self.betas)}")
        check_each(self.betas, f"{where}.betas", 0.0, 1.0, hi_open=True)
        check_range(self.eps, f"{where}.eps", 0.0, 1.0, lo_open=True)
        check_range(self.weight_decay, f"{where}.weight_decay", 0.0, 1.0)
        for key, rule in self.custom_keys.items():
            for name, mult in rule.items():
                if name not in ("lr_mult", "decay_mult"):
                    raise ConfigError(f"{where}.custom_keys.{key}: unknown key {quote(name)}; valid keys: "
                                      "lr_mult, decay_mult")
                check_range(mult, f"{where}.custom_keys.{key}.{name}", 0.0, 1000.0)


@dataclass
class ScheduleConfig:
    # 'mm0': mmcv poly x linear warmup (trained the released checkpoints, default);
    # 'mm1': mmengine LinearLR then PolyLR restarted after warm-up.
    style: Literal["mm0", "mm1"] = "mm0"
    warmup_iters: int = 1500
    warmup_ratio: float = 1e-6
    power: float = 1.0
    min_lr: float = 0.0

    def validate(self, where: str, lr: float) -> None:
        check_range(self.warmup_iters, f"{where}.warmup_iters", 0, MAX_ITERS)
        check_range(self.warmup_ratio, f"{where}.warmup_ratio", 0.0, 1.0)
        check_range(self.power, f"{where}.power", 0.0, 100.0)
        check_range(self.min_lr, f"{where}.min_lr", 0.0, lr)


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
    # native: bit-identical on one machine; portable: on any x86-64 CPU with AVX2 + FMA (segnext_jt.portable)
    deterministic: Literal["native", "portable"] = "native"

    def validate(self, where: str) -> None:
        for name in ("max_iters", "eval_interval", "checkpoint_interval", "log_interval"):
            check_range(getattr(self, name), f"{where}.{name}", 1, MAX_ITERS)
        check_range(self.batch_size, f"{where}.batch_size", 1, 1024)
        check_range(self.max_keep_checkpoints, f"{where}.max_keep_checkpoints", 0, 10_000)
        check_seed(self.seed, f"{where}.seed")
        self.optimizer.validate(f"{where}.optimizer")
        self.schedule.validate(f"{where}.schedule", self.optimizer.lr)


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
    # Images per loader batch. By default every image still runs through the network alone, so
    # batch_size changes only how many images are loaded and copied at once, never a result.
    batch_size: int = 1
    # true: the images of a batch that share an input shape (after the test resize) run as one
    # forward. The NMF bases stay per image key, but the kernels round differently at another batch
    # size: logits differ in the last bits and a few labels can flip (README, "Batched evaluation").
    batched: bool = False
    num_workers: int = 2
    seed: int = 0  # NMF bases seed at test time
    # Softmax averaged over this many NMF bases draws per view. 1 = the released protocol (one draw
    # per view); K > 1 is a lower-noise estimator of a slightly different quantity (README, "Eval noise").
    nmf_draws: int = 1

    def validate(self, where: str) -> None:
        for name in ("scale", "slide_crop", "slide_stride"):
            v = getattr(self, name)
            if len(v) != 2:
                raise ConfigError(f"{where}.{name} needs 2 entries, got {quote(v)}")
            check_each(v, f"{where}.{name}", 1, MAX_SIDE)
        check_range(self.size_divisor, f"{where}.size_divisor", 1, 1024)
        if not 1 <= len(self.tta_ratios) <= 16:
            raise ConfigError(f"{where}.tta_ratios needs 1 to 16 ratios, got {quote(self.tta_ratios)}")
        check_each(self.tta_ratios, f"{where}.tta_ratios", 0.0, 4.0, lo_open=True)
        if self.mode == "slide":
            self._check_windows(where)
        check_range(self.batch_size, f"{where}.batch_size", 1, 64)
        check_range(self.num_workers, f"{where}.num_workers", 0, MAX_WORKERS)
        check_seed(self.seed, f"{where}.seed")
        if not 1 <= self.nmf_draws <= 64:
            raise ConfigError(f"{where}.nmf_draws must be in 1..64, got {self.nmf_draws}")

    def _check_windows(self, where: str) -> None:
        """Sliding windows per image at the largest eval size (the long side of `scale` both ways,
        times the largest TTA ratio) must stay under MAX_WINDOWS."""
        side = max(self.scale) * max(max(self.tta_ratios), 1.0)
        per_axis = [math.ceil(max(side - c, 0) / s) + 1 for c, s in zip(self.slide_crop, self.slide_stride)]
        if per_axis[0] * per_axis[1] > MAX_WINDOWS:
            raise ConfigError(f"{where}: slide_crop {self.slide_crop} with slide_stride {self.slide_stride} plans "
                              f"{per_axis[0] * per_axis[1]} windows per image at size {int(side)}; at most "
                              f"{MAX_WINDOWS} (use larger windows or strides)")


# --------------------------------------------------------------------------------------------
# The whole config (the reference: section's dataclasses are in config_reference.py)
# --------------------------------------------------------------------------------------------
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

    def from_scratch_on_a_benchmark(self) -> bool:
        """No pretrained backbone on a benchmark layout (the released numbers start from ImageNet
        weights; the demo and custom data have none to start from)."""
        return not self.model.backbone.pretrained and self.data.dataset not in ("custom", "demo_mnist")

    def warnings(self) -> list[str]:
        """Legal but suspicious values, one line each (the tools print them before any work)."""
        out = []
        bb, t = self.model.backbone, self.train
        if self.from_scratch_on_a_benchmark():
            out.append("model.backbone.pretrained is null: the backbone trains from scratch, far below the released "
                       "numbers (which start from ImageNet weights)")
        if t.optimizer.lr > 1e-2:
            out.append(f"train.optimizer.lr={t.optimizer.lr:g} is over 100x the recipe's 6e-5 for AdamW")
        if t.schedule.warmup_iters > t.max_iters:
            out.append(f"train.schedule.warmup_iters={t.schedule.warmup_iters} exceeds train.max_iters={t.max_iters}: "
                       "the whole run is warm-up")
        if bb.drop_path_rate > 0.5:
            out.append(f"model.backbone.drop_path_rate={bb.drop_path_rate} drops most residual branches (recipe: 0.1-0.3)")
        if t.max_keep_checkpoints == 0:
            out.append("train.max_keep_checkpoints=0 keeps every checkpoint (disk use grows with the run)")
        cpus = os.cpu_count() or 1
        for key, workers in (("data.num_workers", self.data.num_workers), ("eval.num_workers", self.eval.num_workers)):
            if workers > 2 * cpus:
                out.append(f"{key}={workers} is more than twice this machine's {cpus} CPUs")
        return out

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
        if not out["reference"]["others"]:  # unset: the config dump (log.json, checkpoints) is what it was
            del out["reference"]["others"]
        return out

    def to_yaml(self, flow_lists: bool = False) -> str:
        """The config as YAML (what log.json and checkpoints record). flow_lists=True writes lists of
        plain values on one line, as the config files do (--print-config)."""
        if not flow_lists:
            return yaml.safe_dump(self.to_dict(), sort_keys=False)
        return yaml.dump(self.to_dict(), Dumper=_FlowListDumper, sort_keys=False, width=120)


class _FlowListDumper(yaml.SafeDumper):
    def represent_list(self, data):
        flat = all(not isinstance(v, (list, dict)) for v in data)
        return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_FlowListDumper.add_representer(list, _FlowListDumper.represent_list)
