"""Layered settings whose every value remembers where it came from.

A command's settings are defaults <- a config file <- flags. Each value carries its origin, a
(file, field) pair (`(None, "--target-ms")` for a flag), so that an error about it names the file
and key the user wrote, or the flag they typed.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Mapping, TypeVar

from nas.runtime.errors import UserError, flag
from nas.runtime.files import load_yaml_file

Origin = tuple[str | None, str]  # (file or None for a flag, field or flag name)
Origins = dict[str, Origin]
T = TypeVar("T")
DEFAULT, PYTHON = "<default>", "<python>"  # origins no file names: a default, an argument given from Python


def file_origins(source: str, keys: Iterable[str]) -> Origins:
    return {key: (source, key) for key in keys}


def read_config_file(path: str | os.PathLike, keys: Iterable[str]) -> dict[str, Any]:
    """A YAML mapping whose keys are all among `keys`; anything else is a UserError naming the file."""
    keys = tuple(keys)
    data = load_yaml_file(path)
    if not isinstance(data, dict):
        raise UserError("expected a mapping of settings", source=str(path))
    for key in data:
        if key not in keys:
            raise UserError(f"unknown key (allowed: {', '.join(keys)})", source=str(path), field=str(key))
    return data


def layer(defaults: Mapping[str, Any], file_values: Mapping[str, Any], source: str | None,
          flags: Mapping[str, Any]) -> tuple[dict[str, Any], Origins]:
    """defaults <- file values (from `source`) <- flags that were given (not None), with origins."""
    values, origins = dict(defaults), {key: (DEFAULT, flag(key)) for key in defaults}
    for key, value in file_values.items():
        values[key], origins[key] = value, (source, key)
    for key, value in flags.items():
        if value is not None:
            values[key], origins[key] = value, (None, flag(key))
    return values, origins


def _where(origins: Origins, key: str) -> dict[str, str]:
    """Where `key`'s value came from, as UserError's keywords: a file's key, or else the setting
    (a flag, an argument from Python or a default: a command shows it as its flag)."""
    source, field = origins.get(key, (None, flag(key)))
    return {"setting": key} if source in (None, DEFAULT, PYTHON) else {"source": source, "field": field}


def blame(origins: Origins, key: str, message: str) -> UserError:
    """A UserError about `key`'s value, naming the file and field (or the setting) it came from."""
    return UserError(message, **_where(origins, key))


def located(origins: Origins, key: str, make: Callable[[], T]) -> T:
    """make(), with a UserError it raises moved to where `key`'s value came from."""
    try:
        return make()
    except UserError as err:
        raise err.located(**_where(origins, key)) from None


def describe_origin(origins: Origins, key: str) -> str:
    """Where a value came from, in words: "default", "python", "flag --seed" or "FILE:key"."""
    source, field = origins.get(key, (DEFAULT, flag(key)))
    if source == DEFAULT:
        return "default"
    if source == PYTHON:
        return "python"
    return f"flag {field}" if source is None else f"{source}:{field}"
