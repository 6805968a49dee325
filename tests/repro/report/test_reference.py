"""repro/report.py's reference numbers: command line, else a config's reference section
(--reference-from, else the sweep's own config), else the mmseg numbers inferred from the name."""
from __future__ import annotations

import json
from pathlib import Path

from helpers import ROOT

from segnext_jt.repro.report import command as report

from segnext_jt.repro.report import reference as report_reference
from segnext_jt.repro.report.reference import Reference
from segnext_jt.config import Config

CITYSCAPES = """\
name: segnext_l_cityscapes
reference:
  ss: 83.2
  msflip: 83.9
  source: SegNeXt paper, Table 5 (Cityscapes val)
"""


def _sweep(root: Path, config: str, cfg_options=None) -> Path:
    d = root / "seed_0"
    d.mkdir(parents=True)
    (root / "sweep.json").write_text(json.dumps({"config": config, "seeds": [0],
                                                 "cfg_options": cfg_options or []}))
    (d / "result.json").write_text(json.dumps({
        "seed": 0, "config": config, "checkpoint": None, "final_loss": None, "train_log": None,
        "eval": [{"eval_seed": 0, "mode": "ss", "mIoU": 82.0},
                 {"eval_seed": 0, "mode": "msflip", "mIoU": 83.0}]}))
    return root


def _ref(sweep: Path, *args: str) -> dict:
    out = sweep / "out"
    assert report.main([str(sweep), "--out", str(out), *args]) == 0
    return json.loads((out / "report.json").read_text())["reference"]


def test_for_protocol_and_range():
    ref = Reference(50.0, 52.0, (49.0, 51.0), "x")
    assert (ref.for_protocol("ss"), ref.for_protocol("msflip")) == (50.0, 52.0)
    assert (ref.range_for("ss"), ref.range_for("msflip")) == ((49.0, 51.0), None)


def test_name_inferred_defaults_when_no_config_values(tmp_path):
    # the recorded config does not exist here: the mmseg numbers of the size in its name
    sweep = _sweep(tmp_path / "s", "configs/segnext_mscan-t_ade20k.yaml")
    ref = _ref(sweep)
    assert (ref["ss"], ref["msflip"], ref["ss_range"]) == (41.5, 42.59, None)
    assert ref["source"] == "mmseg README numbers for SegNeXt-T (inferred from the config name)"
    # a real config without a reference section: the SegNeXt-L fallback
    sweep = _sweep(tmp_path / "l", str(_without_reference(tmp_path)))
    ref = _ref(sweep)
    assert (ref["ss"], ref["ss_range"]) == (50.99, [49.6, 51.0])
    assert ref["source"] == ("SegNeXt-L defaults (model size not recognisable from the config "
                             "name)")
    # the demo config says there is nothing to compare with: no numbers, its source named
    ref = _ref(_sweep(tmp_path / "d", str(ROOT / "configs" / "demo_mnist.yaml")))
    assert (ref["ss"], ref["msflip"]) == (None, None) and ref["source"].startswith("MNIST-derived demo data")


def _without_reference(tmp_path):
    """The demo config with its reference section cut off (a config that has none)."""
    text = (ROOT / "configs" / "demo_mnist.yaml").read_text()
    path = tmp_path / "demo_no_reference.yaml"
    path.write_text(text[:text.index("\nreference:")] + "\n")
    return path


def test_command_line_values_win(tmp_path, monkeypatch):
    sweep = _sweep(tmp_path / "s", "configs/segnext_mscan-b_ade20k.yaml")
    ref = _ref(sweep, "--reference", "47.5")
    assert (ref["ss"], ref["msflip"]) == (47.5, 49.68)
    assert ref["source"] == ("command-line values + mmseg README numbers for SegNeXt-B (inferred "
                             "from the config name)")
    # ... also over a config's section (stubbed here, so this runs without the config field)
    monkeypatch.setattr(report_reference, "sweep_config_reference",
                        lambda sweep: Reference(83.2, 83.9, None, "stub section"))
    ref = _ref(sweep, "--reference-msflip", "84.5", "--reference-range", "82,83")
    assert (ref["ss"], ref["msflip"], ref["ss_range"]) == (83.2, 84.5, [82.0, 83.0])
    assert ref["source"] == "command-line values + stub section"


def test_precedence_without_the_config_field(tmp_path, monkeypatch):
    sweep = _sweep(tmp_path / "s", "configs/segnext_mscan-l_ade20k.yaml")
    monkeypatch.setattr(report_reference, "sweep_config_reference",
                        lambda sweep: Reference(None, 70.0, None, "stub section"))
    ref = _ref(sweep)  # a section with values replaces the defaults entirely
    assert (ref["ss"], ref["msflip"], ref["ss_range"]) == (None, 70.0, None)
    md = (sweep / "out" / "report.md").read_text()
    assert "* reference: ss –, ms+flip 70.00 (stub section)" in md
    monkeypatch.setattr(report_reference, "sweep_config_reference",
                        lambda sweep: Reference(None, None, None, ""))
    assert _ref(sweep)["ss"] == 50.99  # a section that states nothing: the defaults


def test_sweep_config_reference_section(tmp_path):
    cfg = tmp_path / "segnext_l_cityscapes.yaml"
    cfg.write_text(CITYSCAPES)
    ref = _ref(_sweep(tmp_path / "s", str(cfg)))
    assert (ref["ss"], ref["msflip"], ref["ss_range"]) == (83.2, 83.9, None)
    assert ref["source"] == f"SegNeXt paper, Table 5 (Cityscapes val) (reference section of {cfg})"
    # the sweep's --cfg-options apply, and a range is read as [LO, HI]
    ref = _ref(_sweep(tmp_path / "o", str(cfg), ["reference.ss_range=[82.5,83.5]"]))
    assert ref["ss_range"] == [82.5, 83.5]


def test_repository_configs_need_no_typing(tmp_path):
    # the case: a Cityscapes sweep compares with the paper's number by itself
    cfg = "configs/segnext_l_cityscapes.yaml"  # relative: found against the repository too
    ref = _ref(_sweep(tmp_path / "c", cfg))
    assert (ref["ss"], ref["msflip"], ref["ss_range"]) == (83.2, 83.9, None)
    assert ref["source"].endswith(f"(reference section of {ROOT / cfg})") or \
        ref["source"].endswith(f"(reference section of {cfg})")
    # a section that says there is no published number: nothing to compare with, not ADE20K's
    ref = _ref(_sweep(tmp_path / "p", str(ROOT / "configs" / "segnext_l_voc12aug.yaml")))
    assert (ref["ss"], ref["msflip"], ref["ss_range"]) == (None, None, None)
    assert ref["source"].startswith("no published val number")
    md = (tmp_path / "p" / "out" / "report.md").read_text()
    assert "## Where the reported number falls" not in md


def test_reference_from_config(tmp_path):
    cfg = tmp_path / "cityscapes.yaml"
    cfg.write_text(CITYSCAPES)
    sweep = _sweep(tmp_path / "s", str(ROOT / "configs" / "segnext_l.yaml"))
    assert _ref(sweep)["ss"] == 50.99  # the sweep's own config
    ref = _ref(sweep, "--reference-from", str(cfg))
    assert (ref["ss"], ref["msflip"]) == (83.2, 83.9) and str(cfg) in ref["source"]
    ref = _ref(sweep, "--reference-from", str(cfg), "--reference", "80")
    assert (ref["ss"], ref["msflip"]) == (80.0, 83.9)
    assert ref["source"].startswith("command-line values + SegNeXt paper")


def test_reference_from_errors(tmp_path, capsys):
    sweep = _sweep(tmp_path / "s", "configs/segnext_mscan-l_ade20k.yaml")
    assert report.main([str(sweep), "--reference-from", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: config file not found") and "\n" not in err
    plain = _without_reference(tmp_path)
    assert report.main([str(sweep), "--reference-from", str(plain)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(plain) in err and "no reference values" in err


def test_broken_sweep_config_is_a_warning(tmp_path):
    cfg = tmp_path / "segnext_mscan-s_broken.yaml"
    cfg.write_text("train: {max_iters: -5}\n")
    sweep = _sweep(tmp_path / "s", str(cfg))
    out = sweep / "out"
    assert report.main([str(sweep), "--out", str(out)]) == 0
    data = json.loads((out / "report.json").read_text())
    assert data["reference"]["ss"] == 44.16  # the SegNeXt-S defaults
    assert any("could not be read for its reference values" in w and str(cfg) in w
               for w in data["warnings"])


def test_each_published_value_is_shown_with_its_source(tmp_path):
    """SegNeXt-T on ADE20K: mmseg 41.50 is the reference, the paper's 41.1 and the original README's
    41.4 / 42.2 are listed beside it with their sources and placed among the seeds."""
    sweep = _sweep(tmp_path / "t", str(ROOT / "configs" / "segnext_t.yaml"))
    (sweep / "seed_1").mkdir()
    (sweep / "seed_1" / "result.json").write_text(json.dumps({
        "seed": 1, "config": str(ROOT / "configs" / "segnext_t.yaml"), "checkpoint": None, "final_loss": None,
        "train_log": None, "eval": [{"eval_seed": 1, "mode": "ss", "mIoU": 41.2},
                                    {"eval_seed": 1, "mode": "msflip", "mIoU": 42.0}]}))
    ref = _ref(sweep)
    assert ref["ss"] == 41.5 and "mmseg" in ref["source"]
    assert [(o["ss"], o["msflip"]) for o in ref["others"]] == [(41.1, None), (41.4, 42.2)]
    md = (sweep / "out" / "report.md").read_text()
    head = md.split("## Runs")[0]
    assert "* other published value: single-scale 41.10 (SegNeXt paper" in head
    assert "* other published value: single-scale 41.40, ms+flip 42.20 (original repo README" in head
    assert "Other published value 41.10 (SegNeXt paper" in md and "Other published value 42.20" in md
    # a config without others: no key, no line (reports read as before)
    ref = _ref(_sweep(tmp_path / "c", "configs/segnext_l_cityscapes.yaml"))
    assert "others" not in ref
    assert "other published" not in (tmp_path / "c" / "out" / "report.md").read_text()
