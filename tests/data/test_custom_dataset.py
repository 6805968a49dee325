"""data.dataset: custom -- your own folders and class names, through training, evaluation and
inference; and the one-line errors for wrong labels, class counts and class files."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT, TINY_TRAIN_OVERRIDES

from segnext_jt import ConfigError, load_config
from segnext_jt.data.build import build_dataset
from segnext_jt.data.custom import generated_palette
from segnext_jt.errors import DataError

EXAMPLE = os.path.join(ROOT, "configs", "custom_example.yaml")
NAMES = ("sky", "grass", "rock")  # not the example config's names: they must come from classes.txt
ENV = dict(os.environ, SEGNEXT_DEVICE="cpu")


def _scene(rng: np.random.Generator, h: int = 48, w: int = 64):
    """An image of three colour bands (one per class) with noise, its mask, and an ignored corner."""
    label = np.zeros((h, w), np.uint8)
    cut1, cut2 = int(rng.integers(12, 24)), int(rng.integers(36, 52))
    label[:, cut1:cut2], label[:, cut2:] = 1, 2
    colours = np.array([[70, 130, 200], [60, 170, 60], [140, 120, 100]], np.float32)
    img = colours[label] + rng.normal(0, 12, (h, w, 3))
    label[:4, :4] = 255
    return np.clip(img, 0, 255).astype(np.uint8), label


def make_custom_tree(root, n_train: int = 6, n_val: int = 2, classes=NAMES):
    """root/imgs/{train,val}/*.jpg, root/masks/{train,val}/*.png, root/classes.txt."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        os.makedirs(root / "imgs" / split)
        os.makedirs(root / "masks" / split)
        for i in range(n):
            img, label = _scene(rng)
            Image.fromarray(img).save(root / "imgs" / split / f"scene_{i}.jpg", quality=95)
            Image.fromarray(label).save(root / "masks" / split / f"scene_{i}.png")
    (root / "classes.txt").write_text("".join(f"{name}\n" for name in classes) + "\n")
    return root


def _options(root, *extra):
    return TINY_TRAIN_OVERRIDES + [f"data.root={root}", "data.classes=classes.txt", *extra]


@pytest.mark.slow
def test_custom_dataset_trains_evaluates_and_reports_its_class_names(tmp_path):
    from segnext_jt.engine.trainer import Trainer
    from segnext_jt.evaluation.run import run_evaluation
    root = make_custom_tree(tmp_path / "my_data")
    cfg = load_config(EXAMPLE, _options(root))
    work = tmp_path / "work"
    result = Trainer(cfg, str(work), seed=0, progress=False, logger=lambda *a: None).train()

    lines = [json.loads(line) for line in open(work / "log.json")]
    assert lines[0]["CLASSES"] == list(NAMES)
    val = next(line for line in lines if line.get("mode") == "val")
    assert {f"IoU.{n}" for n in NAMES} <= set(val) and {f"Acc.{n}" for n in NAMES} <= set(val)

    for ms_flip in (False, True):
        summary = run_evaluation(cfg, result.checkpoint, ms_flip=ms_flip, progress=False)
        assert summary["num_images"] == 2 and summary["views_per_image"] == (12 if ms_flip else 1)
        assert list(summary["per_class"]) == list(NAMES) and summary["class_names"] == list(NAMES)
        table_rows = summary["table"].splitlines()
        for name in NAMES:
            assert any(name in row for row in table_rows), f"{name!r} missing from the per-class table"
        assert not any("background" in row for row in table_rows)  # the example config's list is replaced

    # tools/infer.py: class-id PNGs with the generated palette (no data.palette in the config)
    image = root / "imgs" / "val" / "scene_0.jpg"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "infer.py"), str(image), "--config", EXAMPLE,
                           "--checkpoint", result.checkpoint, "--out", str(tmp_path / "pred"),
                           "--cfg-options", *_options(root)], capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pred = np.asarray(Image.open(tmp_path / "pred" / "scene_0.png"))
    assert pred.shape == (48, 64) and set(np.unique(pred).tolist()) <= {0, 1, 2}
    assert (tmp_path / "pred" / "scene_0_overlay.jpg").exists()


def test_classes_from_list_palette_generated_and_deterministic(tmp_path):
    root = make_custom_tree(tmp_path / "d", n_train=2, n_val=1)
    cfg = load_config(EXAMPLE, [f"data.root={root}"])
    ds = build_dataset(cfg.data, "train", 3)
    assert ds.classes == ("background", "road", "building") and len(ds) == 2
    assert ds.palette == generated_palette(3) == generated_palette(3)
    assert len(set(ds.palette)) == 3 and (0, 0, 0) not in ds.palette  # black is the ignore colour
    given = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert build_dataset(load_config(EXAMPLE, [f"data.root={root}", f"data.palette={given}"]).data,
                         "val").palette == tuple(map(tuple, given))
    raw = ds.load_raw(0)
    assert raw.gt_seg[0, 0] == 255 and set(np.unique(raw.gt_seg).tolist()) <= {0, 1, 2, 255}


def test_label_value_out_of_range_names_file_and_value(tmp_path):
    root = make_custom_tree(tmp_path / "d", n_train=2, n_val=1)
    bad = root / "masks" / "train" / "scene_1.png"
    label = np.asarray(Image.open(bad)).copy()
    label[10, 10] = 5  # 3 classes: 0..2
    Image.fromarray(label).save(bad)
    ds = build_dataset(load_config(EXAMPLE, _options(root)).data, "train", 3)
    ds.load_raw(0)  # the good one loads
    with pytest.raises(DataError, match=r"scene_1\.png: label values \[5\] are out of range; expected 0\.\.2 or 255"):
        ds.load_raw(1)
    # with reduce_zero_label the stored 3 becomes class 2 (fine) and the stored 5 becomes 4 (not)
    ds = build_dataset(load_config(EXAMPLE, _options(root, "data.reduce_zero_label=true")).data, "train", 3)
    with pytest.raises(DataError, match=r"scene_1\.png: label values \[4\] are out of range after reduce_zero_label"):
        ds.load_raw(1)


def test_label_map_and_ignore_index_give_class_ids(tmp_path):
    root = make_custom_tree(tmp_path / "d", n_train=1, n_val=1)
    stored = np.array([[10, 20, 30, 99]] * 2, np.uint8)  # 99 marks pixels to ignore
    for split in ("train", "val"):
        Image.new("RGB", (4, 2)).save(root / "imgs" / split / "scene_0.jpg")
        Image.fromarray(stored).save(root / "masks" / split / "scene_0.png")
    opts = _options(root, "data.label_map={10: 0, 20: 1, 30: 2}", "data.ignore_index=99")
    ds = build_dataset(load_config(EXAMPLE, opts).data, "train", 3)
    np.testing.assert_array_equal(ds.load_label(0), [[0, 1, 2, 255]] * 2)
    Image.fromarray(np.array([[10, 40]], np.uint8)).save(root / "masks" / "train" / "scene_0.png")
    with pytest.raises(DataError, match=r"scene_0\.png: stored label values \[40\] are not in data.label_map"):
        ds.load_label(0)
    # without a label map, another ignore value makes a stored 255 an error instead of "ignore"
    Image.fromarray(np.array([[0, 255]], np.uint8)).save(root / "masks" / "train" / "scene_0.png")
    ds = build_dataset(load_config(EXAMPLE, _options(root, "data.ignore_index=99")).data, "train", 3)
    with pytest.raises(DataError, match=r"stored label values \[255\] are not class ids \(the ignore value is 99\)"):
        ds.load_label(0)


@pytest.mark.slow
def test_num_classes_mismatch_is_one_clear_error(tmp_path):
    # classes listed in the config: refused when the config loads
    with pytest.raises(ConfigError, match=r"model.decode_head.num_classes=4 but data.classes lists 3 classes"):
        load_config(EXAMPLE, ["model.decode_head.num_classes=4"])
    # classes in a file: refused when the dataset is built, naming the file
    root = make_custom_tree(tmp_path / "d", n_train=1, n_val=1)
    cfg = load_config(EXAMPLE, _options(root, "model.decode_head.num_classes=4"))
    with pytest.raises(ConfigError, match=r"num_classes=4 but .*/classes\.txt declares 3 classes"):
        build_dataset(cfg.data, "train", cfg.model.decode_head.num_classes)
    # and tools/train.py ends with that one line, exit code 2 (a config problem)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), EXAMPLE, "--work-dir",
                           str(tmp_path / "w"), "--no-progress", "--cfg-options",
                           *_options(root, "model.decode_head.num_classes=4")],
                          capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(root / "classes.txt") in errors[0] and "Traceback" not in proc.stderr


def test_classes_file_problems_name_the_file(tmp_path):
    root = make_custom_tree(tmp_path / "d", n_train=1, n_val=1)
    cfg = load_config(EXAMPLE, _options(root, "data.classes=labels/names.txt"))
    with pytest.raises(DataError, match=rf"{root / 'labels' / 'names.txt'}: classes file not found"):
        build_dataset(cfg.data, "train")
    (root / "classes.txt").write_text("sky\n\ngrass\nrock\n")
    with pytest.raises(DataError, match=r"classes\.txt: line 2 is blank"):
        build_dataset(load_config(EXAMPLE, _options(root)).data, "train")
    (root / "classes.txt").write_text("sky\ngrass\nsky\n")
    with pytest.raises(DataError, match=r"classes\.txt: line 3: class 'sky' appears twice"):
        build_dataset(load_config(EXAMPLE, _options(root)).data, "train")
    absolute = tmp_path / "elsewhere.txt"  # an absolute path is used as it is
    absolute.write_text("a\nb\nc\n")
    ds = build_dataset(load_config(EXAMPLE, _options(root, f"data.classes={absolute}")).data, "val", 3)
    assert ds.classes == ("a", "b", "c")


def test_custom_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"data.classes: dataset 'custom' needs the class names"):
        load_config(EXAMPLE, ["data.classes=null"])
    with pytest.raises(ConfigError, match=r"data.val_dirs: dataset 'custom' needs the folders"):
        load_config(EXAMPLE, ["data.val_dirs=null"])
    with pytest.raises(ConfigError, match=r"data.classes\[2\]: 'road' appears twice"):
        load_config(EXAMPLE, ["data.classes=[background, road, road]"])
    with pytest.raises(ConfigError, match=r"data.palette has 2 colours for 3 classes"):
        load_config(EXAMPLE, ["data.palette=[[0, 0, 0], [1, 1, 1]]"])
    with pytest.raises(ConfigError, match=r"data.train_dirs.ann_dir is required"):
        load_config(EXAMPLE, ["data.train_dirs={img_dir: a, ann_dir: ''}"])


def test_report_names_the_seed_sensitive_classes(tmp_path):
    """repro/report.py's per-class table shows the names the evaluations recorded (class_names)."""
    from segnext_jt.repro.report import command as report
    sweep = tmp_path / "sweep"
    for seed, iou in ((0, [91.0, 40.0, 70.0]), (1, [90.0, 55.0, 71.0]), (2, [92.0, 30.0, 69.0])):
        (sweep / f"seed_{seed}").mkdir(parents=True)
        evals = [{"eval_seed": seed, "mode": "ss", "mIoU": float(np.mean(iou)), "per_class_iou": iou,
                  "class_names": list(NAMES)}]
        (sweep / f"seed_{seed}" / "result.json").write_text(json.dumps(
            {"seed": seed, "config": EXAMPLE, "checkpoint": None, "final_loss": None, "eval": evals}))
    assert report.main([str(sweep), "--reference", "70.0"]) == 0
    rows = json.loads((sweep / "report.json").read_text())["per_class_iou_sd_top10"]
    assert [(r["class_index"], r["class"]) for r in rows][0] == (1, "grass")  # the largest SD over seeds
    assert "| 1 grass |" in (sweep / "report.md").read_text()


def test_readme_example_config_loads_and_matches_the_committed_one(tmp_path):
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text[text.index("## Train on your own data"):]
    block = section[section.index("```yaml\n") + len("```yaml\n"):]
    (tmp_path / "mine.yaml").write_text(block[:block.index("```")])
    mine, example = load_config(tmp_path / "mine.yaml"), load_config(EXAMPLE)
    assert mine.data.dataset == "custom" and mine.model.decode_head.num_classes == len(mine.data.classes)
    for key in ("root", "classes", "train_dirs", "val_dirs", "img_suffix", "seg_map_suffix"):
        assert getattr(mine.data, key) == getattr(example.data, key), key
    # the keys the README leaves out default to the same SegNeXt-T recipe the example writes out
    assert mine.model.decode_head == example.model.decode_head
    assert mine.model.backbone == dataclasses.replace(example.model.backbone,
                                                      pretrained=mine.model.backbone.pretrained)


@pytest.mark.slow
def test_custom_dataset_through_the_seed_sweep_and_report(tmp_path):
    """Two training seeds of the custom data: result.json carries the declared names and the report's
    seed-sensitive-class table shows them."""
    root = make_custom_tree(tmp_path / "my_data")
    work = tmp_path / "sweep"
    options = _options(root, "train.max_iters=4", "train.eval_interval=4", "train.checkpoint_interval=4")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "repro", "seed_sweep.py"), "--config", EXAMPLE,
                           "--work-dir", str(work), "--seeds", "0..1", "--no-msflip", "--no-progress",
                           "--cfg-options", *options], capture_output=True, text=True, env=ENV, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((work / "seed_1" / "result.json").read_text())
    assert result["eval"][0]["class_names"] == list(NAMES)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "repro", "report.py"), str(work)],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = (work / "report.md").read_text()
    table = report[report.index("## Most seed-sensitive classes"):]
    assert all(f"| {name} |" in table or f" {name} |" in table for name in NAMES), table[:600]
