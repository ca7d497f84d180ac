"""The small declarative validator behind config.py: a field has a type, a default, a
one-line description and either a range, a set of choices or a converter; and the way back,
:func:`dump_fields`, so that the JSON form of a section is derived from the same fields."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config value that is missing, unknown or out of range, with its key path."""

    def __init__(self, path: str, expected: str, got: object = ...) -> None:
        self.path = path or "<root>"
        self.expected = expected
        suffix = "" if got is ... else f" (got {got!r})"
        super().__init__(f"{self.path}: expected {expected}{suffix}")


@dataclass(frozen=True)
class Field:
    name: str
    type: type | tuple[type, ...]
    default: Any
    help: str
    convert: Callable[[Any], Any] | None = None
    range: tuple[int, int] | None = None
    choices: Sequence[str] | None = None
    # The value as the config file writes it, when that is not what to_json() makes of it.
    dump: Callable[[Any], Any] | None = None

    def describe(self) -> str:
        if self.range is not None:
            lo, hi = self.range
            return f"an integer from {lo} to {hi} ({self.help})"
        if self.choices is not None:
            return "one of " + ", ".join(repr(a) for a in self.choices) + f" ({self.help})"
        names = {
            bool: "true or false",
            int: "an integer",
            str: "a string",
            dict: "an object",
            list: "a list",
            type(None): "null",
        }
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        return " or ".join(names.get(t, t.__name__) for t in types) + f" ({self.help})"

    def check(self, value: Any, path: str) -> Any:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        # bool is an int subclass: true is not a frame rate.
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise ConfigError(path, self.describe(), value)
        if self.range is not None and not self.range[0] <= _as_any(value) <= self.range[1]:
            raise ConfigError(path, self.describe(), value)
        if self.choices is not None and value not in self.choices:
            raise ConfigError(path, self.describe(), value)
        if self.convert is not None:
            try:
                return self.convert(value)
            except ConfigError:
                raise  # a nested value's error already names its own path
            except ValueError as e:
                raise ConfigError(path, f"{e} ({self.help})", value) from None
        return value


def _as_any(value: Any) -> Any:
    """``value`` with its type narrowing undone (isinstance against a runtime tuple)."""
    return value


def read_json_file(path: str | os.PathLike[str]) -> Any:
    """The JSON document in the file at ``path``; ConfigError saying what is wrong with it
    (unreadable, or where the JSON breaks)."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError("", f"a readable file at {path}: {e.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError("", f"valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None


def take_fields(obj: dict[str, Any], path: str, fields: Sequence[Field]) -> dict[str, Any]:
    """Check ``obj`` against ``fields``: unknown keys and bad values raise ConfigError."""
    if not isinstance(obj, dict):
        raise ConfigError(path, "an object", obj)
    known = {f.name for f in fields}
    for key in obj:
        if key not in known:
            where = f"{path}.{key}" if path else key
            raise ConfigError(where, "one of the known keys: " + ", ".join(sorted(known)))
    out: dict[str, Any] = {}
    for f in fields:
        where = f"{path}.{f.name}" if path else f.name
        value = obj[f.name] if f.name in obj else copy.deepcopy(f.default)
        out[f.name] = f.check(value, where)
    return out


def to_json(value: Any) -> Any:
    """A parsed value in its config-file form: scalars as they are, sequences as lists,
    mappings as objects, anything else (Resolution, RungSpec, Address) as its ``str``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return str(value)


def dump_fields(obj: object, fields: Sequence[Field]) -> dict[str, Any]:
    """The section ``take_fields`` reads back to ``obj``: each field's attribute of the
    same name, in its config-file form."""
    return {f.name: (f.dump or to_json)(getattr(obj, f.name)) for f in fields}
