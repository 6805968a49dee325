"""What a weight array may be: the one dtype policy of every checkpoint read (eval, infer, convert,
freeze, backbone init, resume).

* float32: as is. float16 / float64: converted to float32 after a range check (a float64 1e300 would
  become inf silently), with one note line for the whole file.
* integers: only for BatchNorm's `num_batches_tracked` counters.
* bool, complex, strings, objects, and integers anywhere else: refused, naming the key.
* NaN / inf after the conversion: refused (a NaN weight evaluates to a plausible but wrong mIoU)
  unless the caller asks to inspect such a file (`allow_nonfinite`, tools/eval.py --allow-nonfinite).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Tuple

import numpy as np

from ..errors import CheckpointFormatError
from .limits import printable

FLOAT32_MAX = float(np.finfo(np.float32).max)
COUNTER_SUFFIX = "num_batches_tracked"


class NonFiniteCheckpointError(CheckpointFormatError):
    """The file holds NaN or inf weights (a diverged run)."""


def _describe(keys: List[str], limit: int = 3) -> str:
    shown = ", ".join(f"'{printable(k)}'" for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _checked(key: str, array: np.ndarray, path: str) -> Tuple[np.ndarray, bool]:
    """(array under the policy, whether it was converted); CheckpointFormatError if refused."""
    kind = array.dtype.kind
    if key.endswith(COUNTER_SUFFIX) and kind in "iu":
        return array, False
    if kind != "f":
        expected = "an integer counter" if key.endswith(COUNTER_SUFFIX) else "float32 (float16/float64 converted)"
        raise CheckpointFormatError(f"{path}: '{printable(key)}' has dtype {array.dtype}; expected {expected}")
    if array.dtype == np.float32:
        return array, False
    finite = array[np.isfinite(array)]
    if finite.size and float(np.abs(finite).max()) > FLOAT32_MAX:
        raise CheckpointFormatError(f"{path}: '{printable(key)}' ({array.dtype}) holds values up to "
                                    f"{float(np.abs(finite).max()):.3g}, beyond float32's range ({FLOAT32_MAX:.3g})")
    return array.astype(np.float32), True


def apply_dtype_policy(arrays: Mapping[str, np.ndarray], path: str, allow_nonfinite: bool = False,
                       ) -> Tuple[Dict[str, np.ndarray], List[str]]:
    """(arrays under the policy, note lines). Raises CheckpointFormatError / NonFiniteCheckpointError."""
    out: Dict[str, np.ndarray] = {}
    converted: Dict[str, List[str]] = {}
    for key, array in arrays.items():
        out[key], was_converted = _checked(key, array, path)
        if was_converted:
            converted.setdefault(str(array.dtype), []).append(key)
    bad = [k for k, a in out.items() if a.dtype.kind == "f" and not np.isfinite(a).all()]
    if bad and not allow_nonfinite:
        raise NonFiniteCheckpointError(
            f"{path}: NaN/inf in {len(bad)} array(s) ({_describe(bad)}), a diverged or damaged file; refused "
            "(tools/eval.py --allow-nonfinite evaluates it anyway, to inspect it)")
    notes = [f"{path}: converted {len(keys)} {dtype} array(s) to float32 ({_describe(keys)}), values in range"
             for dtype, keys in converted.items()]
    if bad:
        notes.append(f"{path}: loaded with NaN/inf in {_describe(bad)} (--allow-nonfinite)")
    return out, notes
