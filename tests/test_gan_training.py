"""GANs: generator/discriminator shapes, one optimisation step of each variant, the train.py run with its
metrics and figures, the NaN guard under manual optimisation, MNIST's on-disk format, and the
sample-quality metrics on known inputs."""

from __future__ import annotations

import functools
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import scipy.linalg
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from visgrad.callbacks import NonFiniteError, NonFiniteGuard
from visgrad.data.digits import DigitsDataModule, load_digits_28
from visgrad.data.labelled_images import LabelledImages
from visgrad.data.mnist import MNISTDataError, MNISTDataModule
from visgrad.gan import GAN_LOSSES, GANModule, sample_noise
from visgrad.gan.figures import interpolation_noise, sample_grid
from visgrad.gan.metrics import (
    SampleQuality,
    class_entropy,
    confident_fraction,
    frechet_distance,
    gaussian_stats,
)
from visgrad.gan.models import DCDiscriminator, DCGenerator, FCDiscriminator, FCGenerator
from visgrad.training import train

VARIANTS = ("gan_vanilla", "gan_ls", "gan_dc", "gan_wgan_gp")
FC_VARIANTS = ("gan_vanilla", "gan_ls")
FC = (functools.partial(FCGenerator, hidden=64), functools.partial(FCDiscriminator, hidden=32))
DC = (DCGenerator, DCDiscriminator)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size", [28, 32])
def test_generator_and_discriminator_shapes(size: int) -> None:
    noise = sample_noise(3, 96, seed=0)
    for generator, discriminator in (
        (FCGenerator(96, (1, size, size)), FCDiscriminator((1, size, size))),
        (DCGenerator(96, (1, size, size)), DCDiscriminator((1, size, size))),
    ):
        images = generator.eval()(noise)
        assert images.shape == (3, 1, size, size) and images.abs().max() <= 1
        assert discriminator(images).shape == (3, 1)
    # the course's layer sizes at 28x28: weights + biases (+ BatchNorm's two per channel)
    assert count(FCGenerator()) == (96 * 1024 + 1024) + (1024 * 1024 + 1024) + (1024 * 784 + 784)
    assert count(FCDiscriminator()) == (784 * 256 + 256) + (256 * 256 + 256) + (256 + 1)
    assert count(DCDiscriminator()) == (25 * 32 + 32) + (25 * 32 * 64 + 64) + (1024 * 1024 + 1024) + 1025
    assert count(DCGenerator()) == (
        (96 * 1024 + 1024)
        + 2 * 1024
        + (1024 * 6272 + 6272)
        + 2 * 6272
        + (128 * 64 * 16 + 64)
        + 2 * 64
        + (64 * 16 + 1)
    )


def fit_steps(
    module: GANModule, data: DigitsDataModule, batches: int, callbacks=(), val_batches: int = 0
) -> pl.Trainer:
    """Fit ``module`` on ``batches`` training batches (then ``val_batches`` validation batches)."""
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=batches,
        limit_val_batches=val_batches,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        callbacks=list(callbacks),
    )
    trainer.fit(module, datamodule=data)
    return trainer


@pytest.mark.parametrize(
    "networks,loss,n_critic", [(FC, "vanilla", 1), (FC, "ls", 1), (DC, "vanilla", 1), (DC, "wgan_gp", 2)]
)
def test_one_training_step_of_each_variant(tiny_digits, networks, loss: str, n_critic: int) -> None:
    """One batch: the discriminator takes one Adam step; the generator too, unless n_critic > 1 (then it
    waits for the n_critic-th batch)."""
    torch.manual_seed(0)
    module = GANModule(*networks, loss, n_critic=n_critic, image_shape=[1, 28, 28])
    before = {k: v.clone() for k, v in module.state_dict().items()}
    fit_steps(module, tiny_digits, batches=1)
    changed = {k for k, v in module.state_dict().items() if not torch.equal(v, before[k])}
    d_params = [k for k, _ in module.discriminator.named_parameters(prefix="discriminator")]
    if loss == "wgan_gp":  # E[D(G(z))] - E[D(x)] and the penalty do not depend on the last bias
        assert d_params.pop() not in changed
    assert all(k in changed for k in d_params)
    g_changed = [k in changed for k, _ in module.generator.named_parameters(prefix="generator")]
    assert all(g_changed) if n_critic == 1 else not any(g_changed)
    d_opt, g_opt = (opt.state_dict()["state"] for opt in module.trainer.optimizers)
    assert {int(s["step"]) for s in d_opt.values()} == {1}
    assert {int(s["step"]) for s in g_opt.values()} == ({1} if n_critic == 1 else set())


def test_nonfinite_guard_under_manual_optimisation(tiny_digits) -> None:
    """An Inf gradient of the discriminator stops the run (raise) or skips that step (skip)."""
    from fault_injection import PoisonGradient

    small = (functools.partial(FCGenerator, hidden=32), functools.partial(FCDiscriminator, hidden=16))
    module = GANModule(*small)
    with pytest.raises(
        NonFiniteError, match=r"global step 0 .*gradient of discriminator.1.weight has 0 NaN and 1 Inf"
    ):
        fit_steps(
            module, tiny_digits, 2, [NonFiniteGuard("raise"), PoisonGradient(0, "discriminator.1.weight")]
        )
    module = GANModule(*small)
    guard = NonFiniteGuard("skip")
    fit_steps(module, tiny_digits, 2, [guard, PoisonGradient(0, "discriminator.1.weight")])
    assert guard.skipped == 1
    d_steps = {int(s["step"]) for s in module.trainer.optimizers[0].state_dict()["state"].values()}
    assert d_steps == {1}  # batch 0's discriminator step was dropped, batch 1's taken
    assert all(torch.isfinite(p).all() for p in module.parameters())


def gan_overrides(variant: str) -> list[str]:
    """A tiny run of ``experiment=variant`` (the FC pair with 32 and 16 hidden units)."""
    return [
        f"experiment={variant}",
        "data.num_val=1697",
        "data.batch_size=25",
        "data.repeat=1",
        *(["model.generator.hidden=32", "model.discriminator.hidden=16"] if variant in FC_VARIANTS else []),
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.check_val_every_n_epoch=1",
        "trainer.log_every_n_steps=1",
        "callbacks.sample_quality.judge_epochs=1",
        "callbacks.sample_quality.num_samples=64",
        "callbacks.sample_quality.max_train=100",
        "callbacks.rich_progress_bar=null",
    ]


def test_train_py_gan_run_writes_metrics_grids_and_figures(compose_cfg) -> None:
    cfg = compose_cfg("train", gan_overrides("gan_vanilla"))
    assert cfg.monitor.metric == "val/fd" and cfg.trainer.gradient_clip_val is None
    assert cfg.model.loss == "vanilla" and cfg.data._target_.endswith("DigitsDataModule")
    assert train(cfg) == pytest.approx(
        json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["val/fd"]
    )
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("val/fd", "val/confident", "val/entropy", "train/d_real", "train/d_fake", "val/d_loss"):
        assert math.isfinite(metrics[key]), key
    assert metrics["ceiling/fd"] < metrics["floor/fd"]  # (the judge of 4 steps is no classifier yet)
    assert (out / "samples.png").is_file() and (out / "interpolation.png").is_file()
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert "samples/fixed_noise" in events.Tags()["images"]
    assert {"train/d_loss_step", "train/g_loss_step", "val/fd"} <= set(events.Tags()["scalars"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_gan_experiments_compose(compose_cfg, variant: str) -> None:
    cfg = compose_cfg("train", [f"experiment={variant}"])
    assert cfg.model._target_ == "visgrad.gan.GANModule" and cfg.task_name == "gan"
    expected = {
        "gan_vanilla": ("FCGenerator", "FCDiscriminator", "vanilla"),
        "gan_ls": ("FCGenerator", "FCDiscriminator", "ls"),
        "gan_dc": ("DCGenerator", "DCDiscriminator", "vanilla"),
        "gan_wgan_gp": ("DCGenerator", "DCDiscriminator", "wgan_gp"),
    }[variant]
    model = cfg.model
    assert (model.generator._target_, model.discriminator._target_, model.loss) == (
        f"visgrad.gan.models.{expected[0]}", f"visgrad.gan.models.{expected[1]}", expected[2])
    assert model.optimizer._target_ == "torch.optim.Adam"
    assert model.optimizer.lr == (5e-4 if variant == "gan_wgan_gp" else 1e-3)
    assert list(model.optimizer.betas) == ([0.5, 0.9] if variant == "gan_wgan_gp" else [0.5, 0.999])
    assert ("hidden" in model.generator) == (variant in FC_VARIANTS)
    # the DCGAN pair is conditioned on the digit's class, one class per row of its 80-sample grid
    assert (model.num_classes, model.num_fixed) == ((0, 64) if variant in FC_VARIANTS else (10, 80))


# ---------------------------------------------------------------------------------------------------- data


def test_digits_are_upsampled_and_centred() -> None:
    data = load_digits_28()
    assert data.images.shape == (1797, 1, 28, 28) and data.labels.shape == (1797,)
    assert data.images.min() == -1 and data.images.max() <= 1
    assert torch.bincount(data.labels).min() >= 170  # about 180 of each digit
    border = torch.ones(28, 28, dtype=torch.bool)
    border[4:24, 4:24] = False
    assert (data.images[:, 0, border] == -1).all()  # MNIST's layout: a 20x20 digit, 4 black pixels around


def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format: zero bytes, a type code (0x08: uint8), the number of dimensions, big-endian int32
    sizes, then the data."""
    path.write_bytes(
        struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
        + struct.pack(f">{array.ndim}i", *array.shape)
        + array.astype(np.uint8).tobytes()
    )


def test_mnist_reads_torchvision_raw_folder(tmp_path: Path) -> None:
    with pytest.raises(MNISTDataError, match=r"data.root=.*missing .*train-images-idx3-ubyte.*data=digits"):
        MNISTDataModule(str(tmp_path)).prepare_data()
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {"train": rng.integers(0, 256, (12, 28, 28)), "t10k": rng.integers(0, 256, (6, 28, 28))}
    for split, array in images.items():
        write_idx(raw / f"{split}-images-idx3-ubyte", array)
        write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(len(array)) % 10)
    data = MNISTDataModule(str(tmp_path), max_train=10, num_val=4, batch_size=5)
    data.prepare_data()
    data.setup("fit")
    train_split, val = data.splits["train"], data.splits["val"]
    assert train_split.images.shape == (10, 1, 28, 28) and val.images.shape == (4, 1, 28, 28)
    torch.testing.assert_close(val.images[:, 0], torch.from_numpy(images["t10k"][:4]).float() / 127.5 - 1)
    assert val.labels.tolist() == [0, 1, 2, 3] and data.model_kwargs() == {"image_shape": [1, 28, 28]}
    with pytest.raises(ValueError, match=r"data.num_val=7: MNIST under .* has only 6"):
        MNISTDataModule(str(tmp_path), num_val=7).setup("fit")


# ------------------------------------------------------------------------------------------------- metrics


def test_frechet_distance_matches_the_scipy_formula() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = a @ a.T, b @ b.T + np.eye(5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    got = frechet_distance(*(torch.from_numpy(x) for x in (mu1, s1, mu2, s2)))
    assert got == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(
        torch.from_numpy(mu1), torch.from_numpy(s1), torch.from_numpy(mu1), torch.from_numpy(s1)
    ) == pytest.approx(0.0, abs=1e-8)
    # equal covariances: only the means count
    assert frechet_distance(torch.zeros(3), torch.eye(3), torch.ones(3), torch.eye(3)) == pytest.approx(3.0)


def test_class_histogram_metrics_on_known_probabilities() -> None:
    eye = torch.eye(4)
    assert class_entropy(eye.repeat(5, 1)) == pytest.approx(1.0)  # every class equally often
    assert class_entropy(eye[[2] * 7]) == pytest.approx(0.0)  # one class only
    assert class_entropy(eye[[0, 1, 0, 1]]) == pytest.approx(math.log(2) / math.log(4))
    probs = torch.tensor([[0.95, 0.05], [0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    assert confident_fraction(probs) == pytest.approx(0.5)
    mu, sigma = gaussian_stats(torch.tensor([[1.0, 0.0], [3.0, 2.0]]))
    torch.testing.assert_close(mu, torch.tensor([2.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(sigma, torch.tensor([[2.0, 2.0], [2.0, 2.0]], dtype=torch.float64))


@pytest.fixture(scope="module")
def digits_quality() -> tuple[SampleQuality, LabelledImages]:
    data = DigitsDataModule(num_val=300)
    data.setup("fit")
    return SampleQuality(data.splits["train"], epochs=3), data.splits["val"]


def test_quality_of_real_digits_is_near_the_ceiling_and_noise_near_the_floor(digits_quality) -> None:
    quality, val = digits_quality
    assert quality.accuracy(val) > 0.85
    real = quality.score(val.images)
    assert real["entropy"] > 0.95 and real["confident"] > 0.6 and real["fd"] < 60
    noise = quality.score(sample_noise(300, 28 * 28, seed=0).view(300, 1, 28, 28))
    blank = quality.score(-torch.ones(300, 1, 28, 28))
    for floor in (noise, blank):
        assert floor["fd"] > 15 * real["fd"] and floor["entropy"] < 0.5
    assert blank["confident"] == 0.0 or blank["entropy"] == 0.0  # one class at most: no coverage
    # collapsed: no held-out real digit, but most noise images and white blobs
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    blobs = torch.stack([torch.where((rows - 14) ** 2 + (cols - 14) ** 2 <= r * r, 1.0, -1.0)
                         for r in (5, 6, 7, 8, 9, 10)]).unsqueeze(1)
    assert real["collapsed"] == 0.0 and noise["collapsed"] > 0.5 and quality.score(blobs)["collapsed"] == 1.0


def test_figures_shapes() -> None:
    starts, ends = torch.zeros(2, 3), torch.ones(2, 3)
    path = interpolation_noise(starts, ends, steps=5)
    assert path.shape == (10, 3)
    torch.testing.assert_close(path[:5, 0], torch.linspace(0, 1, 5))
    grid = sample_grid(torch.zeros(6, 1, 4, 4), nrow=3, scale=2)
    assert grid.shape == (3, 2 * (8 + 2) + 2, 3 * (8 + 2) + 2) and grid.min() >= 0 and grid.max() <= 1


def test_preflight_names_each_bad_gan_key(compose_cfg) -> None:
    from visgrad.utils.preflight import ConfigError, validate_config

    cfg = compose_cfg(
        "train",
        [
            "experiment=gan_dc",
            "model.loss=bogus_loss",
            "model.optimizer.betas=[0.5]",
            "model.n_critic=0",
            "data.num_val=1797",
            "data.image_size=30",
            "model.optimizer.lr=-1",
            "model.augment=[translation,bogus_augment]",
            "model.r1_weight=-1",
        ],
    )
    with pytest.raises(ConfigError) as error:
        validate_config(cfg)
    lines = str(error.value).splitlines()
    assert len(lines) == 8
    assert any(line.startswith("model.augment=['translation', 'bogus_augment']: must be a list of color, "
                               "translation, cutout") for line in lines), lines
    assert "model.r1_weight=-1: must be a number >= 0 (0: no R1 penalty); e.g. model.r1_weight=1.0" in lines
    assert f"model.loss='bogus_loss': must be {GAN_LOSSES.allowed}; e.g. model.loss=vanilla" in lines
    assert any(line.startswith("model.optimizer.betas=[0.5]: must be two floats in [0, 1) (0.0, not 0)")
               for line in lines)
    assert "data.num_val=1797: must be an integer in [1, 1796]; e.g. data.num_val=300" in lines
    assert any(
        line.startswith("data.image_size=30: must be an integer >= 16 divisible by 4") for line in lines
    )
    # a GAN model without its experiment preset: captioning data, gradient clipping, a captioning metric
    cfg = compose_cfg("train", ["model=gan_dc"])
    with pytest.raises(ConfigError) as error:
        validate_config(cfg)
    lines = str(error.value).splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "data._target_='visgrad.data.CaptionDataModule'",
        "trainer.gradient_clip_val=5.0",
        "monitor.metric='val/bleu4'",
    ]
    assert all("experiment=gan_vanilla|gan_ls|gan_dc|gan_wgan_gp" in line for line in lines)
    validate_config(compose_cfg("train", ["experiment=gan_wgan_gp", "data=mnist", "data.root=/nowhere"]))
    # Adam refuses betas of mixed types: the paper's WGAN-GP betas are written 0.0, not 0
    (line,) = str(pytest.raises(ConfigError, validate_config, compose_cfg(
        "train", ["experiment=gan_wgan_gp", "model.optimizer.betas=[0,0.9]"])).value).splitlines()
    assert line.startswith("model.optimizer.betas=[0, 0.9]: must be two floats in [0, 1) (0.0, not 0)")
    validate_config(compose_cfg("train", ["experiment=gan_wgan_gp", "model.optimizer.betas=[0.0,0.9]"]))
    captioner_on_digits = (r"^data._target_='visgrad.data.digits.DigitsDataModule': images for the GANs, "
                           r"which model 'visgrad.captioning.CaptioningModule' does not")
    with pytest.raises(ConfigError, match=captioner_on_digits):
        validate_config(compose_cfg("train", ["data=digits"]))


@pytest.mark.slow
def test_killed_gan_run_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    """200 training digits in batches of 50, 3 epochs: 4 batches an epoch, 2 optimiser steps each (global
    step 8 per epoch). SIGKILL at global step 12 (epoch 1, batch 2), after last.ckpt of epoch 0 (step 8);
    ``resume=RUN`` ends with the weights, both Adam states and the metrics of an uninterrupted run."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    overrides = [
        *gan_overrides("gan_vanilla"),
        "data.num_val=1597",
        "data.batch_size=50",
        "trainer.limit_train_batches=null",
        "trainer.max_epochs=3",
        "trainer.limit_val_batches=2",
        "trainer.deterministic=true",
        "print_config=false",
        "hydra/job_logging=disabled",
        "hydra/hydra_logging=disabled",
    ]
    env = {
        **os.environ,
        "VISGRAD_ROOT": str(tmp_path),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root / "tests")]),
    }

    def start(args: list[str]) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, str(root / "train.py"), *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(process: subprocess.Popen) -> int:
        _, err = process.communicate(timeout=600)
        assert process.returncode in (0, -9), err[-3000:]
        return process.returncode

    whole = start([*overrides, f"hydra.run.dir={tmp_path / 'whole'}"])
    killed = start(
        [*overrides, "+callbacks.kill._target_=fault_injection.KillAtStep", "+callbacks.kill.step=12"]
    )
    assert finish(killed) == -9
    (run,) = (tmp_path / "logs" / "gan" / "runs").iterdir()
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 8
    assert finish(start([f"resume={run}"])) == 0
    assert finish(whole) == 0

    resumed = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    uninterrupted = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["global_step"] == uninterrupted["global_step"] == 24
    for name, value in uninterrupted["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], value, rtol=1e-6, atol=1e-7, msg=name)
    assert len(uninterrupted["optimizer_states"]) == 2  # the discriminator's and the generator's Adam
    for k, state in enumerate(uninterrupted["optimizer_states"]):
        for i, moments in state["state"].items():
            for key, value in moments.items():
                torch.testing.assert_close(
                    resumed["optimizer_states"][k]["state"][i][key],
                    value,
                    rtol=1e-6,
                    atol=1e-9,
                    msg=f"optimizer {k} param {i} {key}",
                )
    resumed_metrics = json.loads((run / "metrics.json").read_text())
    whole_metrics = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert resumed_metrics.keys() == whole_metrics.keys() and "val/fd" in whole_metrics
    assert resumed_metrics == pytest.approx(whole_metrics, rel=1e-5, abs=1e-7)
