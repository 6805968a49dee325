"""Every benchmark config (and the custom example) loads, builds a model with the expected number
of parameters, carries its reference numbers, and passes the seed sweep's --dry-run."""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import typing

import numpy as np
import pytest

from helpers import BN_BUFFERS, ROOT

from segnext_jt import ConfigError, build_segmentor, load_config
from segnext_jt.config_schema import DataConfig
from segnext_jt.data.build import DATASET_CLASSES, build_dataset
from segnext_jt.data.layouts import LAYOUTS

CONFIGS = os.path.join(ROOT, "configs")
BENCHMARK_CONFIGS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(CONFIGS, "segnext_[tsbl]_*.yaml")))
NEW_CONFIGS = BENCHMARK_CONFIGS + ["custom_example.yaml"]

# mmseg 1.x whole-model parameter counts with the 150-class ADE20K head (spec section 1.1, as in
# tests/models/test_segmentor.py) and the decoder width that feeds the 1x1 classifier (conv_seg).
ADE_PARAMS = {"t": 4_263_414, "s": 13_932_886, "b": 27_636_310, "l": 48_926_550}
HEAD_CHANNELS = {"t": 256, "s": 256, "b": 512, "l": 1024}
# class counts of the benchmarks (their papers / mmseg dataset classes), keyed by the file name part
CLASS_COUNTS = {"cityscapes": 19, "coco_stuff164k": 171, "isaid": 16, "voc12aug": 21, "pascal_context59": 59}


def _expected(name: str) -> tuple[str, int]:
    if name == "custom_example.yaml":
        return "t", 3
    size, benchmark = name[len("segnext_")], name[len("segnext_x_"):-len(".yaml")]
    return size, CLASS_COUNTS[benchmark]


def test_every_benchmark_has_configs():
    benchmarks = {name[len("segnext_x_"):-len(".yaml")] for name in BENCHMARK_CONFIGS}
    assert benchmarks == set(CLASS_COUNTS)
    # the sizes the original repo / JSeg release: all four for Cityscapes, COCO-Stuff and iSAID
    for benchmark in ("cityscapes", "coco_stuff164k", "isaid", "pascal_context59"):
        assert {n[len("segnext_")] for n in BENCHMARK_CONFIGS if benchmark in n} == set("tsbl")


@pytest.mark.parametrize("name", NEW_CONFIGS)
def test_config_builds_model_with_expected_parameter_count(name):
    cfg = load_config(os.path.join(CONFIGS, name))
    size, num_classes = _expected(name)
    assert cfg.model.decode_head.num_classes == num_classes == cfg.data.declared_num_classes()
    state = build_segmentor(cfg).state_dict()
    n_params = sum(int(np.prod(v.shape)) for k, v in state.items() if not k.endswith(BN_BUFFERS))
    # only the classifier differs from the ADE20K model of the same size: (channels + 1) per class
    assert n_params == ADE_PARAMS[size] + (num_classes - 150) * (HEAD_CHANNELS[size] + 1)
    assert tuple(state["decode_head.conv_seg.weight"].shape) == (num_classes, HEAD_CHANNELS[size], 1, 1)


@pytest.mark.slow
@pytest.mark.parametrize("name", NEW_CONFIGS)
def test_config_passes_seed_sweep_dry_run(tmp_path, name):
    work = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "repro", "seed_sweep.py"), "--config",
                           os.path.join(CONFIGS, name), "--work-dir", str(work), "--seeds", "0..2", "--dry-run"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert name in proc.stdout and proc.stdout.count("--_one-seed") == 3
    assert not work.exists()  # a dry run writes nothing


@pytest.mark.parametrize("name", BENCHMARK_CONFIGS)
def test_reference_section_is_filled(name):
    ref = load_config(os.path.join(CONFIGS, name)).reference
    assert ref.source and ref.source.strip()
    if ref.ss is not None and ref.msflip is not None:
        assert ref.ss < ref.msflip  # ms+flip reported above single scale in every published table
    published = ("cityscapes" in name or "coco_stuff" in name or "isaid" in name or "context" in name)
    assert (ref.ss is not None) == published  # VOC: no published val number for a recipe


# SegNeXt paper (arXiv 2209.08575) Table 12: Pascal Context 59, single scale / multi-scale
PASCAL_CONTEXT_PAPER = {"t": (51.2, 53.3), "s": (54.2, 56.1), "b": (57.0, 59.0), "l": (58.7, 60.3)}


@pytest.mark.parametrize("size", "tsbl")
def test_pascal_context_configs_carry_the_paper_numbers_on_one_recipe(size):
    cfg = load_config(os.path.join(CONFIGS, f"segnext_{size}_pascal_context59.yaml"))
    assert (cfg.reference.ss, cfg.reference.msflip) == PASCAL_CONTEXT_PAPER[size]
    assert "Table 12" in cfg.reference.source and f"SegNeXt-{size.upper()}" in cfg.reference.source
    assert not cfg.reference.others
    ade = load_config(os.path.join(CONFIGS, f"segnext_{size}.yaml"))
    tiny = load_config(os.path.join(CONFIGS, "segnext_t_pascal_context59.yaml"))
    # the model of the ADE20K config of that size, the data/schedule/eval of the T Context config
    assert cfg.model.backbone == ade.model.backbone
    assert (cfg.data, cfg.train, cfg.eval) == (tiny.data, tiny.train, tiny.eval)


def test_ade20k_t_names_the_source_of_each_disagreeing_number():
    ref = load_config(os.path.join(CONFIGS, "segnext_t.yaml")).reference
    assert (ref.ss, "mmseg" in ref.source) == (41.50, True)
    others = {o.ss: o.source for o in ref.others}
    assert set(others) == {41.1, 41.4}
    assert "paper" in others[41.1] and "original repo README" in others[41.4]


@pytest.mark.parametrize("name", BENCHMARK_CONFIGS + ["segnext_s.yaml", "segnext_b.yaml", "segnext_l.yaml"])
def test_no_config_shows_another_configs_published_values(name):
    """Every config here inherits (directly or not) from segnext_t.yaml, whose others are T's ADE20K values."""
    assert not load_config(os.path.join(CONFIGS, name)).reference.others


def test_others_are_inherited_only_without_an_own_reference_section(tmp_path):
    (tmp_path / "child_ref.yaml").write_text(f"base: {CONFIGS}/segnext_t.yaml\nreference:\n  ss: 40.0\n")
    (tmp_path / "child_model.yaml").write_text(f"base: {CONFIGS}/segnext_t.yaml\nname: t_variant\n")
    (tmp_path / "grandchild.yaml").write_text("base: child_model.yaml\nreference:\n  others: [{ss: 1.0, source: y}]\n")
    own = load_config(tmp_path / "child_ref.yaml").reference
    assert own.ss == 40.0 and own.others is None and "mmseg" in own.source  # the rest merges as before
    assert [o.ss for o in load_config(tmp_path / "child_model.yaml").reference.others] == [41.1, 41.4]
    assert [o.ss for o in load_config(tmp_path / "grandchild.yaml").reference.others] == [1.0]


def test_other_published_values_are_validated_and_left_out_of_dumps_when_unset():
    t = os.path.join(CONFIGS, "segnext_t.yaml")
    with pytest.raises(ConfigError, match=r"reference.others\[0\].source: say where"):
        load_config(t, ["reference.others=[{ss: 40.0}]"])
    with pytest.raises(ConfigError, match=r"reference.others\[0\]: give ss and/or msflip"):
        load_config(t, ["reference.others=[{source: x}]"])
    with pytest.raises(ConfigError, match=r"reference.others\[0\].msflip is an mIoU"):
        load_config(t, ["reference.others=[{msflip: 140, source: x}]"])
    assert "others" in load_config(t).to_yaml()
    city = load_config(os.path.join(CONFIGS, "segnext_t_cityscapes.yaml"))
    assert "others" not in city.to_yaml()  # unset (or []): config dumps in logs read as before


def test_ade20k_references_match_the_report_defaults():
    from segnext_jt.repro.report.reference import REFERENCE_RANGE_L, REFERENCES
    for size, (ss, ms) in REFERENCES.items():
        ref = load_config(os.path.join(CONFIGS, f"segnext_{size}.yaml")).reference
        assert (ref.ss, ref.msflip) == (ss, ms) and ref.source
        assert ref.ss_range == (list(REFERENCE_RANGE_L) if size == "l" else None)
    assert load_config(os.path.join(CONFIGS, "demo_mnist.yaml")).reference.ss is None


def test_dataset_names_match_the_layouts():
    names = typing.get_args(typing.get_type_hints(DataConfig)["dataset"])
    assert names == (*LAYOUTS, "custom")
    assert list(DATASET_CLASSES) == list(LAYOUTS)  # every layout has its folder-layout class, no other


def test_layout_conventions_are_enforced():
    city = os.path.join(CONFIGS, "segnext_t_cityscapes.yaml")
    with pytest.raises(ConfigError, match=r"data.reduce_zero_label=true contradicts the cityscapes label convention"):
        load_config(city, ["data.reduce_zero_label=true"])
    with pytest.raises(ConfigError, match=r"data.classes is only for dataset 'custom'"):
        load_config(city, ["data.classes=[a, b]"])
    # a layout's class count is checked when its dataset is built (model-only configs stay loadable)
    cfg = load_config(city, ["model.decode_head.num_classes=150"])
    with pytest.raises(ConfigError, match=r"num_classes=150 but the cityscapes layout declares 19 classes"):
        build_dataset(cfg.data, "val", cfg.model.decode_head.num_classes)
    context = load_config(os.path.join(CONFIGS, "segnext_l_pascal_context59.yaml"), ["data.reduce_zero_label=true"])
    assert context.data.reduce_zero_label is True
    with pytest.raises(ConfigError, match=r"reference.source: say where"):
        load_config(city, ["reference.source=null"])
    with pytest.raises(ConfigError, match=r"reference.ss_range needs \[low, high\]"):
        load_config(city, ["reference.ss_range=[80.0, 79.0]"])
