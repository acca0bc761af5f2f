"""Options declared next to the code that uses them, checked before any work.

A task, an attribution method, a class-visualization parameterisation... declares its options as a
dataclass whose fields say their default, what values are allowed and how to check them::

    @dataclass
    class SmoothGradOptions:
        num_samples: int = option(12, positive_int, "a positive integer")
        noise_level: float = option(0.15, non_negative_number, "a number >= 0")

:func:`parse_options` reads a plain mapping (a config node turned into a dict) into an instance and raises
one :class:`~visgrad.errors.ConfigError` listing every problem, one line each, with the key, the value,
what is allowed and the default as an example::

    task.smoothgrad.num_samples=-3: must be a positive integer; e.g. task.smoothgrad.num_samples=12
    task.smoothgrad.nums: not an option of SmoothGradOptions (num_samples, noise_level)

A field whose type is itself an options dataclass is a nested node (``task.metrics.steps``). A dataclass may
define ``problems(self) -> list[str]`` for checks across fields; each message starts with the (relative)
key it is about and gets the prefix. The checks below are plain predicates, shared with ``train.py``'s
config checks (:mod:`visgrad.utils.preflight`).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from visgrad.errors import ConfigError

T = TypeVar("T")
Check = Callable[[Any], bool]
CHECK, ALLOWED = "visgrad_check", "visgrad_allowed"


# Predicates: True for a good value.

def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def positive_int(v) -> bool:
    return is_int(v) and v >= 1


def non_negative_int(v) -> bool:
    return is_int(v) and v >= 0


def positive_number(v) -> bool:
    return is_number(v) and 0 < v < math.inf


def non_negative_number(v) -> bool:
    return is_number(v) and 0 <= v < math.inf


def probability(v) -> bool:
    """A number in [0, 1)."""
    return is_number(v) and 0 <= v < 1


def boolean(v) -> bool:
    return isinstance(v, bool)


def optional(check: Check) -> Check:
    return lambda v: v is None or check(v)


def one_of(*choices) -> Check:
    """Equal to one of ``choices`` and of the same type (``1`` is not ``True``)."""
    return lambda v: any(v == c and type(v) is type(c) for c in choices)


def pair_of(check: Check) -> Check:
    return lambda v: isinstance(v, Sequence) and not isinstance(v, str) and len(v) == 2 and all(map(check, v))


def as_list(value) -> list:
    """One value or a list of values → a list (None → [])."""
    if value is None:
        return []
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return [value]


def each(check: Check) -> Check:
    """One value or a non-empty list of values that all pass ``check`` (per-layer / per-scale options)."""
    return lambda v: len(as_list(v)) > 0 and all(check(x) for x in as_list(v))


def registered(registry) -> Check:
    """A name in ``registry`` (a :class:`~visgrad.registry.Registry`) or the dotted path of an entry."""
    return registry.accepts


# Declaring options.

def option(default, check: Check | None = None, allowed: str = "", *, factory: bool = False):
    """A dataclass field with its default, its check and a description of the allowed values.

    Mutable defaults (lists) are copied per instance.
    """
    metadata = {CHECK: check, ALLOWED: allowed}
    if isinstance(default, (list, dict)) or factory:
        return dataclasses.field(default_factory=lambda: _copy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def nested(options_type: type) -> Any:
    """A field holding a nested options dataclass (its own node, e.g. ``task.metrics``)."""
    return dataclasses.field(default_factory=options_type)


def _copy(value):
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value


def fmt(value) -> str:
    """A value as it would be written on the command line (``null``, ``true``, ``[1,2]``, ``'text'``: quoted,
    so that ``'5'`` and ``5`` differ)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(fmt(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def _nested_type(field: dataclasses.Field, hints: dict) -> type | None:
    hint = hints.get(field.name)
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def option_problems(options_type: type[T], values: Mapping[str, Any] | None,
                    prefix: str) -> tuple[T | None, list[str]]:
    """Read ``values`` into ``options_type``: (the instance or None, one line per problem).

    ``prefix`` is the config key of the node (``task``, ``task.smoothgrad``); keys the dataclass does not
    declare are problems, missing ones take their defaults.
    """
    values = dict(values or {})
    hints = typing.get_type_hints(options_type)
    fields = {f.name: f for f in dataclasses.fields(options_type) if f.init}
    problems = [f"{prefix}.{key}: not an option of {options_type.__name__} ({', '.join(fields)})"
                for key in values if key not in fields]
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        key = f"{prefix}.{name}"
        inner = _nested_type(field, hints)
        if inner is not None:
            node = values.get(name)
            if node is not None and not isinstance(node, Mapping):
                problems.append(f"{key}={fmt(node)}: must be a group of options ({', '.join(_names(inner))})")
                continue
            kwargs[name], more = option_problems(inner, node, key)
            problems += more
            continue
        if name not in values:
            continue
        value, check = values[name], field.metadata.get(CHECK)
        if check is not None and not check(value):
            example = field.default_factory() if field.default is dataclasses.MISSING else field.default
            problems.append(f"{key}={fmt(value)}: must be {field.metadata.get(ALLOWED) or 'valid'}; "
                            f"e.g. {key}={fmt(example)}")
        kwargs[name] = value
    if problems:
        return None, problems
    instance = options_type(**kwargs)
    cross = getattr(instance, "problems", None)
    problems = [f"{prefix}.{line}" for line in cross()] if callable(cross) else []
    return (None if problems else instance), problems


def _names(options_type: type) -> list[str]:
    return [f.name for f in dataclasses.fields(options_type) if f.init]


def parse_options(options_type: type[T], values: Mapping[str, Any] | None, prefix: str) -> T:
    """:func:`option_problems`, raising one ``ConfigError`` with every problem."""
    instance, problems = option_problems(options_type, values, prefix)
    if problems:
        raise ConfigError("\n".join(problems))
    return instance


def defaults(options_type: type) -> dict[str, Any]:
    """The declared defaults as a nested plain dict (what the config file shows)."""
    return dataclasses.asdict(options_type())
