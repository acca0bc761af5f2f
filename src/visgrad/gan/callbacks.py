"""Lightning callbacks of GAN runs: sample quality as validation metrics (of any generative module),
and sample figures.

``SampleQualityMetrics`` trains the judge of :mod:`visgrad.gan.metrics` on the datamodule's training images
when fitting starts, then logs at every validation the scores of ``pl_module.generate(n, seed)`` (a
generative module's samples (n, C, S, S) in [-1, 1], drawn with ``seed``: the same draws each time):

- ``val/confident``, ``val/entropy``, ``val/fd``, ``val/precision``, ``val/recall``: the samples
  (``val/fd`` is the default monitored metric of the generative experiments, lower is better);
- ``ceiling/*``: the same metrics of as many held-out real images (the val split), the best a generator
  can hope for at this sample size;
- ``floor/*``: the untrained generator (the weights before the first step; computed before a resumed
  run loads its checkpoint, so the same value in every attempt).

The judge must train on at least :data:`MIN_JUDGE_IMAGES` real images (``setup`` refuses fewer; ``train.py``
checks the config before any work): a judge trained on a handful of images maps everything alike, and the
Fréchet distances it gives come out small, looking excellent, while meaning nothing.

``GANSampleFigures`` adds a grid of samples of the module's fixed noise to TensorBoard after every
training epoch (same noise: the grids show progress), and at the end of fitting writes ``samples.png`` and
``interpolation.png`` (rows of images along straight lines between two noise vectors) into the run folder.
For a conditional module the grid shows one class per row (when the classes divide the fixed noise), and
each interpolation row keeps one class.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from rich.console import Console

from visgrad.data.labelled_images import LabelledImages
from visgrad.errors import ConfigError
from visgrad.gan.figures import interpolation_noise, log_image, sample_grid, save_png
from visgrad.gan.metrics import SCORES, SampleQuality
from visgrad.generative.labels import grid_row_length

MIN_JUDGE_IMAGES = 100  # 10 per digit class; the judge's features are 64-d


class SampleQualityMetrics(pl.Callback):
    """Logs ``val/*``, ``ceiling/*`` and ``floor/*`` of every sample-quality score (:attr:`metric_names`).

    Args:
    num_samples: generated images per evaluation (None: as many as val images, so that ``ceiling``
        and the samples have the same sample-size bias).
    judge_epochs: training epochs of the judge.
    max_train: the judge trains on (and the real features come from) at most this many training
        images (the first ones; MNIST has 60,000).
    seed: seed of the judge's training and of the evaluation noise.
    """

    metric_names = tuple(f"{prefix}/{score}" for prefix in ("val", "ceiling", "floor") for score in SCORES)

    def __init__(
        self, num_samples: int | None = None, judge_epochs: int = 5, max_train: int = 10000, seed: int = 0
    ) -> None:
        if isinstance(judge_epochs, bool) or not isinstance(judge_epochs, int) or judge_epochs < 1:
            raise ValueError(f"judge_epochs={judge_epochs!r}: must be a positive integer (an untrained "
                             "judge's distances mean nothing)")
        self.num_samples, self.judge_epochs, self.max_train, self.seed = (
            num_samples,
            judge_epochs,
            max_train,
            seed,
        )
        self.quality: SampleQuality | None = None
        self.reference: dict[str, float] = {}

    def setup(self, trainer: pl.Trainer, pl_module, stage: str) -> None:
        if stage != "fit" or self.quality is not None:
            return
        train, val = trainer.datamodule.splits["train"], trainer.datamodule.splits["val"]
        train = LabelledImages(
            train.images[: self.max_train], train.labels[: self.max_train], train.class_names
        )
        if len(train.labels) < MIN_JUDGE_IMAGES:
            raise ConfigError(f"the sample-quality judge would train on {len(train.labels)} images (the "
                              f"training split, at most max_train={self.max_train}), too few for its "
                              f"distances to mean anything: give it at least {MIN_JUDGE_IMAGES}")
        n = self.num_samples or len(val.labels)
        console = Console()
        with console.status(f"training the judge of sample quality on {len(train.labels)} real images"):
            self.quality = SampleQuality(train, epochs=self.judge_epochs, seed=self.seed)
        self.n = n
        real = val.images[:n] if n <= len(val.labels) else val.images
        ceiling, floor = self.quality.score(real), self.quality.score(pl_module.generate(n, self.seed + 1))
        self.reference = {
            **{f"ceiling/{k}": v for k, v in ceiling.items()},
            **{f"floor/{k}": v for k, v in floor.items()},
        }
        console.print(
            f"sample-quality judge: accuracy {self.quality.accuracy(val):.3f} on {len(val.labels)} "
            f"val images; real val images (ceiling) {_fmt(ceiling)}; untrained generator (floor) "
            f"{_fmt(floor)}",
            soft_wrap=True,
        )

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        if trainer.sanity_checking or self.quality is None:
            return
        scores = self.quality.score(pl_module.generate(self.n, self.seed + 1))
        pl_module.log_dict({**{f"val/{k}": v for k, v in scores.items()}, **self.reference})


class GANSampleFigures(pl.Callback):
    """Args:
    output_dir: where ``samples.png`` and ``interpolation.png`` go (the run folder).
    nrow: images per grid row (of a conditional module: the fixed noise's images per class, when the classes
        divide them).
    interpolation_rows, interpolation_steps: strips and images per strip of ``interpolation.png``.
    scale: pixel repetition of the PNGs.
    """

    def __init__(
        self,
        output_dir: str,
        nrow: int = 8,
        interpolation_rows: int = 4,
        interpolation_steps: int = 10,
        scale: int = 2,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.nrow, self.rows, self.steps, self.scale = nrow, interpolation_rows, interpolation_steps, scale

    def _grid(self, pl_module, scale: int = 1) -> torch.Tensor:
        """The fixed noise's samples (and :meth:`fixed_labels`) as a grid."""
        noise = pl_module.fixed_noise
        nrow = grid_row_length(noise.shape[0], pl_module.hparams.num_classes, self.nrow)
        return sample_grid(pl_module.sample(noise), nrow, scale)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        log_image(trainer, "samples/fixed_noise", self._grid(pl_module))

    def on_fit_end(self, trainer: pl.Trainer, pl_module) -> None:
        if not trainer.is_global_zero or trainer.fast_dev_run:
            return
        samples = save_png(self._grid(pl_module, self.scale), self.output_dir / "samples.png")
        noise = pl_module.fixed_noise
        rows = min(self.rows, noise.shape[0] // 2)
        path = interpolation_noise(noise[:rows], noise[rows : 2 * rows], self.steps)
        labels = pl_module.fixed_labels(rows)  # one class per row (None: unconditional)
        labels = None if labels is None else labels.repeat_interleave(self.steps)
        strip = save_png(sample_grid(pl_module.sample(path, labels), self.steps, self.scale),
                         self.output_dir / "interpolation.png")
        Console().print(f"samples: {samples}\ninterpolation: {strip}", soft_wrap=True)


def _fmt(scores: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
