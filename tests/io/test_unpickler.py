"""segnext_jt.io.unpickler, the restricted unpickler under every reader: code-execution pickles are
refused (and shown to be live with plain pickle), allowed callables cannot be modified, and numpy >= 2
or protocol-2 spellings of plain arrays still load. Hostile files of every other kind:
tests/io/test_hostile.py."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

import _torch_writer as tw
from helpers import FakeModel, bits_equal, payloads, write_malicious

from segnext_jt.errors import CheckpointFormatError, UnsafeCheckpointError
from segnext_jt.io import load_checkpoint, read_any_checkpoint, read_jittor_pickle, read_torch_checkpoint
from segnext_jt.io import torch_tensors


def test_numpy2_module_spelling_and_protocol2_bytes(tmp_path: Path) -> None:
    # numpy >= 2 pickles name `numpy._core.multiarray`; protocol 2 spells bytes via `_codecs.encode`.
    weights = {"backbone.norm1.weight": np.arange(4, dtype=np.float32), "n": np.float64(2.5)}
    data = pickle.dumps({"model": weights}, protocol=2)
    assert b"numpy.core.multiarray\n" in data and b"_codecs\nencode\n" in data
    path = tmp_path / "np2.pkl"
    path.write_bytes(data.replace(b"numpy.core.multiarray\n", b"numpy._core.multiarray\n"))
    out = read_jittor_pickle(path)["model"]
    assert bits_equal(out["backbone.norm1.weight"], weights["backbone.norm1.weight"])
    assert out["n"] == 2.5 and out["n"].dtype == np.float64


# ---------------------------------------------------------------------------------------------------
# malicious pickles
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["zip", "legacy", "pkl"])
@pytest.mark.parametrize("payload_name", ["os.system", "builtins.eval", "subprocess.call"])
def test_malicious_checkpoint_is_refused(kind: str, payload_name: str, tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    path = tmp_path / f"evil.{'pkl' if kind == 'pkl' else 'pth'}"
    write_malicious(kind, path, payloads(sentinel)[payload_name])
    reader = read_jittor_pickle if kind == "pkl" else read_torch_checkpoint
    with pytest.raises(UnsafeCheckpointError) as info:
        reader(path)
    message = str(info.value)
    assert str(path) in message
    refused = {"os.system": ("posix.system", "os.system", "nt.system"),
               "builtins.eval": ("builtins.eval",), "subprocess.call": ("subprocess.call",)}[payload_name]
    assert any(name in message for name in refused), message
    with pytest.raises(UnsafeCheckpointError):
        read_any_checkpoint(path)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(FakeModel({}), path, logger=None)
    assert not sentinel.exists()


def test_malicious_payload_is_live_with_plain_pickle(tmp_path: Path) -> None:
    # Proves the refusal tests above are meaningful: the same bytes do run code with pickle.loads.
    sentinel = tmp_path / "pwned"
    data = pickle.dumps(payloads(sentinel)["os.system"], protocol=2)
    pickle.loads(data)
    assert sentinel.exists()


def test_handwritten_reduce_pickle_in_zip_is_refused(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    cmd = f"touch {sentinel}".encode()
    evil = (b"\x80\x02cos\nsystem\n(X" + len(cmd).to_bytes(4, "little") + cmd + b"tR.")
    path = tmp_path / "evil.pth"
    tw.write_zip(str(path), {}, data_pkl=evil)
    with pytest.raises(UnsafeCheckpointError, match=r"os\.system"):
        read_torch_checkpoint(path)
    assert not sentinel.exists()


def test_allowed_callables_cannot_be_modified_by_build(tmp_path: Path) -> None:
    # GLOBAL rebuild fn; BUILD (None, {'qualname': 'hacked'}) would setattr on our function object.
    state = b"N}X\x08\x00\x00\x00qualnameX\x06\x00\x00\x00hackeds\x86b."
    evil = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n" + state
    path = tmp_path / "build.pth"
    tw.write_zip(str(path), {}, data_pkl=evil)
    with pytest.raises(CheckpointFormatError):
        read_torch_checkpoint(path)
    fn = torch_tensors.torch_globals()[("torch._utils", "_rebuild_tensor_v2")]
    assert fn.qualname == "torch._utils._rebuild_tensor_v2"
