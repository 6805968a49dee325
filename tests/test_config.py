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
    with pytest.raises(ConfigError, match=r"eval\.batch_size must be in \[1, 64\], got 0"):
        load_config(DEMO_CFG, ["eval.batch_size=0"])
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listy, ["train.max_iters=3"])
    with pytest.raises(ConfigError, match="expected the config file as a regular file"):
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


# --------------------------------------------------------------------------------------------
# reading YAML: bounded, strict (issue: hostile configs)
# --------------------------------------------------------------------------------------------
def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_repeated_section_is_refused_not_replaced(tmp_path):
    text = (CONFIGS / "segnext_t.yaml").read_text() + "train: {max_iters: 3}\n"
    with pytest.raises(ConfigError, match=r"key 'train' appears twice in one mapping \(lines \d+ and \d+\)"):
        load_config(_write(tmp_path, "dup.yaml", text))
    with pytest.raises(ConfigError, match=r"key 'lr' appears twice"):
        load_config(_write(tmp_path, "dup2.yaml", "train:\n  optimizer: {lr: 1.0e-4, lr: 2.0e-4}\n"))


@pytest.mark.parametrize("text, expected", [
    ("a: " + "[" * 200_000 + "]" * 200_000 + "\n", "nested deeper than 32 levels"),
    ("name: [" + ", ".join(f"&a{i} [" + ", ".join([f"*a{i - 1}" if i else "x"] * 9) + "]" for i in range(10))
     + "]\n", "expands to more than 100000 values"),
    ("# " + "x" * (1 << 20) + "\n", "larger than 1,048,576 bytes"),
    ("train: {max_iters: " + "9" * 5001 + "}\n", "Exceeds the limit"),
])
def test_hostile_yaml_is_refused_quickly_in_one_line(tmp_path, text, expected):
    import time
    path = _write(tmp_path, "hostile.yaml", text)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert expected in message and str(path) in message and "\n" not in message and len(message) < 400


def test_special_files_are_not_read_as_configs(tmp_path):
    import os
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # opening it would block forever
    for path in (fifo, "/dev/zero"):
        with pytest.raises(ConfigError, match="expected the config file as a regular file"):
            load_config(path)


def test_error_messages_quote_values_shortly():
    with pytest.raises(ConfigError) as info:
        load_config(CONFIGS / "segnext_t.yaml", overrides=["name=[" + ",".join(["1"] * 50_000) + "]"])
    assert "expected a string" in str(info.value) and len(str(info.value)) < 300
    with pytest.raises(ConfigError) as info:
        load_config(CONFIGS / "segnext_t.yaml", overrides=["train.max_iters=" + "x" * 100_000])
    assert len(str(info.value)) < 300


def test_a_bom_is_dropped(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfname: with_bom\n")
    assert load_config(path).name == "with_bom"


# --------------------------------------------------------------------------------------------
# base: inheritance
# --------------------------------------------------------------------------------------------
def test_base_is_deep_merged_and_chains(tmp_path):
    mid = _write(tmp_path, "mid.yaml", f"base: {CONFIGS / 'segnext_t.yaml'}\nname: mid\n"
                                       "train: {max_iters: 30, optimizer: {lr: 1.0e-4}}\n")
    child = _write(tmp_path, "child.yaml", "base: mid.yaml\nname: child\ntrain: {batch_size: 2}\n")
    cfg = load_config(child)
    ref = load_config(CONFIGS / "segnext_t.yaml")
    assert cfg.name == "child" and cfg.train.max_iters == 30 and cfg.train.batch_size == 2
    assert cfg.train.optimizer.lr == pytest.approx(1e-4)
    assert cfg.train.optimizer.weight_decay == ref.train.optimizer.weight_decay  # untouched sibling kept
    assert cfg.model == ref.model and cfg.eval == ref.eval
    assert "base" not in cfg.to_yaml()  # the resolved config is one self-contained file
    assert load_config(_write(tmp_path, "resolved.yaml", cfg.to_yaml())).to_dict() == cfg.to_dict()
    # overrides apply after the whole chain
    assert load_config(child, ["train.batch_size=4"]).train.batch_size == 4


def test_base_errors_name_the_file(tmp_path):
    _write(tmp_path, "a.yaml", "base: b.yaml\n")
    b = _write(tmp_path, "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match=r"a\.yaml: base: b\.yaml makes a cycle"):
        load_config(b)
    with pytest.raises(ConfigError, match=r"missing\.yaml not found"):
        load_config(_write(tmp_path, "m.yaml", "base: missing.yaml\n"))
    with pytest.raises(ConfigError, match=r"l\.yaml: base: expected the file name"):
        load_config(_write(tmp_path, "l.yaml", "base: [1, 2]\n"))
    for i in range(10):
        _write(tmp_path, f"c{i}.yaml", f"base: c{i + 1}.yaml\n" if i < 9 else "name: end\n")
    with pytest.raises(ConfigError, match="more than 8 files in the inheritance chain"):
        load_config(tmp_path / "c0.yaml")
    _write(tmp_path, "bad.yaml", "trian: {max_iters: 1}\n")
    with pytest.raises(ConfigError, match=r"top\.yaml: unknown key 'trian' \(did you mean 'train'\?\)"):
        load_config(_write(tmp_path, "top.yaml", "base: bad.yaml\n"))
