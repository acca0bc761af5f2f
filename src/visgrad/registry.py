"""Registries: one source of truth for every kind of thing visgrad has more than one of.

A :class:`Registry` maps names to entries (a recurrent cell, an attribution method, a GAN loss, a task,
...); each entry is an object of its kind's own dataclass with at least a ``name`` and a ``label`` (for
figures, tables and messages). Every place that takes a registered name also takes the dotted path of an
object in the user's own package (``my_pkg.cells.gru``), so a plugin needs no registration inside visgrad::

    CELLS = Registry("recurrent cell", Cell)
    CELLS.add(Cell(name="lstm", label="LSTM", ...))
    CELLS.get("lstm")                      # the entry
    CELLS.get("my_pkg.cells.gru")          # a Cell defined in the user's package
    CELLS.get("bogus_cell")                # RegistryError: unknown recurrent cell 'bogus_cell'; ...

Networks and other constructed objects are injected instead (a ``_target_`` config). :func:`build` makes
one from such a config without Hydra, and :func:`partial_config` turns a ``functools.partial`` (what Hydra
makes of a ``_partial_: true`` node) back into a config, so a checkpoint can store the network it holds and
be rebuilt from it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from omegaconf import Container, OmegaConf

from visgrad.errors import ConfigError

T = TypeVar("T")
TARGET = "_target_"


class RegistryError(ConfigError):
    """A name that is neither registered nor the dotted path of an object of the registry's kind."""


def is_dotted_path(text: object) -> bool:
    """Whether ``text`` looks like ``package.module.name`` (a plugin) rather than a registered name."""
    return isinstance(text, str) and "." in text.strip(".") and " " not in text


def locate(path: str) -> Any:
    """The object at the dotted path ``package.module.attr[.attr...]`` (importing the longest module prefix).

    Raises ``RegistryError`` naming the path and what could not be found.
    """
    parts = str(path).split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is not None and not module_name.startswith(error.name):
                raise  # the module exists but fails to import one of its own dependencies: a real error
            continue
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError:
            raise RegistryError(f"{path}: module {module_name} has no attribute "
                                f"{'.'.join(parts[split:])!r}") from None
        return obj
    raise RegistryError(f"{path}: no module {parts[0]!r} can be imported (is your package installed or on "
                        "PYTHONPATH?)")


class Registry(Generic[T]):
    """Names → entries of one kind, plus dotted paths to entries defined elsewhere.

    Args:
        kind: what an entry is, for messages (``"attribution method"``).
        entry_type: the class of the entries (a dotted path must lead to one, unless ``coerce`` accepts it).
        coerce: turns another object found at a dotted path into an entry (e.g. a plain function into an
            attribution method with default label and no options), or returns None to refuse it.
    """

    def __init__(self, kind: str, entry_type: type[T], coerce: Callable[[Any, str], T | None] | None = None):
        self.kind = kind
        self.entry_type = entry_type
        self.coerce = coerce
        self._entries: dict[str, T] = {}

    def add(self, entry: T) -> T:
        """Register ``entry`` under ``entry.name`` (a name may be registered once)."""
        name = entry.name
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if is_dotted_path(name):
            raise ValueError(f"{self.kind} name {name!r} must not contain dots (dots mark plugin paths)")
        self._entries[name] = entry
        return entry

    def get(self, key: str) -> T:
        """The entry registered as ``key``, or the object at the dotted path ``key``."""
        if isinstance(key, self.entry_type):
            return key
        text = str(key)
        if text in self._entries:
            return self._entries[text]
        if not is_dotted_path(text):
            raise RegistryError(f"unknown {self.kind} {text!r}; {self.allowed}")
        obj = locate(text)
        if isinstance(obj, self.entry_type):
            return obj
        entry = self.coerce(obj, text) if self.coerce is not None else None
        if entry is None:
            raise RegistryError(f"{text} is {_a(type(obj).__name__)}, not {_a(self.entry_type.__name__)} "
                                f"(a {self.kind} is defined as {self.entry_type.__module__}."
                                f"{self.entry_type.__name__})")
        return entry

    def accepts(self, key: object) -> bool:
        """Whether ``get(key)`` finds an entry (for config checks)."""
        try:
            self.get(key)
        except (RegistryError, ImportError):
            return False
        return True

    def label(self, key: str) -> str:
        return self.get(key).label

    def names(self) -> list[str]:
        return list(self._entries)

    @property
    def allowed(self) -> str:
        """What a key may be, for messages: ``one of a, b, c, or the dotted path of a <Entry>``."""
        return (f"one of {', '.join(self._entries)}, or the dotted path of {_a(self.entry_type.__name__)} "
                "in your own package (my_package.module.name)")

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


def _a(noun: str) -> str:
    """``noun`` with its indefinite article: ``a Cell``, ``an Attack``."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def build(config: Mapping[str, Any] | Callable, **kwargs: Any) -> Any:
    """Construct an injected object: ``config`` is a ``{"_target_": "pkg.Class", **args}`` mapping (nested
    ``_target_`` mappings are built first) or a callable (a ``functools.partial``); ``kwargs`` are added."""
    if callable(config):
        return config(**kwargs)
    if not isinstance(config, Mapping) or TARGET not in config:
        raise ConfigError(f"expected a {TARGET} config or a callable, got {config!r}")
    args = {key: build(value) if isinstance(value, Mapping) and TARGET in value else value
            for key, value in config.items() if key != TARGET}
    return locate(config[TARGET])(**args, **kwargs)


def partial_config(factory: Callable | Mapping[str, Any]) -> dict[str, Any]:
    """The ``_target_`` config of a factory: a ``functools.partial`` of a class or function (its keyword
    arguments; positional ones are not allowed) or an existing config mapping (returned as a dict). OmegaConf
    values (the lists and dicts of a Hydra-made partial) come back as plain lists and dicts."""
    if isinstance(factory, Mapping):
        return {key: _plain(value) for key, value in factory.items()}
    func, keywords = factory, {}
    if isinstance(factory, functools.partial):
        if factory.args:
            raise ValueError(f"cannot store a partial with positional arguments: {factory!r}")
        func, keywords = factory.func, {key: _plain(value) for key, value in factory.keywords.items()}
    return {TARGET: f"{func.__module__}.{func.__qualname__}", **keywords}


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, Container) else value
