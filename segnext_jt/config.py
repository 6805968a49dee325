"""Typed configuration: one YAML file -> a tree of dataclasses (config_schema.py), validated with
helpful errors: unknown keys with a "did you mean", values of the wrong type, bad `--cfg-options`
overrides, each as one line naming the file or option.
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

from .config_schema import Config, ConfigError


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`, converting where YAML is looser (int -> float)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
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
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            hint = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}{extra}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {_coerce(k, args[0], where): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    return _coerce_scalar(value, tp, where)


def _coerce_scalar(value: Any, tp: Any, where: str) -> Any:
    """`_coerce` for the plain types: bool, int, float (finite; YAML 1.1's 1e-4 string too), str."""
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # PyYAML (YAML 1.1) reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            out = float(value)
        except OverflowError:
            raise ConfigError(f"{where}: number {value!r} is too large") from None
        if not math.isfinite(out):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return out
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
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
            raise ConfigError(f"{where}: unknown key {key!r}{extra}; valid keys: {', '.join(names)}")
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
            raise ConfigError(f"--cfg-options: expected key=value, got {opt!r}")
        key, raw = opt.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        if not key or any(not p.strip() or p != p.strip() for p in parts):
            raise ConfigError(f"--cfg-options {opt!r}: bad key {key!r}; expected dotted names such as "
                              "train.max_iters")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--cfg-options {key}: value {raw!r} is not valid YAML ({_yaml_problem(exc)}); "
                              f"quote it if it is a string, e.g. {key}='\"...\"'") from None
        except (RecursionError, MemoryError):
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
            raise ConfigError(f"--cfg-options {key}={raw}: replaces the section {key!r} that earlier options set "
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


def read_config_text(path: Union[str, Path]) -> str:
    """The text of a config file, or a one-line ConfigError naming it (missing, a directory,
    unreadable, not UTF-8)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if not path.is_file():
        raise ConfigError(f"{path}: not a regular file (expected a YAML config file)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}, line "
                          f"{line}); save the config as UTF-8") from None


def load_config(path: Union[str, Path], overrides: Optional[list[str]] = None) -> Config:
    """Read a YAML config, apply `key=value` overrides, validate, return a typed Config."""
    path = Path(path)
    text = read_config_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    except (RecursionError, MemoryError):
        raise ConfigError(f"{path}: YAML nested too deeply or too large") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (model, data, train, eval), "
                          f"got {type(data).__name__}")
    override_dict = parse_overrides(overrides) if overrides else {}
    if override_dict:
        data = _merge(data, override_dict)
    return config_from_dict(data, source=str(path))
