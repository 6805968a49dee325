"""Read any supported SegNeXt checkpoint, normalise it to mmseg 1.x keys, and load it into a model.

Supported inputs (detected from the file content, not the extension):

| source              | file                                                       |
| ------------------- | ---------------------------------------------------------- |
| `mmseg`             | torch zip/legacy `{'meta', 'state_dict'}`, mmseg 0.x/1.x keys |
| `orig`              | same container, `mlp.dwconv.dwconv.*` keys (SegNeXt repo)  |
| `jseg`              | `jt.save` pickle `{'meta', 'model', ...}`, no `num_batches_tracked` |
| `backbone_pretrain` | ImageNet MSCAN weights: keys without `backbone.`, maybe a `head.*` classifier |
| `native`            | our `.npz` (see `native.py`)                               |

Normalisation (docs/design.md §1.5): strip `module.`; rename `.mlp.dwconv.dwconv.` -> `.mlp.dwconv.`; add a 0-d
int64 `num_batches_tracked` = 0 next to every BN `running_mean` lacking one; for backbone pretrain files
drop `head.*` and prefix `backbone.` (the MSCAN-specific maps: models/mscan_keys.py).

`load_checkpoint` is duck-typed: `model.state_dict()` -> {name: object with `.shape` (and `.dtype`)},
`model.load_state_dict({name: numpy array})`. A Jittor Module satisfies both.
"""
from __future__ import annotations

import math
import os
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import CheckpointFormatError, CheckpointMismatchError
from ..models import mscan_keys
from .reading import ensure_file, names_file
from .limits import printable, short_repr, to_jsonable
from .dtype_policy import apply_dtype_policy
from .native import FROZEN_BASES_KEY, STATE_DICT_PREFIX, is_native_npz, load_npz
from .torch_pickle import read_jittor_pickle, read_torch_checkpoint, sniff_container

__all__ = [
    "SOURCES",
    "CheckpointContents",
    "MatchReport",
    "LoadReport",
    "read_checkpoint",
    "read_any_checkpoint",
    "normalize_state_dict",
    "match_state_dict",
    "load_checkpoint",
    "count_parameters",
    "to_jsonable",
    "KIND_KEY",
]

SOURCES = ("mmseg", "orig", "jseg", "backbone_pretrain", "native")
# Meta key that native files written by tools/convert_checkpoint.py use to mark backbone-only weights.
KIND_KEY = "checkpoint_kind"

_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
_MODEL_PREFIXES = ("backbone.", "decode_head.", "auxiliary_head.")
_CLASSIFIER = "decode_head.conv_seg.weight"
_LIST_LIMIT = 20


# --------------------------------------------------------------------------------------------------
# Reading and normalising
# --------------------------------------------------------------------------------------------------
@dataclass
class CheckpointContents:
    """A checkpoint after normalisation, with a record of what was changed."""

    path: str
    container: str  # 'torch-zip' | 'torch-legacy' | 'jittor-pickle' | 'native-npz'
    source: str  # one of SOURCES
    state_dict: "OrderedDict[str, np.ndarray]"
    meta: Dict[str, Any]
    backbone_only: bool = False  # load with mmseg `init_cfg=Pretrained` semantics
    renamed: List[Tuple[str, str]] = field(default_factory=list)
    dropped: List[str] = field(default_factory=list)
    added: List[str] = field(default_factory=list)
    stripped_prefix: int = 0  # number of keys that lost a 'module.' prefix
    prefixed: int = 0  # number of pretrain keys that got the 'backbone.' prefix
    notes: List[str] = field(default_factory=list)  # dtype conversions (io.dtype_policy)


def _as_array(key: str, value: Any, path: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, np.generic):
        return np.asarray(value)
    raise CheckpointFormatError(
        f"{path}: state-dict entry '{printable(key)}' is a {type(value).__name__}, expected a tensor/array"
    )


def _unwrap_state_dict(obj: Any, path: str) -> Tuple[Mapping[str, Any], Dict[str, Any]]:
    """Find the weights inside a loaded checkpoint object: {'state_dict'}, {'model'} or a bare dict."""
    if not isinstance(obj, Mapping):
        raise CheckpointFormatError(f"{path}: checkpoint holds a {type(obj).__name__}, expected a dict")
    meta = obj.get("meta")
    meta_dict = to_jsonable(meta) if isinstance(meta, Mapping) else {}
    for wrapper in ("state_dict", "model"):
        inner = obj.get(wrapper)
        if isinstance(inner, Mapping):
            return inner, meta_dict
    if obj and all(isinstance(v, (np.ndarray, np.generic)) for v in obj.values()):
        return obj, {}
    keys = ", ".join(short_repr(k) for k in list(obj)[:10])
    raise CheckpointFormatError(
        f"{path}: no weights found: expected a 'state_dict' or 'model' dict, or a dict of tensors; "
        f"top-level keys are {keys or 'none'}"
    )


def normalize_state_dict(raw: Mapping[str, Any], path: str = "<state_dict>") -> CheckpointContents:
    """Apply the key normalisation to a raw {name: array} mapping.

    Returns contents with `source` set to 'backbone_pretrain' for MSCAN ImageNet layouts, 'orig' when the
    ORIG dwconv naming was found, else 'mmseg'; callers override it for JSeg/native containers.
    """
    items: List[Tuple[str, np.ndarray]] = []
    stripped = 0
    for key, value in raw.items():
        if not isinstance(key, str):
            raise CheckpointFormatError(f"{path}: state-dict key {short_repr(key)} is not a string")
        array = _as_array(key, value, path)
        if key.startswith("module."):  # DataParallel / DistributedDataParallel wrapper
            key = key[len("module."):]
            stripped += 1
        items.append((key, array))

    dropped: List[str] = []
    is_full_model = any(k.startswith(_MODEL_PREFIXES) for k, _ in items)
    # the model-specific key maps live beside the model (models/mscan_keys.py)
    is_backbone = not is_full_model and any(mscan_keys.is_bare_mscan_key(k) for k, _ in items)
    if is_backbone:
        items, dropped = mscan_keys.pretrain_to_segmentor(items)

    renamed: List[Tuple[str, str]] = []
    out: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for key, array in items:
        new_key = mscan_keys.orig_to_mmseg(key)
        if new_key != key:
            renamed.append((key, new_key))
        if new_key in out:
            raise CheckpointFormatError(
                f"{path}: two entries map to '{printable(new_key)}' after normalising keys (e.g. both 'module.x' "
                f"and 'x', or both ORIG and mmseg dwconv names); last one was '{printable(key)}'"
            )
        out[new_key] = array

    out, added = _add_num_batches_tracked(out)
    if is_backbone:
        source = "backbone_pretrain"
    elif renamed:
        source = "orig"
    else:
        source = "mmseg"
    return CheckpointContents(
        path=path, container="", source=source, state_dict=out, meta={}, backbone_only=is_backbone,
        renamed=renamed, dropped=dropped, added=added, stripped_prefix=stripped,
        prefixed=len(items) if is_backbone else 0,
    )


def _add_num_batches_tracked(sd: "OrderedDict[str, np.ndarray]") -> Tuple["OrderedDict[str, np.ndarray]", List[str]]:
    """Insert `<bn>.num_batches_tracked` (0-d int64, 0) for every BN (`running_mean`) that lacks it.

    It goes right after the BN's `running_var` (or `running_mean`), where torch keeps it.
    """
    added: List[str] = []
    out: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for key, value in sd.items():
        out[key] = value
        if key.endswith(".running_var"):
            prefix = key[: -len("running_var")]
            if prefix + "running_mean" not in sd:
                continue  # not a BN we know of
        elif key.endswith(".running_mean"):
            prefix = key[: -len("running_mean")]
            if prefix + "running_var" in sd:
                continue  # handled when running_var comes
        else:
            continue
        nbt = prefix + "num_batches_tracked"
        if nbt not in sd and nbt not in out:
            out[nbt] = np.zeros((), dtype=np.int64)
            added.append(nbt)
    return out, added


def _native_weights(arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    if any(k.startswith(STATE_DICT_PREFIX) for k in arrays):
        return {k[len(STATE_DICT_PREFIX):]: v for k, v in arrays.items() if k.startswith(STATE_DICT_PREFIX)}
    return arrays


def read_checkpoint(path: "str | os.PathLike[str]", allow_nonfinite: bool = False) -> CheckpointContents:
    """Read and normalise a checkpoint, keeping a log of renamed / dropped / added keys; every array
    under the dtype policy (io.dtype_policy: float32, NaN/inf refused unless `allow_nonfinite`)."""
    contents = _read_normalized(path)
    state, contents.notes = apply_dtype_policy(contents.state_dict, contents.path, allow_nonfinite)
    contents.state_dict = OrderedDict(state)
    return contents


@names_file
def _read_normalized(path: "str | os.PathLike[str]") -> CheckpointContents:
    p = ensure_file(path)
    kind = sniff_container(p)
    if kind == "zip":
        if is_native_npz(p):
            arrays, meta = load_npz(p)
            contents = normalize_state_dict(_native_weights(arrays), p)
            contents.container, contents.meta = "native-npz", meta
            contents.backbone_only = contents.backbone_only or meta.get(KIND_KEY) == "backbone"
            contents.source = "native"
            return contents
        obj, container = read_torch_checkpoint(p), "torch-zip"
    elif kind == "torch-legacy":
        obj, container = read_torch_checkpoint(p), "torch-legacy"
    elif kind == "pickle":
        obj, container = read_jittor_pickle(p), "jittor-pickle"
    else:
        with open(p, "rb") as f:
            head = f.read(8)
        raise CheckpointFormatError(
            f"{p}: unrecognised checkpoint format (expected a torch .pth, a JSeg .pkl or a native .npz); "
            f"first bytes are {head!r}"
        )
    weights, meta = _unwrap_state_dict(obj, p)
    contents = normalize_state_dict(weights, p)
    contents.container, contents.meta = container, meta
    if container == "jittor-pickle" and contents.source != "backbone_pretrain":
        contents.source = "jseg"
    return contents


def read_any_checkpoint(path: "str | os.PathLike[str]", allow_nonfinite: bool = False,
                        ) -> Tuple["OrderedDict[str, np.ndarray]", Dict[str, Any], str]:
    """Return (state_dict with mmseg 1.x keys, JSON-able meta, source) for any supported file."""
    contents = read_checkpoint(path, allow_nonfinite)
    return contents.state_dict, contents.meta, contents.source


def count_parameters(state_dict: Mapping[str, np.ndarray]) -> int:
    """Number of learnable values: every entry except BN running statistics and counters."""
    return sum(int(np.prod(v.shape)) for k, v in state_dict.items() if not k.endswith(_BN_BUFFERS))


# --------------------------------------------------------------------------------------------------
# Matching and loading
# --------------------------------------------------------------------------------------------------
Shape = Tuple[int, ...]


def _shapes_compatible(model_shape: Shape, ckpt_shape: Shape) -> bool:
    if model_shape == ckpt_shape:
        return True
    # A scalar buffer may be 0-d on one side and (1,) on the other (older Jittor has no 0-d vars).
    return len(model_shape) <= 1 and len(ckpt_shape) <= 1 and math.prod(model_shape) == math.prod(ckpt_shape) == 1


def _name_list(title: str, names: Sequence[str]) -> List[str]:
    shown = list(names[:_LIST_LIMIT])
    lines = [f"  {title} ({len(names)}):"]
    lines += [f"    {n}" for n in shown]
    if len(names) > len(shown):
        lines.append(f"    ... and {len(names) - len(shown)} more")
    return lines


@dataclass
class MatchReport:
    """How a checkpoint's keys line up with a model's."""

    matched: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)  # in the model, not in the checkpoint
    unexpected: List[str] = field(default_factory=list)  # in the checkpoint, not in the model
    mismatched: List[Tuple[str, Shape, Shape]] = field(default_factory=list)  # (key, model, checkpoint)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self) -> str:
        lines: List[str] = []
        if self.missing:
            lines += _name_list("missing in checkpoint", self.missing)
        if self.unexpected:
            lines += _name_list("unexpected in checkpoint", self.unexpected)
        if self.mismatched:
            lines.append(f"  shape mismatch ({len(self.mismatched)}):")
            for key, model_shape, ckpt_shape in self.mismatched[:_LIST_LIMIT]:
                lines.append(f"    {key}: model {model_shape} vs checkpoint {ckpt_shape}")
            if len(self.mismatched) > _LIST_LIMIT:
                lines.append(f"    ... and {len(self.mismatched) - _LIST_LIMIT} more")
        lines += [f"  hint: {h}" for h in self.hints()]
        return "\n".join(lines) if lines else "  all keys match"

    def hints(self) -> List[str]:
        hints: List[str] = []
        for key, model_shape, ckpt_shape in self.mismatched:
            if key == _CLASSIFIER and model_shape[:1] != ckpt_shape[:1]:
                hints.append(
                    f"the checkpoint's classifier has {ckpt_shape[0]} classes but the model has {model_shape[0]}: "
                    f"set decode_head num_classes={ckpt_shape[0]} to use it as is, or load with strict=False to "
                    f"keep the model's freshly initialised decode_head.conv_seg (fine-tuning on another dataset)"
                )
        if any(k.startswith("backbone.") for k, _, _ in self.mismatched):
            hints.append("backbone shapes differ: is the model size (T/S/B/L) the same as the checkpoint's?")
        return hints


@dataclass
class LoadReport(MatchReport):
    """What `load_checkpoint` did."""

    path: str = ""
    source: str = ""
    container: str = ""
    strict: bool = True
    loaded: List[str] = field(default_factory=list)
    ignored: List[str] = field(default_factory=list)  # checkpoint entries deliberately skipped
    renamed: List[Tuple[str, str]] = field(default_factory=list)
    dropped: List[str] = field(default_factory=list)
    added: List[str] = field(default_factory=list)


def match_state_dict(model_shapes: Mapping[str, Sequence[int]], ckpt: Mapping[str, Any]) -> MatchReport:
    """Compare model key->shape with checkpoint key->array (or shape): matched/missing/unexpected/mismatched."""
    report = MatchReport()
    for key, shape in model_shapes.items():
        if key not in ckpt:
            report.missing.append(key)
            continue
        value = ckpt[key]
        ckpt_shape = tuple(int(d) for d in (value.shape if hasattr(value, "shape") else value))
        model_shape = tuple(int(d) for d in shape)
        if _shapes_compatible(model_shape, ckpt_shape):
            report.matched.append(key)
        else:
            report.mismatched.append((key, model_shape, ckpt_shape))
    report.unexpected = [k for k in ckpt if k not in model_shapes]
    return report


def _dtype_of(var: Any) -> Optional[np.dtype]:
    # numpy dtypes and Jittor dtypes both print as 'float32', 'int64', ...
    dtype = getattr(var, "dtype", None)
    if dtype is None:
        return None
    try:
        return np.dtype(str(dtype))
    except TypeError:
        return None


def _cast_for_model(value: np.ndarray, dtype: Optional[np.dtype], shape: Shape) -> np.ndarray:
    out = value
    if dtype is not None and out.dtype != dtype and out.dtype.kind in "biuf" and dtype.kind in "biuf":
        out = out.astype(dtype)  # e.g. float64/float16 -> float32, int64 counter -> model's int type
    if tuple(out.shape) != shape:
        out = out.reshape(shape)  # only the 0-d <-> (1,) case passes the shape check
    # not np.ascontiguousarray: it turns 0-d arrays into 1-d ones
    return out if out.flags.c_contiguous else np.array(out, order="C")


def _frozen_bases_hint(report: MatchReport) -> str:
    """The likely cause when the only difference is the stored NMF bases (tools/freeze_nmf_bases.py)."""
    bases = FROZEN_BASES_KEY
    if report.unexpected == [bases] and not report.missing and not report.mismatched:
        return ("the checkpoint stores frozen NMF bases: evaluate it with "
                "--cfg-options model.decode_head.ham.rand_init=false")
    if report.missing == [bases] and not report.unexpected and not report.mismatched:
        return ("the config has rand_init: false but the checkpoint stores no NMF bases: "
                "create them with tools/freeze_nmf_bases.py")
    return ""


def load_checkpoint(
    model: Any,
    path: "str | os.PathLike[str]",
    strict: bool = True,
    logger: Optional[Callable[[str], Any]] = print,
    backbone_strict: bool = False,
    allow_nonfinite: bool = False,
) -> LoadReport:
    """Load any supported checkpoint into `model` (duck-typed, see module docstring).

    * Backbone-pretrain files go into the `backbone.*` keys only, non-strict by default (mmseg
      `init_cfg=Pretrained`): missing/unexpected/shape-mismatched keys are reported, not raised,
      unless nothing matches at all. With `backbone_strict=True` (the trainer's
      `model.backbone.pretrained`) every backbone key must match; only the ImageNet classifier
      `head.*`, dropped while reading, may differ, and a whole-model file is refused.
    * Full-model files with `strict=True` raise `CheckpointMismatchError` listing missing,
      unexpected and shape-mismatched keys; with `strict=False` the matching keys are loaded.
    * `num_batches_tracked` entries are skipped (listed in `ignored`) when the model's BN has no such
      buffer; floats are cast to the model's dtype.
    """
    log = logger if logger is not None else (lambda _msg: None)
    contents = read_checkpoint(path, allow_nonfinite)
    for note in contents.notes:  # shown even when the caller silences the key report
        print(f"note: {note}", file=sys.stderr)
    model_vars = dict(model.state_dict())
    model_shapes = {k: tuple(int(d) for d in v.shape) for k, v in model_vars.items()}
    ckpt: Mapping[str, np.ndarray] = contents.state_dict
    header = f"checkpoint {contents.path} (source={contents.source}, {contents.container})"
    if backbone_strict and not contents.backbone_only:
        raise CheckpointMismatchError(
            f"{header} holds a whole segmentation model, not backbone weights; model.backbone.pretrained takes "
            f"ImageNet MSCAN weights (zoo:mscan_t ... zoo:mscan_l); to start from this model's backbone, extract it "
            f"with tools/convert_checkpoint.py {contents.path} OUT.npz --backbone-only")

    if contents.backbone_only:
        if not any(k.startswith("backbone.") for k in model_shapes):
            # The model *is* the backbone: use the pretrain keys without the prefix.
            ckpt = OrderedDict((k[len("backbone."):] if k.startswith("backbone.") else k, v) for k, v in ckpt.items())
            scope = model_shapes
        else:
            scope = {k: s for k, s in model_shapes.items() if k.startswith("backbone.")}
        effective_strict = backbone_strict
    else:
        scope = model_shapes
        effective_strict = strict

    match = match_state_dict(scope, ckpt)
    ignored = [
        k for k in match.unexpected
        if k.endswith(".num_batches_tracked") and k[: -len("num_batches_tracked")] + "running_mean" in model_shapes
    ]
    report = LoadReport(
        matched=match.matched, missing=match.missing, mismatched=match.mismatched,
        unexpected=[k for k in match.unexpected if k not in ignored],
        path=contents.path, source=contents.source, container=contents.container, strict=effective_strict,
        ignored=ignored, renamed=contents.renamed, dropped=contents.dropped, added=contents.added,
    )
    if effective_strict and not report.ok:
        if contents.backbone_only:
            tail = ("only the ImageNet classifier head.* may be left out: are these the MSCAN weights of this "
                    "model size?")
        else:
            tail = _frozen_bases_hint(report) or "pass strict=False to load only the matching keys"
        raise CheckpointMismatchError(
            f"{header} does not match the model (strict=True):\n{report.describe()}\n  ({tail})"
        )
    if not report.matched:
        raise CheckpointMismatchError(f"{header}: no key matches the model, nothing loaded:\n{report.describe()}")

    to_load = {k: _cast_for_model(ckpt[k], _dtype_of(model_vars[k]), model_shapes[k]) for k in report.matched}
    model.load_state_dict(to_load)
    report.loaded = list(to_load)

    what = "backbone weights" if contents.backbone_only else "tensors"
    log(f"load_checkpoint: loaded {len(report.loaded)}/{len(scope)} {what} from {header}")
    if contents.dropped:
        log(f"load_checkpoint: dropped {len(contents.dropped)} ImageNet classifier keys: {', '.join(contents.dropped)}")
    if not report.ok:
        log(f"load_checkpoint: partial load (strict=False):\n{report.describe()}")
    return report
