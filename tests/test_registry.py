"""The registry: names, dotted paths to plugins, messages, and building injected objects."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

import pytest

from visgrad.errors import ConfigError
from visgrad.registry import Registry, RegistryError, build, locate, partial_config


@dataclass(frozen=True)
class Thing:
    name: str
    label: str


THING = Thing("plugged", "A plugged thing")
NOT_A_THING = 3


def make_thing(name: str) -> Thing:
    return Thing(name, name.upper())


@dataclass
class Net:
    width: int
    depth: int = 1
    inner: object = None


def make_registry(**kwargs) -> Registry[Thing]:
    registry = Registry("thing", Thing, **kwargs)
    registry.add(Thing("alpha", "Alpha"))
    registry.add(Thing("beta", "Beta"))
    return registry


def test_registered_names_and_labels():
    registry = make_registry()
    assert registry.names() == ["alpha", "beta"]
    assert registry.get("beta").label == "Beta"
    assert registry.label("alpha") == "Alpha"
    assert "alpha" in registry and "gamma" not in registry
    assert [t.name for t in registry] == ["alpha", "beta"] and len(registry) == 2


def test_an_entry_passes_through():
    assert make_registry().get(THING) is THING


def test_dotted_path_finds_a_plugin_entry():
    assert make_registry().get(f"{__name__}.THING") is THING
    assert make_registry().accepts(f"{__name__}.THING")


def test_unknown_name_lists_the_choices_and_the_plugin_form():
    with pytest.raises(RegistryError, match=r"unknown thing 'bogus_thing'; one of alpha, beta, or the dotted "
                                            r"path of a Thing") as info:
        make_registry().get("bogus_thing")
    assert isinstance(info.value, ConfigError)
    assert not make_registry().accepts("bogus_thing")


def test_dotted_path_to_the_wrong_kind_is_refused():
    with pytest.raises(RegistryError, match=r"NOT_A_THING is an int, not a Thing"):
        make_registry().get(f"{__name__}.NOT_A_THING")


def test_coerce_turns_other_objects_into_entries():
    registry = make_registry(coerce=lambda obj, path: obj(path) if callable(obj) else None)
    entry = registry.get(f"{__name__}.make_thing")
    assert entry == Thing(f"{__name__}.make_thing", f"{__name__}.MAKE_THING".upper())


def test_names_are_registered_once_and_without_dots():
    registry = make_registry()
    with pytest.raises(ValueError, match="already registered"):
        registry.add(Thing("alpha", "again"))
    with pytest.raises(ValueError, match="must not contain dots"):
        registry.add(Thing("a.b", "dotted"))


def test_locate_messages_name_what_is_missing():
    assert locate("visgrad.registry.Registry") is Registry
    with pytest.raises(RegistryError, match="no module 'bogus_package_xyz' can be imported"):
        locate("bogus_package_xyz.module.name")
    with pytest.raises(RegistryError, match=r"module visgrad.registry has no attribute 'Nope'"):
        locate("visgrad.registry.Nope")


def test_locate_reports_a_plugin_that_fails_to_import_its_own_dependency(tmp_path, monkeypatch):
    (tmp_path / "broken_plugin_xyz.py").write_text("import missing_dependency_xyz\nX = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="missing_dependency_xyz"):
        locate("broken_plugin_xyz.X")
    sys.modules.pop("broken_plugin_xyz", None)


def test_build_from_a_config_and_from_a_partial():
    net = build({"_target_": f"{__name__}.Net", "width": 4, "inner": {"_target_": f"{__name__}.Net",
                                                                      "width": 2}}, depth=3)
    assert net == Net(4, 3, Net(2))
    assert build(functools.partial(Net, width=5), depth=2) == Net(5, 2)
    with pytest.raises(ConfigError, match="expected a _target_ config"):
        build({"width": 4})


def test_partial_config_round_trips_through_build():
    config = partial_config(functools.partial(Net, width=7, depth=2))
    assert config == {"_target_": f"{__name__}.Net", "width": 7, "depth": 2}
    assert build(config) == Net(7, 2)
    assert partial_config(config) == config
    with pytest.raises(ValueError, match="positional"):
        partial_config(functools.partial(Net, 7))
