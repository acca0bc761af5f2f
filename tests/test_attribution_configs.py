"""The attribution methods' option nodes in the task configs equal the options dataclasses' declared
defaults, so the config files cannot drift from the code."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from visgrad.options import defaults
from visgrad.vision.attribution import ATTRIBUTIONS

CONF_TASK = Path(__file__).resolve().parents[1] / "conf" / "task"
WITH_OPTIONS = [entry for entry in ATTRIBUTIONS if entry.options is not None]


def test_the_built_in_methods_with_options_are_the_expected_ones():
    """A guard that the parametrisation below sees every built-in method with options."""
    assert {entry.name for entry in WITH_OPTIONS} == {
        "smoothgrad", "integrated_gradients", "attention_rollout", "gradcam", "guided_gradcam", "occlusion",
        "rise"}


@pytest.mark.parametrize("task", ["saliency", "sanity_checks"])
def test_every_method_node_equals_its_declared_defaults(task):
    nodes = OmegaConf.to_container(OmegaConf.load(CONF_TASK / f"{task}.yaml").task)
    for entry in WITH_OPTIONS:
        assert entry.name in nodes, f"conf/task/{task}.yaml: no task.{entry.name} node"
        assert nodes[entry.name] == defaults(entry.options), f"conf/task/{task}.yaml: task.{entry.name}"
