"""What an encoder's features know about the classes, watched while it trains: ``FeatureMonitor``.

After every validation epoch it embeds (``pl_module.net.embed``, in eval mode) up to ``bank_size`` training
images (the memory bank) and the val images and logs ``val/knn_acc``: the accuracy of a weighted k-nearest-
neighbour vote (Wu et al., 2018: cosine similarity, the top ``k`` training images vote for their class with
weight exp(sim / ``knn_temperature``)), the usual label-free-training monitor of SimCLR-type methods. At the
end of training it writes the val features with their class names and thumbnails to TensorBoard's projector
(PCA / t-SNE / UMAP there) and a 2-D map of them (t-SNE or PCA, ``projection``) coloured by class as the
figure ``features/<projection>`` (TensorBoard, and ``features_<projection>.png`` in the run folder).

Any LightningModule whose ``net`` has ``embed(images) -> (N, E)`` can use it (SimCLR, the ViT and CNN
classifiers); batches are ``(images, labels)`` and ``datamodule.class_names``-free: names come from the
module's ``hparams.class_names``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset

from visgrad.data.labelled_images import LabelledImages

PROJECTIONS = ("tsne", "pca")


def knn_predict(features: Tensor, bank: Tensor, bank_labels: Tensor, num_classes: int, k: int = 20,
                temperature: float = 0.07) -> Tensor:
    """Weighted kNN classes (M,) of features (M, E) given a bank (B, E) with labels (B,): the ``k`` most
    cosine-similar bank rows vote for their class with weight exp(sim / temperature)."""
    sims = torch.nn.functional.normalize(features, dim=1) @ torch.nn.functional.normalize(bank, dim=1).T
    top, index = sims.topk(min(k, bank.shape[0]), dim=1)
    votes = torch.zeros(features.shape[0], num_classes, dtype=sims.dtype, device=sims.device)
    votes.scatter_add_(1, bank_labels[index], (top / temperature).exp())
    return votes.argmax(dim=1)


@torch.no_grad()
def embed_loader(net, loader, datamodule=None, limit: int | None = None, device=None,
                 keep_images: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
    """Features (M, E), labels (M,) and (with ``keep_images``) the images of the first ``limit`` (None: all)
    images of ``loader`` by ``net.embed``; batches pass the datamodule's ``on_after_batch_transfer`` first."""
    feats, labels, images, seen = [], [], [], 0
    for batch in loader:
        batch = [t.to(device) if device is not None else t for t in batch]
        if datamodule is not None:
            batch = datamodule.on_after_batch_transfer(batch, 0)
        x, y = batch
        feats.append(net.embed(x).float().cpu())
        labels.append(y.cpu())
        if keep_images:
            images.append(x.cpu())
        seen += len(y)
        if limit is not None and seen >= limit:
            break
    end = slice(0, limit)
    return torch.cat(feats)[end], torch.cat(labels)[end], torch.cat(images)[end] if keep_images else None


def split_loader(datamodule, split: str, batch_size: int = 256) -> DataLoader:
    """The images of a split once each, in order: a loader over ``datamodule.splits[split]`` (a
    :class:`~visgrad.data.labelled_images.LabelledImages` or a dataset) when the datamodule keeps its splits
    there, else its own ``<split>_dataloader()``."""
    data = getattr(datamodule, "splits", {}).get(split)
    if isinstance(data, LabelledImages):
        return DataLoader(TensorDataset(data.images, data.labels), batch_size)
    if isinstance(data, Dataset):
        return DataLoader(data, batch_size)
    return getattr(datamodule, f"{split}_dataloader")()


def projection_2d(features: Tensor, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """A 2-D map (M, 2) of features (M, E): t-SNE (scikit-learn, PCA-initialised) or the first two
    principal components."""
    x = features.double().numpy()
    x = x - x.mean(axis=0)
    if method == "pca":
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        return x @ vt[:2].T
    if method != "tsne":
        raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)}, got {method!r}")
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (x.shape[0] - 1) // 3)))
    return TSNE(2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(x)


def features_figure(maps: dict[str, np.ndarray], labels: np.ndarray, class_names: list[str],
                    title: str = "") -> Figure:
    """One scatter panel per name of ``maps`` (M, 2), points coloured by class, with one legend."""
    fig = Figure(figsize=(4.2 * len(maps) + 1.0, 4.2))
    axes = fig.subplots(1, len(maps), squeeze=False)
    colours = colormaps["tab10" if len(class_names) <= 10 else "tab20"]
    for ax, (name, points) in zip(axes[0], maps.items(), strict=True):
        for c, class_name in enumerate(class_names):
            chosen = labels == c
            ax.scatter(points[chosen, 0], points[chosen, 1], s=6, color=colours(c % colours.N),
                       label=class_name)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, -1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, markerscale=2, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


class FeatureMonitor(pl.Callback):
    """kNN accuracy of the features after each validation epoch; the projector and a 2-D map at the end.

    Args:
        k, knn_temperature: the kNN vote (see :func:`knn_predict`).
        bank_size: training images embedded for the bank (the first of the training split).
        projection: ``"tsne"`` or ``"pca"``: the 2-D map of the final figure (None: no figure).
        projector: write the val features to TensorBoard's projector at the end.
    """

    metric_names = ("val/knn_acc",)

    def __init__(self, k: int = 20, knn_temperature: float = 0.07, bank_size: int = 5000,
                 projection: str | None = "pca", projector: bool = True) -> None:
        if projection is not None and projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)} or None, "
                             f"got {projection!r}")
        if k < 1 or bank_size < 1:
            raise ValueError(f"k and bank_size must be positive, got k={k}, bank_size={bank_size}")
        self.k, self.knn_temperature, self.bank_size = k, knn_temperature, bank_size
        self.projection, self.projector = projection, projector

    def _embed(self, trainer: pl.Trainer, pl_module: pl.LightningModule, split: str, keep_images=False):
        datamodule = trainer.datamodule
        loader = split_loader(datamodule, split)
        limit = self.bank_size if split == "train" else None
        was_training = pl_module.training
        pl_module.eval()
        try:
            return embed_loader(pl_module.net, loader, datamodule, limit, pl_module.device, keep_images)
        finally:
            pl_module.train(was_training)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        bank, bank_labels, _ = self._embed(trainer, pl_module, "train")
        feats, labels, _ = self._embed(trainer, pl_module, "val")
        predicted = knn_predict(feats, bank, bank_labels, len(pl_module.hparams.class_names), self.k,
                                self.knn_temperature)
        pl_module.log("val/knn_acc", (predicted == labels).float().mean(), prog_bar=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.fast_dev_run or not trainer.is_global_zero or (not self.projector and not self.projection):
            return
        feats, labels, images = self._embed(trainer, pl_module, "val", keep_images=True)
        names = list(pl_module.hparams.class_names)
        writer = next((lg.experiment for lg in trainer.loggers if hasattr(lg.experiment, "add_embedding")),
                      None)
        if self.projector and writer is not None:
            low = images.amin(dim=(1, 2, 3), keepdim=True)
            thumbs = (images - low) / (images.amax(dim=(1, 2, 3), keepdim=True) - low).clamp(min=1e-8)
            writer.add_embedding(feats, metadata=[names[int(y)] for y in labels], label_img=thumbs.expand(
                -1, 3, -1, -1), global_step=trainer.global_step, tag="features")
        if self.projection:
            points = projection_2d(feats, self.projection)
            fig = features_figure({f"{type(pl_module.net).__name__} features ({self.projection})": points},
                                  labels.numpy(), names)
            if writer is not None:
                writer.add_figure(f"features/{self.projection}", fig, global_step=trainer.global_step,
                                  close=False)
            fig.savefig(Path(trainer.default_root_dir) / f"features_{self.projection}.png", dpi=100,
                        bbox_inches="tight")
