"""Registries: every name a user can choose (a proxy, an algorithm, a reward, a device, a space, a
budget) is registered once, by the module that implements it.

    from nas.runtime.registry import PROXIES

    @PROXIES.register("my-score", help="my own zero-cost score")
    def my_score(name, context):      # -> a nas.accuracy.proxy_interface.Proxy
        ...

Command-line choices, the config's validation and the docs' lists read the registries, so a name
registered from Python is taken by the whole pipeline. Each registry knows its built-in owners by
module name and imports them on first use: the layers below never import the layers that register
into them, and a command that needs no registry does not pay for importing them.
"""
from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from nas.runtime.errors import UserError

T = TypeVar("T")
_MISSING = object()


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str  # as listed; a pattern's display form, e.g. train-<E>ep
    obj: T
    module: str  # who registered it
    help: str = ""
    pattern: re.Pattern | None = None  # a family of names, e.g. train-12ep
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Mapping[str, T]):
    """Names of one kind, each owned by one registration; a read-only mapping name -> object.

    `field` is the settings key a bad name is blamed on (the command line shows it as its flag)."""

    def __init__(self, kind: str, field: str, owners: tuple[str, ...] = ()):
        self.kind, self.field, self._owners = kind, field, owners
        self._entries: dict[str, Entry[T]] = {}
        self._loaded = not owners

    def register(self, name: str, obj: Any = _MISSING, *, help: str = "", pattern: str | None = None,
                 replace: bool = False, **meta: Any):
        """Register `obj` under `name`; without `obj`, a decorator. A name taken already is an error
        unless `replace` (a user's own version of a built-in)."""
        if obj is _MISSING:
            def decorator(target):
                self.register(name, target, help=help, pattern=pattern, replace=replace, **meta)
                return target
            return decorator
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise ValueError(f"a {self.kind} name must be a non-empty string without surrounding spaces, got {name!r}")
        module = _caller_module()
        if module not in self._owners:  # a user's name: the built-ins first, so that a clash shows here
            self._load()
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is registered already (by {self._entries[name].module}); "
                             f"pass replace=True to replace it")
        self._entries[name] = Entry(name, obj, module, help, re.compile(pattern) if pattern else None, meta)
        return obj

    def unregister(self, name: str) -> None:
        """Remove a name (a test's or a notebook's own registration)."""
        self._load()
        self._entries.pop(name, None)

    def entry(self, name: str) -> Entry[T]:
        """The entry `name` is, or matches; an unknown name is a UserError listing the known ones."""
        self._load()
        if isinstance(name, str):
            if name in self._entries:
                return self._entries[name]
            for e in self._entries.values():
                if e.pattern is not None and e.pattern.fullmatch(name):
                    return e
        raise UserError(f"unknown {self.kind} {name!r} (one of {', '.join(self)})", setting=self.field)

    def lookup(self, name: str) -> T:
        """The object `name` is registered as (or matches)."""
        return self.entry(name).obj

    def names(self, **meta: Any) -> list[str]:
        """The names registered, built-ins first in their owners' order; with `meta`, those whose
        metadata match."""
        self._load()
        rank = {m: i for i, m in enumerate(self._owners)}
        order = sorted(self._entries.values(), key=lambda e: rank.get(e.module, len(rank)))  # stable
        return [e.name for e in order if all(e.meta.get(k) == v for k, v in meta.items())]

    def accepts(self, name: str) -> bool:
        """Whether `name` is a registered name or matches a registered pattern."""
        try:
            self.entry(name)
        except UserError:
            return False
        return True

    def __getitem__(self, name: str) -> T:
        self._load()
        if name not in self._entries:
            raise KeyError(name)
        return self._entries[name].obj

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self)})"

    def _load(self) -> None:
        """Import the built-in owners once; they register as they are imported."""
        if self._loaded:
            return
        self._loaded = True  # before importing: an owner's own registrations must not recurse
        for module in self._owners:
            importlib.import_module(module)


def _caller_module() -> str:
    frame = inspect.currentframe()
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    return frame.f_globals.get("__name__", "?") if frame is not None else "?"


# The registries; each lists the modules that own its built-in names.
BUDGETS: Registry = Registry("budget", "budget", ("nas.budgets",))
SPACES: Registry = Registry("search space", "space", ("nas.core.space",))
DEVICES: Registry = Registry("device", "device", ("nas.latency.devices", "nas.groundtruth"))
PROXIES: Registry = Registry("proxy", "proxy", ("nas.accuracy.proxy", "nas.supernet.supernet_proxy", "nas.groundtruth.imagenet_proxy"))
ALGORITHMS: Registry = Registry("algorithm", "algorithm", ("nas.search.algorithms",))
REWARDS: Registry = Registry("reward", "reward", ("nas.search.reward",))
