"""Options declared as dataclasses: defaults, checks, nested nodes, unknown keys, cross-field checks."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from visgrad.errors import ConfigError
from visgrad.options import (
    as_list,
    defaults,
    each,
    fmt,
    nested,
    one_of,
    option,
    option_problems,
    optional,
    pair_of,
    parse_options,
    positive_int,
    positive_number,
    probability,
)


@dataclass
class Inner:
    steps: int = option(12, positive_int, "a positive integer")
    fill: str = option("blur", one_of("blur", "black"), "blur or black")


@dataclass
class Outer:
    num_images: int | None = option(200, optional(positive_int), "null (all) or a positive integer")
    scales: list = option([1.0], each(positive_number), "a list of positive numbers")
    betas: list = option([0.5, 0.9], pair_of(probability), "two numbers in [0, 1)")
    metrics: Inner = nested(Inner)

    def problems(self) -> list[str]:
        if self.num_images is not None and self.num_images < len(self.scales):
            return [f"num_images={self.num_images}: fewer images than scales ({len(self.scales)})"]
        return []


def test_defaults_when_nothing_is_given():
    options = parse_options(Outer, None, "task")
    assert options == Outer()
    assert defaults(Outer) == {"num_images": 200, "scales": [1.0], "betas": [0.5, 0.9],
                               "metrics": {"steps": 12, "fill": "blur"}}


def test_values_are_read_into_nested_nodes():
    options = parse_options(Outer, {"num_images": None, "metrics": {"steps": 3}}, "task")
    assert options.num_images is None and options.metrics == Inner(steps=3)


def test_mutable_defaults_are_not_shared():
    first, second = Outer(), Outer()
    first.scales.append(2.0)
    assert second.scales == [1.0]


def test_every_problem_one_line_with_key_value_allowed_and_default():
    values = {"num_images": 0, "betas": [0.5], "metrics": {"steps": -3, "fill": "white"}, "nums": 1}
    _, problems = option_problems(Outer, values, "task")
    assert problems == [
        "task.nums: not an option of Outer (num_images, scales, betas, metrics)",
        "task.num_images=0: must be null (all) or a positive integer; e.g. task.num_images=200",
        "task.betas=[0.5]: must be two numbers in [0, 1); e.g. task.betas=[0.5,0.9]",
        "task.metrics.steps=-3: must be a positive integer; e.g. task.metrics.steps=12",
        "task.metrics.fill='white': must be blur or black; e.g. task.metrics.fill='blur'",
    ]
    with pytest.raises(ConfigError) as info:
        parse_options(Outer, {"num_images": 0, "metrics": {"steps": True}}, "task")
    assert str(info.value).count("\n") == 1


def test_a_nested_node_must_be_a_group():
    _, problems = option_problems(Outer, {"metrics": 3}, "task")
    assert problems == ["task.metrics=3: must be a group of options (steps, fill)"]


def test_cross_field_problems_get_the_prefix():
    _, problems = option_problems(Outer, {"num_images": 1, "scales": [0.5, 1.0]}, "task")
    assert problems == ["task.num_images=1: fewer images than scales (2)"]


def test_helpers():
    assert as_list(None) == [] and as_list(3) == [3] and as_list((1, 2)) == [1, 2] and as_list("ab") == ["ab"]
    assert fmt(None) == "null" and fmt(True) == "true" and fmt([1, "a"]) == "[1,'a']"
    assert not each(positive_int)([]) and each(positive_int)(2) and not each(positive_int)([1, 0])
    assert not one_of(1)(True) and one_of(True)(True)
