"""segnext_jt.io.dtype_policy through every reader: float32 kept, float16/float64 converted after a
range check with one note, integers only for BN counters, everything else refused naming the key,
NaN/inf refused after the conversion unless asked for (--allow-nonfinite)."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import CLI_ENV, DEMO_CFG, run_cli, tiny_state_dict, tool_cmd

from segnext_jt.errors import CheckpointFormatError
from segnext_jt.io import read_checkpoint, save_npz
from segnext_jt.io.dtype_policy import NonFiniteCheckpointError, apply_dtype_policy


def _npz(tmp_path, arrays, name="w.npz"):
    path = tmp_path / name
    save_npz(path, arrays, {"source": "test"})
    return str(path)


def test_float32_kept_and_other_floats_converted_with_one_note():
    arrays = {"a.weight": np.ones(3, np.float32), "b.weight": np.full(2, 0.5, np.float64),
              "c.weight": np.full(2, 2.0, np.float16), "d.weight": np.zeros(2, np.float64),
              "bn.num_batches_tracked": np.array(7, np.int64)}
    out, notes = apply_dtype_policy(arrays, "f.pth")
    assert all(out[k].dtype == np.float32 for k in ("a.weight", "b.weight", "c.weight", "d.weight"))
    assert out["a.weight"] is arrays["a.weight"] and out["bn.num_batches_tracked"].dtype == np.int64
    assert len(notes) == 2 and "converted 2 float64 array(s) to float32 ('b.weight', 'd.weight')" in notes[0]


@pytest.mark.parametrize("dtype, value", [(np.int8, 1), (np.int64, 3), (np.uint8, 1), (np.bool_, True),
                                          (np.complex64, 1 + 2j), ("<U1", "a"), ("S2", b"ab")])
def test_non_float_weights_are_refused_by_key(dtype, value):
    with pytest.raises(CheckpointFormatError, match=r"f\.pth: 'x\.weight' has dtype .*; expected float32"):
        apply_dtype_policy({"x.weight": np.full(2, value, dtype=dtype)}, "f.pth")
    with pytest.raises(CheckpointFormatError, match="expected an integer counter"):
        apply_dtype_policy({"bn.num_batches_tracked": np.array(True)}, "f.pth")


@pytest.mark.parametrize("value, dtype", [(1e300, np.float64), (-1e39, np.float64)])
def test_values_beyond_float32_are_refused_not_cast_to_inf(value, dtype):
    with pytest.raises(CheckpointFormatError, match="beyond float32's range"):
        apply_dtype_policy({"x.weight": np.array([0.0, value], dtype=dtype)}, "f.pth")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_refused_unless_asked(bad):
    arrays = {"x.weight": np.array([1.0, bad], np.float32), "y.weight": np.array([bad], np.float16)}
    with pytest.raises(NonFiniteCheckpointError, match=r"NaN/inf in 2 array\(s\).*eval.py --allow-nonfinite"):
        apply_dtype_policy(arrays, "f.pth")
    out, notes = apply_dtype_policy(arrays, "f.pth", allow_nonfinite=True)
    assert not np.isfinite(out["x.weight"]).all() and any("loaded with NaN/inf" in n for n in notes)


def test_every_reader_applies_it(tmp_path):
    sd = {k: v for k, v in tiny_state_dict().items()}
    key = next(k for k, v in sd.items() if v.dtype == np.float32 and v.size > 1)
    sd[key] = sd[key].astype(np.float64)
    sd[key].flat[0] = np.nan
    path = _npz(tmp_path, sd)
    with pytest.raises(NonFiniteCheckpointError, match=key.replace(".", r"\.")):
        read_checkpoint(path)
    assert read_checkpoint(path, allow_nonfinite=True).state_dict[key].dtype == np.float32


@pytest.mark.slow
def test_tools_refuse_a_nan_checkpoint_in_one_line(tmp_path, tiny_checkpoint, tiny_train_options):
    from segnext_jt.io import load_npz
    arrays, meta = load_npz(tiny_checkpoint)
    key = next(k for k, v in arrays.items() if v.dtype == np.float32 and v.size > 1)
    arrays[key] = arrays[key].copy()
    arrays[key].flat[0] = np.nan
    bad = tmp_path / "nan.npz"
    save_npz(bad, arrays, meta)
    for cmd in ([*tool_cmd("tools", "eval.py"), DEMO_CFG, str(bad), "--no-progress", "--cfg-options",
                 *tiny_train_options],
                [*tool_cmd("tools", "convert_checkpoint.py"), str(bad), str(tmp_path / "out.npz")],
                [*tool_cmd("tools", "freeze_nmf_bases.py"), str(bad), str(tmp_path / "frozen.npz")]):
        proc = run_cli(cmd, env=CLI_ENV)
        err = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert proc.returncode == 1 and len(err) == 1 and "NaN/inf" in err[0], (cmd, proc.stderr[-1500:])
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out.npz").exists() and not (tmp_path / "frozen.npz").exists()
    proc = run_cli([*tool_cmd("tools", "eval.py"), DEMO_CFG, str(bad), "--no-progress", "--allow-nonfinite",
                    "--cfg-options", *tiny_train_options], env=CLI_ENV)
    assert proc.returncode == 0 and "loaded with NaN/inf" in proc.stderr, proc.stderr[-1500:]
