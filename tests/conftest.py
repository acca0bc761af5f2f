"""Shared fixtures: Hydra composition of the real configs, a tiny generated `shapes` dataset, and a few real
digits for the GANs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
os.environ.setdefault("VISGRAD_ROOT", str(ROOT))

# Keep tests quick and repeatable on 2 cores.
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small `shapes` captioning dataset in the CS231n COCO folder format (generated once per session)."""
    from visgrad.data.shapes import ensure_shapes

    root = tmp_path_factory.mktemp("shapes")
    return ensure_shapes(root, num_train=200, num_val=60, seed=0)


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose ``conf/<config_name>.yaml`` with overrides, as ``python <app>.py overrides...`` would.

    Outputs and data go under the test's tmp_path unless the overrides say otherwise; the Hydra config is
    registered so ``${hydra:...}`` interpolations resolve.
    """

    def _compose(config_name: str, overrides: list[str] = ()) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / "out")
            if not any(o.startswith("paths.data_dir=") for o in overrides):
                cfg.paths.data_dir = str(tmp_path / "data")
            cfg.hydra.runtime.output_dir = cfg.paths.output_dir
            cfg.hydra.job.num = 0
            cfg.print_config = False
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture
def one_torch_thread():
    """Run a test on one torch thread: many tiny ops spend most of their time in OpenMP barriers with two
    threads on a busy machine (the Transformer tests ran 40x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_digits():
    """48 training digits (val: the other 1,749) in batches of 8: 6 steps an epoch."""
    from visgrad.data.digits import DigitsDataModule

    data = DigitsDataModule(num_val=1749, batch_size=8)
    data.setup("fit")
    return data
