"""Typed configs: dataclass defaults <- YAML file <- ``key=value`` overrides on the command line.

One convention everywhere: overrides are ``key=value`` words after the subcommand
(``akorn sudoku train preset=cpu epochs=5 lr=5e-4``). ``preset=NAME`` applies a named
preset of the experiment before the other overrides.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import typing
from pathlib import Path

import yaml

from akorn.errors import UserError


def _convert(value, typ, key: str):
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin is typing.Union or (origin is not None and str(origin) == "types.UnionType"):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, key)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[0] if errors else f"{key}: cannot use {value!r}")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.strip("[]()").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{key} expects a list, got {value!r}")
        inner = args[0] if args else str
        return (
            type(value)(_convert(v, inner, key) for v in value)
            if origin is list
            else tuple(_convert(v, inner, key) for v in value)
        )
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise UserError(f"{key} expects true/false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise UserError(f"{key} expects an integer, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{key} expects an integer, got {value!r}") from None
        if not f.is_integer():
            raise UserError(f"{key} expects an integer, got {value!r}")
        return int(f)
    if typ is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserError(f"{key} expects a number, got {value!r}") from None
    if typ is str:
        if not isinstance(value, (str, int, float)):
            raise UserError(f"{key} expects a string, got {value!r}")
        return str(value)
    return value


def require(ok: bool, message: str):
    """A config check: a :class:`UserError` with ``message`` unless ``ok``."""
    if not ok:
        raise UserError(message)


def check_ranges(cfg, **ranges):
    """``field=(low, high)`` (either may be None): the field is a finite number within them."""
    for key, (low, high) in ranges.items():
        value = getattr(cfg, key)
        if not math.isfinite(value):
            raise UserError(f"{key} must be a finite number, got {value}")
        if low is not None and value < low:
            raise UserError(f"{key} must be at least {low}, got {value}")
        if high is not None and value > high:
            raise UserError(f"{key} must be at most {high}, got {value}")


def check_choice(cfg, key: str, choices):
    value = getattr(cfg, key)
    if value not in choices:
        raise UserError(f"{key} must be one of {', '.join(map(str, choices))}, got {value!r}")


def _fields(cls) -> dict[str, typing.Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def apply_overrides(cfg, overrides: dict, source: str = "command line"):
    """Return a copy of ``cfg`` with ``overrides`` applied, checking keys and types."""
    fields = _fields(type(cfg))
    changes = {}
    for key, value in overrides.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UserError(f"unknown config key {key!r} in {source}{hint}")
        changes[key] = _convert(value, fields[key], key)
    out = dataclasses.replace(cfg, **changes)
    check = getattr(out, "validate", None)
    if check is not None:
        check()
    return out


def parse_words(words: list[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; anything else is a usage error."""
    out = {}
    for w in words:
        if "=" not in w or w.startswith("="):
            raise UserError(f"expected key=value, got {w!r}")
        k, v = w.split("=", 1)
        out[k.strip().replace("-", "_")] = v
    return out


def resolve(
    cls, words: list[str] | None = None, config_file: str | None = None, presets: dict | None = None, base=None
):
    """defaults (or ``base``) <- preset <- YAML file <- ``key=value`` words."""
    cfg = base if base is not None else cls()
    overrides = parse_words(words or [])
    preset = overrides.pop("preset", None)
    if preset is not None:
        presets = presets or {}
        if preset not in presets:
            raise UserError(f"unknown preset {preset!r}; choose from {sorted(presets)}")
        cfg = apply_overrides(cfg, presets[preset], f"preset {preset!r}")
    if config_file is not None:
        path = Path(config_file)
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise UserError(f"config file not found: {path}") from None
        except yaml.YAMLError as e:
            raise UserError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise UserError(f"config file {path} must hold a mapping of key: value")
        cfg = apply_overrides(cfg, data, str(path))
    return apply_overrides(cfg, overrides)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls, data: dict, source: str):
    return apply_overrides(cls(), data, source)


def dump(cfg) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)
