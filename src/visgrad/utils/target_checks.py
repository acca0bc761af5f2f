"""Checks of ``_target_`` config nodes before anything is built: which class a node instantiates, and keys
its target does not take (a typo such as ``+model.net.hiden_dim=512``), one line each naming the key and
the accepted arguments."""

from __future__ import annotations

import difflib
import inspect

from omegaconf import DictConfig

from visgrad.options import fmt
from visgrad.registry import TARGET, RegistryError, locate

HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")


def _located(path: str):
    """The object at a ``_target_`` path, or None if it cannot be imported."""
    try:
        return locate(path)
    except (RegistryError, ImportError):
        return None


def is_target(value: object, target: str) -> bool:
    """Whether a ``_target_`` value names ``target`` (also through another import path of the same object,
    e.g. ``visgrad.captioning.model.CaptioningRNN`` for ``visgrad.captioning.CaptioningRNN``)."""
    if not isinstance(value, str):
        return False
    if value == target:
        return True
    found = _located(value)
    return found is not None and found is _located(target)


def argument_problems(node: DictConfig, key: str, supplied: tuple[str, ...] = (),
                      hints: dict[str, str] | None = None) -> list[str]:
    """The keys of the ``_target_`` node ``node`` (at config key ``key``) that its target does not take, one
    line each naming the accepted ones; ``supplied`` are arguments the caller passes itself (not settable);
    ``hints`` maps a key to the config key it probably belongs to."""
    target = node.get(TARGET)
    try:
        accepted = arguments(target)
    except (RegistryError, ImportError) as error:
        return [f"{key}.{TARGET}={fmt(target)}: {error}"]
    if accepted is None:
        return []
    accepted = [name for name in accepted if name not in supplied]
    problems = []
    for name in map(str, node):
        if name in supplied:
            problems.append(f"{key}.{name}: set from the data by the module that builds it; remove it")
        elif name not in accepted and name not in HYDRA_KEYS:
            close = (hints or {}).get(name) or next(
                (f"{key}.{match}" for match in difflib.get_close_matches(name, accepted, n=1)), None)
            hint = f"did you mean {close}? " if close else ""
            problems.append(f"{key}.{name}: not an argument of {target}; {hint}it takes "
                            f"{', '.join(accepted) or 'no arguments'}")
    return problems


def arguments(target: str) -> list[str] | None:
    """The keyword arguments the object at ``target`` takes (None: any, or no signature to tell)."""
    obj = locate(target)
    try:
        parameters = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY)]
