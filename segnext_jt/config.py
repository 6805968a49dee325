"""Typed configuration: one YAML file -> a tree of dataclasses (config_schema.py), validated with
helpful errors: unknown keys with a "did you mean", values of the wrong type, bad `--cfg-options`
overrides, each as one line naming the file or option.

A file may name one other file to inherit from with a top-level `base: other.yaml` (relative to the
file): the base's values are deep-merged with the file's own, so a size or dataset variant states
only what differs. Chains are short (MAX_BASE_CHAIN) and cycles are refused; `tools/train.py
--print-config` shows the resolved config as one file.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from .config_schema import Config
from .errors import ConfigError, one_line, quote
from .files import read_regular_file


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`, converting where YAML is looser (int -> float)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {quote(value)}")
        return _build(tp, value, where)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {quote(value)}")
    if origin is Literal:
        if value not in args:
            hint = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{where}: {quote(value)} is not one of {list(args)}{extra}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {quote(value)}")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {quote(value)}")
        return {_coerce(k, args[0], where): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    return _coerce_scalar(value, tp, where)


def _coerce_scalar(value: Any, tp: Any, where: str) -> Any:
    """`_coerce` for the plain types: bool, int, float (finite; YAML 1.1's 1e-4 string too), str."""
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {quote(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {quote(value)}")
        return value
    if tp is float:
        if isinstance(value, str):  # PyYAML (YAML 1.1) reads 1e-4 (no dot) as a string
            try:
                value = float(value)  # then checked for finiteness like a number
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {quote(value)}")
        try:
            out = float(value)
        except OverflowError:
            raise ConfigError(f"{where}: number {quote(value)} is too large") from None
        if not math.isfinite(out):
            raise ConfigError(f"{where}: expected a finite number, got {quote(value)}")
        return out
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {quote(value)}")
        return value
    raise ConfigError(f"{where}: unsupported type {_type_name(tp)}")  # pragma: no cover


def _build(cls: type, data: dict, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if not f.metadata.get("internal")]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            hint = difflib.get_close_matches(str(key), names, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{where + ': ' if where else ''}unknown key {quote(key)}{extra}; valid keys: {', '.join(names)}")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}" if where else key)
    return cls(**kwargs)


def config_from_dict(data: dict, source: str = "<dict>") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        cfg = _build(Config, data, "")
        cfg.source = source
        return cfg.validate()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _yaml_problem(exc: "yaml.YAMLError") -> str:
    """One line from a PyYAML error: the problem and where (line/column are 1-based)."""
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def parse_overrides(options: list[str]) -> dict:
    """`key.sub=value` strings (mmseg --cfg-options) -> nested dict; values are parsed as YAML.

    Every failure is a one-line ConfigError naming the option: a value that is not YAML, an empty
    key part, or a sub-key of something an earlier option set to a plain value (`train=1
    train.max_iters=3`)."""
    out: dict = {}
    for opt in options or []:
        if not isinstance(opt, str) or "=" not in opt:
            raise ConfigError(f"--cfg-options: expected key=value, got {quote(opt)}")
        key, raw = opt.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        if not key or any(not p.strip() or p != p.strip() for p in parts):
            raise ConfigError(f"--cfg-options {quote(opt)}: bad key {quote(key)}; expected dotted names such as "
                              "train.max_iters")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--cfg-options {key}: value {quote(raw)} is not valid YAML ({_yaml_problem(exc)}); "
                              f"quote it if it is a string, e.g. {key}='\"...\"'") from None
        except (RecursionError, MemoryError, ValueError):
            raise ConfigError(f"--cfg-options {key}: value is nested too deeply or too large") from None
        node = out
        for i, part in enumerate(parts[:-1]):
            if part not in node:
                node[part] = {}
            elif not isinstance(node[part], dict):
                prefix = ".".join(parts[:i + 1])
                raise ConfigError(f"--cfg-options {key}={raw}: an earlier option set {prefix}={node[part]!r}, "
                                  f"a plain value, so it has no sub-key {parts[i + 1]!r}")
            node = node[part]
        last = parts[-1]
        if isinstance(node.get(last), dict) and not isinstance(value, dict):
            raise ConfigError(f"--cfg-options {key}={raw}: replaces the section {quote(key)} that earlier options set "
                              f"keys of ({', '.join(sorted(map(str, node[last])))}); give one or the other")
        node[last] = value
    return out


def _merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# Bounds on what a config file may make us do: its size, how deeply it nests, how many values it
# expands to through YAML aliases, and how many files a `base:` chain may name. The reading does
# not rely on Python's recursion limit (importing Jittor raises it to 10^6).
MAX_CONFIG_BYTES = 1 << 20
MAX_YAML_DEPTH = 32
MAX_YAML_VALUES = 100_000
MAX_BASE_CHAIN = 8
BASE_KEY = "base"


def read_config_text(path: Union[str, Path], max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """The text of a config file, or a one-line ConfigError naming it (missing, not a regular file,
    larger than `max_bytes`, unreadable, not UTF-8). A UTF-8 BOM is dropped."""
    if not Path(path).exists():
        raise ConfigError(f"config file not found: {path}")
    data = read_regular_file(path, max_bytes, ConfigError, "config file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}, line "
                          f"{line}); save the config as UTF-8") from None


class _DuplicateKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, except that a key repeated in one mapping is an error (PyYAML keeps the
    last one silently: a second `train:` section would reset every value the first one set)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first_line: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                line = key_node.start_mark.line + 1
                if key_node.value in first_line:
                    raise ConfigError(f"key {quote(key_node.value)} appears twice in one mapping (lines "
                                      f"{first_line[key_node.value]} and {line}); keep one")
                first_line[key_node.value] = line
        return super().construct_mapping(node, deep=deep)


def _check_yaml_shape(text: str) -> None:
    """Refuse YAML nested deeper than MAX_YAML_DEPTH or expanding (aliases counted at their full
    size) to more than MAX_YAML_VALUES values, by one pass over PyYAML's event stream: the parser is
    iterative, unlike the composer and constructor that run after this check."""
    sizes: dict = {}        # anchor -> expanded size of its node
    stack: list = []        # per open collection: [values so far, anchor]
    total = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            if len(stack) >= MAX_YAML_DEPTH:
                raise ConfigError(f"nested deeper than {MAX_YAML_DEPTH} levels at line {event.start_mark.line + 1}")
            stack.append([0, event.anchor])
            continue
        if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            size, anchor = stack.pop()
            size += 1
        elif isinstance(event, yaml.ScalarEvent):
            size, anchor = 1, event.anchor
        elif isinstance(event, yaml.AliasEvent):
            size, anchor = sizes.get(event.anchor, 1), None
        else:
            continue
        if anchor is not None:
            sizes[anchor] = size
        if stack:
            stack[-1][0] += size
        else:
            total += size
        if total + sum(entry[0] for entry in stack) > MAX_YAML_VALUES:
            raise ConfigError(f"expands to more than {MAX_YAML_VALUES} values (YAML aliases?) at line "
                              f"{event.start_mark.line + 1}")


def parse_config_yaml(text: str, source: str) -> dict:
    """YAML text -> the top-level mapping (empty for an empty file); one-line ConfigErrors naming
    `source` for bad YAML, duplicate keys, excessive nesting or alias expansion, a non-mapping."""
    try:
        _check_yaml_shape(text)
        data = yaml.load(text, Loader=_DuplicateKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {_yaml_problem(exc)}") from None
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise ConfigError(f"{source}: {one_line(exc)}") from None
    except (RecursionError, MemoryError):
        raise ConfigError(f"{source}: YAML nested too deeply or too large") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections (model, data, train, eval), "
                          f"got {type(data).__name__}")
    return data


def read_config_tree(path: Union[str, Path]) -> dict:
    """The mapping of a config file with its `base:` chain merged in: the base file's values (a path
    relative to the file naming it), deep-merged with this file's (mappings merge key by key, any
    other value replaces). At most MAX_BASE_CHAIN files; a cycle is refused."""
    chain: list[Path] = []
    layers: list[dict] = []
    current = Path(path)
    while True:
        data = parse_config_yaml(read_config_text(current), str(current))
        chain.append(current.resolve())
        base = data.pop(BASE_KEY, None)
        layers.append(data)
        if base is None:
            break
        if not isinstance(base, str) or not base.strip():
            raise ConfigError(f"{current}: {BASE_KEY}: expected the file name of a config to inherit from "
                              f"(relative to {current.parent}), got {quote(base)}")
        nxt = current.parent / base
        if nxt.resolve() in chain:
            names = " -> ".join(str(p) for p in chain + [nxt.resolve()])
            raise ConfigError(f"{current}: {BASE_KEY}: {base} makes a cycle ({names})")
        if len(chain) >= MAX_BASE_CHAIN:
            raise ConfigError(f"{current}: {BASE_KEY}: more than {MAX_BASE_CHAIN} files in the inheritance chain")
        if not nxt.exists():
            raise ConfigError(f"{current}: {BASE_KEY}: {nxt} not found")
        current = nxt
    merged: dict = {}
    for layer in reversed(layers):
        ref, inherited = layer.get("reference"), merged.get("reference")
        if isinstance(ref, dict) and "others" not in ref and isinstance(inherited, dict):
            # other published values go with the numbers of the file that states them: a file with
            # its own reference section (another size or dataset) does not inherit its base's
            merged["reference"] = {k: v for k, v in inherited.items() if k != "others"}
        merged = _merge(merged, layer)
    return merged


def load_config(path: Union[str, Path], overrides: Optional[list[str]] = None) -> Config:
    """Read a YAML config (and its `base:` chain), apply `key=value` overrides, validate, return a
    typed Config."""
    data = read_config_tree(path)
    override_dict = parse_overrides(overrides) if overrides else {}
    if override_dict:
        data = _merge(data, override_dict)
    return config_from_dict(data, source=str(path))
