"""``AdversarialClassifierModule``: PGD adversarial training (Madry et al. 2018) of an injected classifier.

Each training batch is replaced by the adversarial images that PGD
(:func:`visgrad.vision.fgsm_pgd.pgd_pixels`, untargeted, from a random start) finds against the current
network, in pixel space through the inputs' normalisation (``mean``, ``std``: the network's inputs are
``(pixels - mean) / std``), and the network is trained with cross-entropy on them: the min-max problem
``min_theta E max_{||delta|| <= eps} L(theta, x + delta, y)``. The attack runs with the network in eval
mode (batch norm and dropout as at test time), then training continues in train mode. Validation logs,
besides ``val/loss`` and ``val/acc`` on the clean images, ``val/robust_acc``: the accuracy on the same
attack's images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from visgrad.classification.export import load_export
from visgrad.classification.module import DEFAULT_OPTIMIZER, ClassifierModule, Factory
from visgrad.images import Normalization
from visgrad.vision.fgsm_pgd import pgd_pixels

NORMS = ("linf", "l2")


class AdversarialClassifierModule(ClassifierModule):
    """Args: those of :class:`~visgrad.classification.ClassifierModule`, and the training attack:

    eps: the budget in pixel levels (/255), per pixel (``norm="linf"``) or of the image (``"l2"``).
    alpha: PGD's step in pixel levels (None: ``2.5 * eps / steps``, Madry et al.).
    steps: PGD's steps per batch.
    norm: ``"linf"`` or ``"l2"``.
    random_start: whether PGD starts at a random point of the ball.
    mean, std: the per-channel normalisation of the network's inputs (3 values each).
    init_from: an exported classifier file (:func:`~visgrad.classification.load_export`) whose weights the
        network starts from (adversarial fine-tuning of a standard model), or None (its own initialisation).
    """

    def __init__(
        self,
        net: Factory,
        class_names: list[str],
        image_size: int,
        optimizer: Factory = DEFAULT_OPTIMIZER,
        scheduler: Factory | None = None,
        scheduler_interval: str = "epoch",
        eps: float = 8.0,
        alpha: float | None = None,
        steps: int = 10,
        norm: str = "linf",
        random_start: bool = True,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        init_from: str | None = None,
    ) -> None:
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if not eps > 0 or not steps >= 1 or (alpha is not None and not alpha > 0):
            raise ValueError(f"eps={eps}, alpha={alpha}, steps={steps}: eps and alpha (or None) must be "
                             "positive numbers of pixel levels (/255), steps a positive integer")
        super().__init__(net, class_names, image_size, optimizer, scheduler, scheduler_interval)
        self.input_norm = Normalization(tuple(float(m) for m in mean), tuple(float(s) for s in std))
        if init_from is not None:
            start, _ = load_export(Path(init_from).expanduser())
            self.net.load_state_dict(start.state_dict())

    @property
    def metric_names(self) -> list[str]:
        return [*super().metric_names, "val/robust_acc"]

    def adversarial(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """PGD's adversarial images (N, 3, S, S) of ``images`` (normalised) against the network in eval
        mode."""
        hp, norm = self.hparams, self.input_norm
        alpha = 2.5 * hp.eps / hp.steps if hp.alpha is None else hp.alpha
        training = self.net.training
        self.net.eval()
        with torch.inference_mode(False), torch.enable_grad():
            pixels = norm.unnormalize(images.clone())  # a normal tensor even in Lightning's inference mode
            adv = pgd_pixels(lambda p: self.net(norm.normalize(p)), pixels, labels.clone(), hp.eps / 255,
                             alpha / 255, hp.steps, hp.random_start, targeted=False, norm=hp.norm)
        self.net.train(training)
        return norm.normalize(adv)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        return self._step((self.adversarial(images, labels), labels), "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        images, labels = batch
        with torch.no_grad():
            logits = self.net(self.adversarial(images, labels))
        acc = (logits.argmax(dim=1) == labels).float().mean()
        self.log("val/robust_acc", acc, prog_bar=True, on_epoch=True, on_step=False,
                 batch_size=labels.shape[0])

