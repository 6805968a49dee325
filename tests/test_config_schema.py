"""segnext_jt.config_schema: every value has a range and cross-field checks. A property-style sweep
puts boundary and absurd values into every field of the config: each is either accepted or refused
with one short ConfigError line naming the key; nothing else may escape (no ZeroDivisionError,
IndexError, MemoryError, segfault later)."""
from __future__ import annotations

import dataclasses
import json
import typing

import pytest

from helpers import CONFIGS, DEMO_CFG

from segnext_jt import ConfigError, load_config
from segnext_jt.config_schema import Config

ABSURD = {
    int: [-5, -1, 0, 1, 2 ** 32, 10 ** 20, 10 ** 26],
    float: [-1.0, 0.0, 7.0, 1e300, ".nan", ".inf", "1e400", "nan"],
    bool: [2, "maybe"],
    str: ["", "x" * 5000],
}
ABSURD_LISTS = [[], [0], [0, 0], [-1, -1, -1, -1], [10 ** 9] * 4, [2.0, 0.5], [".nan"] * 4]


def _leaf_fields(cls, prefix=""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        tp = hints[f.name]
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            yield from _leaf_fields(tp, path + ".")
        else:
            yield path, tp


def _values_for(tp):
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    origin = typing.get_origin(tp)
    if origin is list:
        return ABSURD_LISTS
    if origin is dict:
        return [{}, {"x": {"y": -1}}, [1]]
    if origin is typing.Literal:
        return ["bogus", 1]
    if args:  # Optional / Union: each member's values
        return [v for a in args for v in _values_for(a)]
    return ABSURD.get(tp, ["bogus"])


CASES = [(path, value) for path, tp in _leaf_fields(Config) for value in _values_for(tp)]


@pytest.mark.parametrize("path, value", CASES, ids=[f"{p}={str(v)[:12]}" for p, v in CASES])
def test_every_field_accepts_or_refuses_in_one_line(path, value):
    option = f"{path}={json.dumps(value) if not isinstance(value, str) or value.startswith(('.', 'n', '1')) else value}"
    if isinstance(value, str) and value.startswith(("n", "1e")):
        option = f"{path}={value}"
    try:
        load_config(DEMO_CFG, [option])
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and len(message) < 500, message[:600]
        assert path.split(".")[-1] in message or path.split(".")[0] in message, message


@pytest.mark.parametrize("override, expected", [
    ("model.decode_head.gn_groups=0", r"gn_groups must be in \[1, 8192\], got 0"),
    ("model.decode_head.in_index=[1,2,7]", r"in_index\[2\] must be in \[0, 3\], got 7"),
    ("data.crop_size=[0,0]", r"crop_size\[0\] must be in \[1, 16384\]"),
    ("data.ratio_range=[2.0,0.5]", "low <= high"),
    ("data.scale=[0,0]", r"data\.scale\[0\]"),
    ("data.flip_prob=7", r"flip_prob must be in \[0.0, 1.0\], got 7"),
    ("model.backbone.embed_dims=[0,64,160,256]", r"embed_dims\[0\]"),
    ("model.backbone.mlp_ratios=[-1,8,4,4]", r"mlp_ratios\[0\] must be in \(0, 16\]"),
    ("model.backbone.depths=[0,3,5,2]", r"depths\[0\]"),
    ("model.backbone.drop_rate=1.5", "drop_rate"),
    ("train.optimizer.betas=[0.9]", "betas needs 2 entries"),
    ("train.seed=-1", r"train\.seed must be in \[0, 4294967296\)"),
    ("train.seed=123456789012345678901", r"train\.seed"),
    ("model.decode_head.num_classes=1000000000", r"num_classes must be in \[1, 255\]"),
    ("model.decode_head.num_classes=300", r"num_classes must be in \[1, 255\]"),
    ("model.decode_head.ham.md_r=100000", r"md_r must be in \[1, 512\]"),
    ("eval.tta_ratios=[1000]", r"tta_ratios\[0\] must be in \(0.0, 4.0\]"),
    ("eval.tta_ratios=[.nan]", r"eval\.tta_ratios\[0\].*finite"),
    ("eval.scale=[100000,100000]", r"eval\.scale\[0\]"),
    ("eval.size_divisor=100000", "size_divisor"),
    ("train.optimizer.lr=-1", r"lr must be in \(0.0, 1.0\]"),
    ("train.optimizer.lr=1e400", "finite"),
    ("train.optimizer.lr=nan", "finite"),
    ("train.schedule.power=-1", "power"),
    ("train.schedule.warmup_iters=-5", "warmup_iters"),
    ("train.max_iters=100000000000000000000000000", "max_iters"),
    ("data.num_workers=1000", r"num_workers must be in \[0, 64\]"),
    ("model.decode_head.ignore_index=3", "ignore_index=3 is a class id"),
])
def test_listed_nonsense_is_refused(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(CONFIGS / "segnext_t.yaml", [override])


def test_slide_windows_are_capped():
    with pytest.raises(ConfigError, match=r"plans \d+ windows per image"):
        load_config(CONFIGS / "segnext_t.yaml", ["eval.mode=slide", "eval.slide_crop=[1,1]", "eval.slide_stride=[1,1]"])
    # the shipped slide configs stay well inside the cap
    load_config(CONFIGS / "segnext_t_cityscapes.yaml")


def test_suspicious_values_are_warned_about_not_refused():
    cfg = load_config(CONFIGS / "segnext_t.yaml", ["model.backbone.pretrained=null", "train.optimizer.lr=0.5",
                                                   "train.schedule.warmup_iters=200000", "data.num_workers=64"])
    text = "\n".join(cfg.warnings())
    for needle in ("trains from scratch", "lr=0.5", "whole run is warm-up", "data.num_workers=64"):
        assert needle in text
    assert load_config(DEMO_CFG).warnings() == []
