"""``visgrad.optimizers.optimizer_config``: the optimizer and scheduler that modules build from factories."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
import torch

from visgrad.optimizers import check_interval, optimizer_config

ADAM = functools.partial(torch.optim.Adam, lr=1e-3)
ONE_CYCLE = {"_target_": "torch.optim.lr_scheduler.OneCycleLR", "max_lr": 1e-3}


class Untrained:
    """A module whose trainer must not be asked for its steps."""

    @property
    def trainer(self):
        raise AssertionError("the trainer was asked for total_steps")


def params() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(3))]


def test_without_a_scheduler_the_optimizer_alone() -> None:
    optimizer = optimizer_config(params(), ADAM, None, "step", Untrained())
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["lr"] == 1e-3


def test_one_cycle_takes_the_trainers_steps_and_anneals_over_them() -> None:
    one_cycle = functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=1e-3, pct_start=0.1)
    module = SimpleNamespace(trainer=SimpleNamespace(estimated_stepping_batches=20))
    config = optimizer_config(params(), ADAM, one_cycle, "step", module)
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "step" and scheduler.total_steps == 20
    rates = []
    for _ in range(20):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(1e-3 / 25)  # OneCycleLR's default div_factor
    assert rates[1] == pytest.approx(1e-3)  # the peak after 10% of the steps, then down to ~0
    assert rates[1:] == sorted(rates[1:], reverse=True) and rates[-1] < 1e-5


def test_total_steps_of_the_config_win() -> None:
    config = optimizer_config(params(), ADAM, {**ONE_CYCLE, "total_steps": 7}, "epoch", Untrained())
    assert config["lr_scheduler"]["scheduler"].total_steps == 7
    assert config["lr_scheduler"]["interval"] == "epoch"


def test_a_scheduler_without_total_steps_does_not_ask_the_trainer() -> None:
    step = {"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 2}
    config = optimizer_config(params(), ADAM, step, "epoch", Untrained())
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)


def test_bad_interval_is_named() -> None:
    check_interval("step")
    with pytest.raises(ValueError, match="scheduler_interval must be one of .*'bogus_interval'"):
        check_interval("bogus_interval")
