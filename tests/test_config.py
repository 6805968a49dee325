"""segnext_jt.config: every shipped config loads and round-trips, overrides are typed, unknown keys get
a hint, wrong types and values are named by their key path, cross-field checks, one-line errors."""
from __future__ import annotations

import pytest

from helpers import CONFIGS, DEMO_CFG

from segnext_jt import ConfigError, load_config
from segnext_jt.config import parse_overrides


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert cfg.source == str(path)
    assert cfg.model.decode_head.in_channels == [cfg.model.backbone.embed_dims[i]
                                                 for i in cfg.model.decode_head.in_index]


def test_config_round_trip(tmp_path):
    cfg = load_config(CONFIGS / "segnext_t.yaml")
    out = tmp_path / "dump.yaml"
    out.write_text(cfg.to_yaml())
    assert load_config(out).to_dict() == cfg.to_dict()


def test_overrides_are_applied_and_typed():
    cfg = load_config(CONFIGS / "segnext_t.yaml",
                      overrides=["train.max_iters=10", "model.decode_head.ham.md_r=64", "eval.seed=7",
                                 "train.optimizer.lr=1.0e-4", "model.decode_head.ham.grad=one_step"])
    assert cfg.train.max_iters == 10 and cfg.model.decode_head.ham.md_r == 64 and cfg.eval.seed == 7
    assert cfg.train.optimizer.lr == pytest.approx(1e-4) and isinstance(cfg.train.optimizer.lr, float)
    assert cfg.model.decode_head.ham.grad == "one_step"
    assert cfg.model.backbone.depths == [3, 3, 5, 2]  # untouched values stay
    assert parse_overrides(["a.b.c=[1, 2]", "a.d=x"]) == {"a": {"b": {"c": [1, 2]}, "d": "x"}}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["train.max_iters"])


def test_override_accepts_exponent_without_dot():
    """PyYAML (YAML 1.1) reads 1e-4 as a string; float fields accept it like mmseg's --cfg-options."""
    cfg = load_config(CONFIGS / "segnext_t.yaml", overrides=["train.optimizer.lr=1e-4"])
    assert cfg.train.optimizer.lr == pytest.approx(1e-4)


@pytest.mark.parametrize("override, expected", [
    ("model.backbone.depth=[1,1,1,1]", r"unknown key 'depth' \(did you mean 'depths'\?\)"),
    ("model.decode_head.ham.md_rank=8", r"did you mean 'md_r'"),
    ("trian.max_iters=1", r"did you mean 'train'"),
])
def test_unknown_keys_are_refused_with_a_hint(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(CONFIGS / "segnext_t.yaml", overrides=[override])


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    text = (CONFIGS / "segnext_t.yaml").read_text().replace("    depths:", "    depth:")
    path = tmp_path / "typo.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "model.backbone" in message and "did you mean 'depths'" in message


@pytest.mark.parametrize("override, where", [
    ("train.max_iters=ten", "train.max_iters"),
    ("train.max_iters=1.5", "train.max_iters"),
    ("model.decode_head.ham.md_r=true", "model.decode_head.ham.md_r"),
    ("model.backbone.depths=[3,3,x,2]", r"model.backbone.depths\[2\]"),
    ("model.decode_head.ham.rand_init=1", "model.decode_head.ham.rand_init"),
    ("train.optimizer.betas=0.9", "train.optimizer.betas"),
    ("model.backbone=3", "model.backbone"),
])
def test_wrong_types_name_their_key_path(override, where):
    with pytest.raises(ConfigError, match=where):
        load_config(CONFIGS / "segnext_t.yaml", overrides=[override])


@pytest.mark.parametrize("override, hint", [
    ("model.decode_head.ham.grad=onestep", "one_step"),
    ("eval.pipeline=strech", "stretch"),
    ("train.schedule.style=mm2", None),
])
def test_literal_fields_reject_bad_values_with_a_hint(override, hint):
    with pytest.raises(ConfigError) as info:
        load_config(CONFIGS / "segnext_t.yaml", overrides=[override])
    message = str(info.value)
    assert "is not one of" in message and override.split("=")[0] in message
    if hint:
        assert f"did you mean '{hint}'" in message


def test_head_in_channels_must_match_backbone_embed_dims():
    with pytest.raises(ConfigError, match=r"in_channels.*embed_dims.*expected \[64, 160, 256\]"):
        load_config(CONFIGS / "segnext_t.yaml", overrides=["model.decode_head.in_channels=[64,160,512]"])
    # changing both together is fine
    cfg = load_config(CONFIGS / "segnext_t.yaml", overrides=["model.backbone.embed_dims=[32,64,160,512]",
                                                             "model.decode_head.in_channels=[64,160,512]"])
    assert cfg.model.decode_head.in_channels == [64, 160, 512]


def test_other_validation_errors():
    with pytest.raises(ConfigError, match="gn_groups"):
        load_config(CONFIGS / "segnext_t.yaml", overrides=["model.decode_head.channels=100"])
    with pytest.raises(ConfigError, match="md_s"):
        load_config(CONFIGS / "segnext_t.yaml", overrides=["model.decode_head.ham.md_s=2"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(CONFIGS / "segnext_missing.yaml")


def test_config_errors_in_process(tmp_path):
    from segnext_jt.config import ConfigError, load_config, parse_overrides
    with pytest.raises(ConfigError, match=r"train\.max_iters=3: an earlier option set train=1"):
        parse_overrides(["train=1", "train.max_iters=3"])
    with pytest.raises(ConfigError, match=r"replaces the section 'train'"):
        parse_overrides(["train.max_iters=3", "train=1"])
    with pytest.raises(ConfigError, match=r"bad key"):
        parse_overrides(["train..max_iters=3"])
    with pytest.raises(ConfigError, match=r"finite"):
        load_config(DEMO_CFG, ["train.optimizer.lr=.nan"])
    with pytest.raises(ConfigError, match=r"eval\.batch_size must be >= 1"):
        load_config(DEMO_CFG, ["eval.batch_size=0"])
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listy, ["train.max_iters=3"])
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(tmp_path)
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [1\n")
    with pytest.raises(ConfigError) as info:
        load_config(broken)
    assert "\n" not in str(info.value) and "broken.yaml" in str(info.value)


def test_nmf_draws_is_validated(tiny_train_options):
    from segnext_jt.config import ConfigError
    with pytest.raises(ConfigError, match="eval.nmf_draws must be in 1..64, got 0"):
        load_config(DEMO_CFG, tiny_train_options + ["eval.nmf_draws=0"])
