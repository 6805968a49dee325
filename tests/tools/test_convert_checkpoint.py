"""tools/convert_checkpoint.py: a fixture to native .npz, an original-release file to a backbone-only
file, a bad output name and a malicious input refused."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import _torch_writer as tw
from helpers import (ROOT, TINY_DIR, FakeModel, as_tensors, bits_equal, payloads, tiny_state_dict,
                     to_orig_names, write_malicious)

from segnext_jt.io import count_parameters, load_checkpoint, load_npz, read_any_checkpoint

pytestmark = pytest.mark.slow  # every test runs tools/convert_checkpoint.py in a subprocess (tests/README.md)


TOOL = ROOT / "tools" / "convert_checkpoint.py"


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=300)


def test_convert_tool_on_fixture(tmp_path: Path) -> None:
    out = tmp_path / "tiny.npz"
    result = run_tool(str(TINY_DIR / "checkpoint.pth"), str(out))
    assert result.returncode == 0, result.stderr
    sd = tiny_state_dict()
    assert "source: mmseg" in result.stdout
    assert f"tensors: {len(sd)}" in result.stdout
    assert f"parameters: {count_parameters(sd):,}" in result.stdout
    arrays, meta = load_npz(out)
    assert list(arrays) == ["state_dict/" + k for k in sd]
    assert all(bits_equal(arrays["state_dict/" + k], v) for k, v in sd.items())
    assert meta["checkpoint_kind"] == "model" and meta["converted_from"]["source"] == "mmseg"
    assert meta["checkpoint_meta"]["seed"] == 0
    got, _, source = read_any_checkpoint(out)
    assert source == "native" and list(got) == list(sd)


def test_convert_tool_orig_backbone_only_and_bad_output(tmp_path: Path) -> None:
    orig = tmp_path / "orig.pth"
    tw.write_zip(str(orig), {"state_dict": as_tensors(to_orig_names(tiny_state_dict()))})
    out = tmp_path / "bb.npz"
    result = run_tool(str(orig), str(out), "--backbone-only")
    assert result.returncode == 0, result.stderr
    assert "source: orig" in result.stdout and "renamed: " in result.stdout and ".mlp.dwconv.dwconv." in result.stdout
    # a backbone-only native file loads like a pretrain file: backbone keys only, non-strict
    model = FakeModel.from_keys(TINY_DIR)
    report = load_checkpoint(model, out, strict=True, logger=None)
    assert report.ok and all(k.startswith("backbone.") for k in report.loaded)
    assert (model.params["decode_head.conv_seg.weight"] == -7).all()

    bad = run_tool(str(TINY_DIR / "checkpoint.pth"), str(tmp_path / "out.pth"))
    assert bad.returncode == 2 and ".npz" in bad.stderr
    assert not (tmp_path / "out.pth").exists()
    evil = tmp_path / "evil.pth"
    write_malicious("zip", evil, payloads(tmp_path / "pwned")["os.system"])
    refused = run_tool(str(evil), str(tmp_path / "evil.npz"))
    assert refused.returncode == 1 and "refused" in refused.stderr
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "evil.npz").exists()
