"""Helpers shared by the tests: paths, the reference fixtures, tiny models, checkpoint builders, command
lines. Pytest fixtures live in tests/conftest.py, which also puts tests/ on sys.path, so that a test
module in any subdirectory imports these as `from helpers import ...` (and the torch-format writer as
`import _torch_writer as tw`).

Keep this module light: jittor and segnext_jt are imported inside the functions that need them,
because spawned data-loader workers import the test module (and so this one) of the function they run.
"""
from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

import _torch_writer as tw

# ------------------------------------------------------------------------------------------------
# paths and constants
# ------------------------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"  # reference fixtures made by mmseg 1.2.2 (tests/fixtures/README.md)
LOGS = FIXTURES / "logs"  # synthetic mmseg 0.x / 1.x training logs
CONFIGS = ROOT / "configs"
DEMO_CFG = os.path.join(ROOT, "configs", "demo_mnist.yaml")
TINY = "tiny-test_eval_64x64"  # the tiny reference model's fixture
TINY_DIR = FIXTURES / TINY
BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
METRIC_KEYS = ("mIoU", "mAcc", "aAcc", "per_class_iou")  # what two evaluations must agree on

# environments for the command-line tools run as subprocesses (made after conftest prepared Jittor's)
CPU_ENV = dict(os.environ, SEGNEXT_DEVICE="cpu")
CLI_ENV = dict(CPU_ENV)
CLI_ENV.pop("SEGNEXT_DEBUG", None)  # errors as one line, not a traceback

# a tiny model and schedule for training tests on the demo data (conftest: tiny_train_options)
TINY_TRAIN_OVERRIDES = [
    "model.backbone.embed_dims=[8,16,32,64]", "model.backbone.depths=[1,1,1,1]",
    "model.decode_head.in_channels=[16,32,64]", "model.decode_head.channels=16",
    "model.decode_head.ham_channels=16", "model.decode_head.gn_groups=4", "model.decode_head.ham.md_r=4",
    "data.crop_size=[32,32]", "data.scale=[128,64]", "data.num_workers=0",
    "train.batch_size=2", "train.max_iters=6", "train.eval_interval=6", "train.checkpoint_interval=2",
    "train.log_interval=2", "train.max_keep_checkpoints=10", "train.schedule.warmup_iters=2",
    "eval.scale=[128,64]", "eval.batch_size=1", "eval.num_workers=0",
]


# ------------------------------------------------------------------------------------------------
# reference fixtures and the tiny model
# ------------------------------------------------------------------------------------------------
def fixture_dir(name: str) -> Path:
    return FIXTURES / name


def fixture_config(name: str):
    """A typed Config equal to the reference config recorded in the fixture's meta.json."""
    from segnext_jt.config import config_from_dict
    meta = json.loads((fixture_dir(name) / "meta.json").read_text())
    bb, hd = meta["config"]["backbone"], meta["config"]["decode_head"]
    ham = hd["ham_kwargs"]
    return config_from_dict({"model": {
        "backbone": {"embed_dims": bb["embed_dims"], "depths": bb["depths"], "mlp_ratios": bb["mlp_ratios"],
                     "drop_rate": bb["drop_rate"], "drop_path_rate": bb["drop_path_rate"]},
        "decode_head": {"in_channels": hd["in_channels"], "in_index": hd["in_index"],
                        "channels": hd["channels"], "ham_channels": hd["ham_channels"],
                        "num_classes": hd["num_classes"], "dropout_ratio": hd["dropout_ratio"],
                        "gn_groups": hd["norm_cfg"]["num_groups"],
                        "ham": {"md_s": ham["MD_S"], "md_r": ham["MD_R"], "train_steps": ham["train_steps"],
                                "eval_steps": ham["eval_steps"], "rand_init": ham["rand_init"]}}}},
        source=f"fixture {name}")


def fixture_model(name: str):
    """The fixture's model with its checkpoint.pth loaded through our torch-free reader."""
    from segnext_jt import build_segmentor, load_checkpoint
    model = build_segmentor(fixture_config(name))
    load_checkpoint(model, fixture_dir(name) / "checkpoint.pth", strict=True, logger=lambda *a: None)
    return model


def assert_close_fwd(got, ref, what: str) -> None:
    """Fixture README rule for forward arrays: max|got-ref| <= 1e-4 * max|ref| + 1e-5."""
    got = got.numpy() if hasattr(got, "numpy") else np.asarray(got)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != reference {ref.shape}"
    err = float(np.abs(got - ref).max())
    tol = 1e-4 * float(np.abs(ref).max()) + 1e-5
    assert err <= tol, f"{what}: max abs error {err:.3e} > tolerance {tol:.3e}"


def bits_equal(a, b) -> bool:
    """Same dtype, shape and bytes; NumPy arrays or Jittor Vars."""
    a = a.numpy() if hasattr(a, "numpy") else np.asarray(a)
    b = b.numpy() if hasattr(b, "numpy") else np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def random_input(shape, seed: int = 0):
    """A standard-normal float32 jt.Var."""
    import jittor as jt
    return jt.array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


# ------------------------------------------------------------------------------------------------
# tensor-level test-time paths that the parity tests compare with the reference fixtures: the
# evaluator builds its inputs in NumPy (segnext_jt.data.eval_views); these are the same steps on an
# already normalised NCHW batch, as mmseg 1.x's SegDataPreProcessor and predict() run them.
# ------------------------------------------------------------------------------------------------
def pad_bottom_right(x, size_divisor: int, value: float = 0.0):
    """Pad an NCHW batch at the bottom/right to a multiple of `size_divisor` (mmseg 1.x
    SegDataPreProcessor pads after normalisation, with 0)."""
    from jittor import nn
    h, w = x.shape[2:]
    ph = math.ceil(h / size_divisor) * size_divisor - h
    pw = math.ceil(w / size_divisor) * size_divisor - w
    if ph == 0 and pw == 0:
        return x
    return nn.pad(x, [0, pw, 0, ph], mode="constant", value=value)


def predict_logits(model, x, pipeline: str = "stretch", size_divisor: int = 32,
                   nmf_keys=None, nmf_bases=None, mode: str = "whole",
                   crop_size: Sequence[int] = (512, 512), stride: Sequence[int] = (341, 341)):
    """Logits at the size of the (already resized and normalised) input `x`.

    'pad': pad to a multiple of size_divisor, predict, logits resized to the padded size, crop.
    'stretch': the input is already a multiple of 32 (ResizeToMultiple), predict directly."""
    h, w = x.shape[2:]
    if pipeline == "pad":
        x = pad_bottom_right(x, size_divisor)
    elif pipeline != "stretch":
        raise ValueError(f"pipeline must be 'stretch' or 'pad', got {pipeline!r}")
    if mode == "whole":
        logits = model.encode_decode(x, nmf_keys, nmf_bases)
    else:
        if nmf_bases is not None:
            raise ValueError("injected NMF bases are only supported in whole mode")
        logits = model.predict(x, nmf_keys, mode=mode, crop_size=crop_size, stride=stride)
    return logits[:, :, :h, :w] if tuple(logits.shape[2:]) != (h, w) else logits


def eval_demo(opts, ckpt, *extra, **kw):
    """run_evaluation of `ckpt` under configs/demo_mnist.yaml with the options `opts` + `extra`."""
    from segnext_jt import load_config
    from segnext_jt.evaluation.run import run_evaluation
    return run_evaluation(load_config(DEMO_CFG, list(opts) + list(extra)), ckpt, progress=False, **kw)


# ------------------------------------------------------------------------------------------------
# checkpoints: the tiny fixture's state dict, other key namings, a duck-typed model, hostile pickles
# ------------------------------------------------------------------------------------------------
def key_list(folder: Path) -> List[Tuple[str, Tuple[int, ...], str]]:
    data = json.loads((folder / "state_dict_keys.json").read_text())
    return [(k, tuple(shape), dtype) for k, shape, dtype in data["keys"]]


_SD_CACHE: Dict[str, "OrderedDict[str, np.ndarray]"] = {}


def tiny_state_dict() -> "OrderedDict[str, np.ndarray]":
    """A fresh copy of the tiny fixture's checkpoint.pth state dict."""
    from segnext_jt.io import read_torch_checkpoint
    if "tiny" not in _SD_CACHE:
        _SD_CACHE["tiny"] = read_torch_checkpoint(TINY_DIR / "checkpoint.pth")["state_dict"]
    return OrderedDict((k, v.copy()) for k, v in _SD_CACHE["tiny"].items())


def to_orig_names(sd: Dict[str, np.ndarray]) -> "OrderedDict[str, np.ndarray]":
    """The original SegNeXt release's key names (`.mlp.dwconv.dwconv.`)."""
    return OrderedDict((k.replace(".mlp.dwconv.", ".mlp.dwconv.dwconv."), v) for k, v in sd.items())


def as_tensors(sd: Dict[str, np.ndarray]) -> "OrderedDict[str, Any]":
    return OrderedDict((k, tw.tensor(v)) for k, v in sd.items())


class FakeModel:
    """Duck-typed stand-in for a Jittor Module: state_dict() / load_state_dict() over numpy arrays."""

    def __init__(self, spec: Dict[str, Tuple[Tuple[int, ...], str]]) -> None:
        self.params = OrderedDict((k, np.full(shape, -7, dtype=dtype)) for k, (shape, dtype) in spec.items())
        self.load_calls = 0

    @classmethod
    def from_keys(cls, folder: Path, drop_nbt: bool = False) -> "FakeModel":
        return cls({k: (s, d) for k, s, d in key_list(folder) if not (drop_nbt and k.endswith("num_batches_tracked"))})

    def state_dict(self) -> Dict[str, np.ndarray]:
        return dict(self.params)

    def load_state_dict(self, sd: Dict[str, np.ndarray]) -> None:
        self.load_calls += 1
        for k, v in sd.items():
            assert k in self.params, k
            assert isinstance(v, np.ndarray) and v.shape == self.params[k].shape, k
            self.params[k] = v


class Reduce:
    """Pickles as `func(*args)` (+ BUILD `state` if given), whatever `func` is: the classic pickle
    exploit, and hand-made numpy pickles."""

    def __init__(self, func: Any, args: Tuple[Any, ...], state: Any = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self) -> Any:
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def payloads(sentinel: Path) -> Dict[str, Reduce]:
    """Pickle payloads that each create `sentinel` when unpickled by plain pickle."""
    import builtins
    import subprocess as sp

    return {
        "os.system": Reduce(os.system, (f"touch {shlex.quote(str(sentinel))}",)),
        "builtins.eval": Reduce(builtins.eval, (f"__import__('os').system('touch {sentinel}')",)),
        "subprocess.call": Reduce(sp.call, (["touch", str(sentinel)],)),
    }


def write_malicious(kind: str, path: Path, payload: Reduce) -> None:
    """A torch zip / torch legacy / JSeg .pkl checkpoint with `payload` in its meta."""
    weights = {"backbone.norm1.weight": np.ones(4, np.float32)}
    if kind == "zip":
        tw.write_zip(str(path), {"state_dict": as_tensors(weights), "meta": {"evil": payload}})
    elif kind == "legacy":
        tw.write_legacy(str(path), {"state_dict": as_tensors(weights), "meta": {"evil": payload}})
    else:
        tw.jseg_save(str(path), {"model": weights, "meta": {"evil": payload}})


# ------------------------------------------------------------------------------------------------
# command-line tools and repro scripts run as subprocesses
# ------------------------------------------------------------------------------------------------
def tool_cmd(*parts) -> List[str]:
    """`python ROOT/<parts>`, e.g. tool_cmd("tools", "eval.py")."""
    return [sys.executable, os.path.join(ROOT, *parts)]


def run_cli(cmd, env=CLI_ENV, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=str(ROOT))


# What Jittor itself writes to stderr: its log lines ("[i ...", "[w ...") and the parallel kernel
# compiler's progress ("Compiling Operators(i/n) used: ...", rewritten with \r), shown whenever kernels
# compile for more than 2 s, e.g. on a fresh cache. Tests of "one line" messages count the others.
JITTOR_STDERR_PREFIXES = ("[i ", "[w ", "Compiling Operators(")


def our_stderr_lines(err: str) -> List[str]:
    """The non-blank lines of `err` that are not Jittor's own (see JITTOR_STDERR_PREFIXES)."""
    return [ln for ln in (x.strip() for x in err.splitlines()) if ln and not ln.startswith(JITTOR_STDERR_PREFIXES)]


def one_error_line(proc, *needles, code=2) -> None:
    """The process failed with exit `code` and one `error: ` line on stderr containing each needle."""
    err = proc.stderr.strip()
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], err[-2000:])
    assert "Traceback" not in err, err
    lines = our_stderr_lines(err)
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for needle in needles:
        assert str(needle) in lines[0], (needle, err)


def sweep_cmd(work, options, *args) -> List[str]:
    """repro/seed_sweep.py on configs/demo_mnist.yaml with `options` as --cfg-options."""
    return [sys.executable, os.path.join(ROOT, "repro", "seed_sweep.py"), "--config", DEMO_CFG, "--work-dir",
            str(work), "--no-progress", *args, "--cfg-options", *options]


def parse_svg(text: str) -> ET.Element:
    """Parse an SVG 1.1 document written by segnext_jt/repro/report/svg.py."""
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("version") == "1.1"
    return root


# ---------------------------------------------------------------------------- training runs
TIMING_KEYS = {"time", "data_time", "memory"}  # log.json keys that differ between identical runs


def strict_json(text):
    """json.loads that refuses NaN/Infinity (what a strict JSON parser would do)."""
    def refuse(token):
        raise ValueError(f"non-standard JSON constant {token}")
    return json.loads(text, parse_constant=refuse)


def log_records(work):
    """All records of <work>/log.json, parsed as strict JSON."""
    return [strict_json(line) for line in open(work / "log.json") if line.strip()]


def lines_without_timing(work):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in log_records(work)[1:]]


def demo_trainer(tmp_path, options, name, seed=0, **kw):
    """A Trainer on the demo config with `options`, in tmp_path/name, quiet unless given a logger."""
    from segnext_jt import load_config
    from segnext_jt.engine.trainer import Trainer
    cfg = load_config(DEMO_CFG, options)
    return Trainer(cfg, str(tmp_path / name), seed=seed, progress=False, logger=kw.pop("logger", lambda *a: None),
                   **kw)
