"""SimCLR: the course's loss functions against an independent NumPy computation, the augmentations, the kNN
monitor's vote, the linear probe's label draws and fits, and the data for them."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from visgrad.data.digits_images import DigitsImagesDataModule
from visgrad.data.image_classes import CIFAR10DataError, CIFAR10DataModule
from visgrad.errors import ConfigError
from visgrad.models.shapes_cnn import ShapesCNN
from visgrad.reference import rel_error
from visgrad.ssl import (
    Augment,
    SimCLRModule,
    compute_sim_matrix,
    sim,
    sim_positive_pairs,
    simclr_loss_naive,
    simclr_loss_vectorized,
)
from visgrad.ssl.monitor import knn_predict, projection_2d
from visgrad.ssl.probe import label_subset, probe_scores


def numpy_nt_xent(left: np.ndarray, right: np.ndarray, tau: float) -> float:
    """NT-Xent written from the SimCLR paper's definition, in NumPy."""
    z = np.concatenate([left, right])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n2 = len(z)
    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        logits = np.array([z[i] @ z[m] / tau for m in range(n2) if m != i])
        total += -(z[i] @ z[j] / tau) + np.log(np.exp(logits).sum())
    return total / n2


@pytest.mark.parametrize("tau", [0.1, 0.5, 2.0])
def test_naive_and_vectorised_losses_equal_numpy(tau: float) -> None:
    rng = np.random.default_rng(0)
    left, right = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    expected = numpy_nt_xent(left, right, tau)
    naive = simclr_loss_naive(torch.from_numpy(left), torch.from_numpy(right), tau).item()
    vectorised = simclr_loss_vectorized(torch.from_numpy(left), torch.from_numpy(right), tau).item()
    assert rel_error(naive, expected) < 1e-12
    assert rel_error(vectorised, expected) < 1e-12


def test_the_losses_have_the_same_gradients() -> None:
    torch.manual_seed(0)
    left, right = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    grads = []
    for loss_fn in (simclr_loss_naive, simclr_loss_vectorized):
        a, b = left.clone().requires_grad_(), right.clone().requires_grad_()
        loss_fn(a, b, 0.5).backward()
        grads.append((a.grad, b.grad))
    torch.testing.assert_close(grads[0], grads[1])
    assert torch.autograd.gradcheck(lambda a, b: simclr_loss_vectorized(a, b, 0.3),
                                    (left.requires_grad_(), right.requires_grad_()))


def test_similarity_helpers() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert rel_error(sim(torch.from_numpy(a[0]), torch.from_numpy(b[0])).item(), cos[0]) < 1e-12
    pairs = sim_positive_pairs(torch.from_numpy(a), torch.from_numpy(b))
    assert pairs.shape == (5, 1) and rel_error(pairs.numpy()[:, 0], cos) < 1e-12
    unit = a / np.linalg.norm(a, axis=1, keepdims=True)
    assert rel_error(compute_sim_matrix(torch.from_numpy(a)).numpy(), unit @ unit.T) < 1e-12


def test_a_perfect_positive_pair_batch_has_a_low_loss() -> None:
    """Identical views of orthogonal images: the loss is log(1 + (2N - 2) e^(-1/tau)) (NumPy's too)."""
    z = torch.eye(4, dtype=torch.float64)
    tau = 0.5
    expected = np.log(1 + 6 * np.exp(-1 / tau))
    assert rel_error(simclr_loss_vectorized(z, z, tau).item(), expected) < 1e-12


def test_augment_without_changes_is_the_identity_and_flips_are_flips() -> None:
    torch.manual_seed(0)
    x = torch.rand(6, 3, 8, 8) * 2 - 1
    same = Augment(crop_scale=(1, 1), ratio=(1, 1), flip=False, jitter=0, gray_p=0)
    torch.testing.assert_close(same(x), x, atol=1e-5, rtol=0)
    flips = Augment(crop_scale=(1, 1), ratio=(1, 1), flip=True, jitter=0, gray_p=0)(x)
    for view, image in zip(flips, x, strict=True):
        assert torch.allclose(view, image, atol=1e-5) or torch.allclose(view, image.flip(-1), atol=1e-5)


def test_augment_views_stay_in_range_and_differ() -> None:
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    augment = Augment(rotate=20, jitter=0.8, jitter_p=1.0, gray_p=0.5)
    a, b = augment(x), augment(x)
    assert a.shape == x.shape and a.min() >= -1 and a.max() <= 1
    assert not torch.allclose(a, b)
    grey = Augment(crop_scale=(1, 1), ratio=(1, 1), flip=False, jitter=0, gray_p=1.0)(x)
    torch.testing.assert_close(grey[:, 0], grey[:, 1])
    digits = Augment(jitter=0.5, jitter_p=1.0)(torch.rand(4, 1, 12, 12) * 2 - 1)  # one channel: no colour
    assert digits.shape == (4, 1, 12, 12)
    with pytest.raises(ValueError, match="crop_scale must be a pair"):
        Augment(crop_scale=(0.9, 0.1))
    with pytest.raises(ValueError, match="gray_p must be a probability"):
        Augment(gray_p=1.5)


def test_simclr_module_trains_a_step_and_needs_an_embedding_encoder() -> None:
    torch.manual_seed(0)
    module = SimCLRModule(net=lambda num_classes: ShapesCNN(num_classes, width=4, in_channels=1),
                          class_names=list("abc"), image_size=16, augment=Augment(flip=False))
    loss = module.training_step((torch.rand(8, 1, 16, 16) * 2 - 1, torch.zeros(8, dtype=torch.long)), 0)
    loss.backward()
    assert loss.item() > 0 and module.net.features[0].weight.grad is not None
    assert module(torch.zeros(2, 1, 16, 16)).shape == (2, 16)
    with pytest.raises(ValueError, match="needs embed"):
        SimCLRModule(net=lambda num_classes: torch.nn.Linear(3, num_classes), class_names=["a"], image_size=4)


def test_knn_votes_for_the_nearest_class() -> None:
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = torch.tensor([0, 0, 1, 1])
    queries = torch.tensor([[1.0, 0.05], [0.05, 1.0], [-1.0, 0.2]])
    assert knn_predict(queries, bank, labels, 2, k=2).tolist() == [0, 1, 1]


def test_label_subsets_are_class_balanced() -> None:
    labels = torch.arange(10).repeat_interleave(20)  # 20 of each class
    picks = label_subset(labels, 0.1, torch.Generator().manual_seed(0))
    assert torch.bincount(labels[picks]).tolist() == [2] * 10
    tiny = label_subset(labels, 0.01, torch.Generator().manual_seed(0))
    assert torch.bincount(labels[tiny]).tolist() == [1] * 10  # at least one of each class
    with pytest.raises(ValueError, match="fraction must be in"):
        label_subset(labels, 0.0, torch.Generator())


def test_probes_score_separable_features_perfectly_and_noise_at_chance() -> None:
    torch.manual_seed(0)
    y = torch.arange(4).repeat(50)
    centres = torch.eye(4) * 5
    x = centres[y] + torch.randn(200, 4) * 0.3
    scores = probe_scores(x[:150], y[:150], x[150:], y[150:], 4, [0.1, 1.0], repeats=3)
    assert scores[1.0].mean == 1.0 and scores[1.0].std == 0.0 and scores[1.0].num_labels == 150
    assert scores[0.1].mean > 0.95
    noise = probe_scores(torch.randn(400, 4), torch.arange(4).repeat(100), torch.randn(400, 4),
                         torch.arange(4).repeat(100), 4, [1.0])
    assert noise[1.0].mean < 0.4


def test_pca_projection_is_the_first_two_principal_components() -> None:
    torch.manual_seed(0)
    features = torch.randn(40, 6, dtype=torch.float64) * torch.tensor([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    points = projection_2d(features, "pca")
    centred = (features - features.mean(0)).numpy()
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
    expected = centred @ eigenvectors[:, ::-1][:, :2]
    assert points.shape == (40, 2) and rel_error(np.abs(points), np.abs(expected)) < 1e-10
    with pytest.raises(ValueError, match="projection must be one of"):
        projection_2d(features, "bogus_projection")


@pytest.mark.slow
def test_tsne_projection_keeps_clusters_apart() -> None:
    torch.manual_seed(0)
    labels = torch.arange(2).repeat(30)
    features = torch.randn(60, 6) + 8 * labels[:, None]
    points = torch.from_numpy(projection_2d(features, "tsne"))
    assert points.shape == (60, 2)
    assert knn_predict(points, points, labels, 2, k=5).eq(labels).all()


@pytest.mark.parametrize("channels", [1, 3])
def test_digits_images_give_the_classifier_its_names_size_and_channels(channels: int) -> None:
    module = DigitsImagesDataModule(channels=channels, num_val=100)
    module.setup("fit")
    assert module.model_kwargs() == {"class_names": [str(d) for d in range(10)], "image_size": 28}
    assert module.splits["train"].images.shape == (1697, 1, 28, 28)
    grey = module.splits["val"].images[:4]
    images, labels = module.on_after_batch_transfer((grey, module.splits["val"].labels[:4]), 0)
    assert images.shape == (4, channels, 28, 28) and (images == grey).all() and labels.shape == (4,)


def test_digits_images_refuse_other_channel_counts() -> None:
    with pytest.raises(ConfigError, match=r"data.channels=2: must be 1 \(grey\) or 3 \(RGB\)"):
        DigitsImagesDataModule(channels=2)


def _fake_cifar(root: Path, per_batch: int = 4) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
                 "labels": list(rng.integers(0, 10, size=per_batch))}
        (folder / name).write_bytes(pickle.dumps(batch))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))


def test_cifar10_reads_torchvisions_format(tmp_path: Path) -> None:
    _fake_cifar(tmp_path)
    module = CIFAR10DataModule(str(tmp_path), max_train=12, num_val=3)
    module.prepare_data()
    module.setup("fit")
    train, val = module.splits["train"], module.splits["val"]
    assert train.images.shape == (12, 3, 32, 32) and val.images.shape == (3, 3, 32, 32)
    assert train.images.min() >= -1 and train.images.max() <= 1
    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes())
    first = torch.from_numpy(raw["data"][0].reshape(3, 32, 32)).float() / 127.5 - 1
    torch.testing.assert_close(val.images[0], first)
    assert module.model_kwargs() == {"class_names": train.class_names and list(train.class_names),
                                     "image_size": 32}
    with pytest.raises(ValueError, match=r"data.num_val=20: CIFAR-10 under .* has 4 such images"):
        CIFAR10DataModule(str(tmp_path), num_val=20).setup("fit")


def test_missing_cifar10_says_what_is_missing_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CIFAR10DataError, match=r"no CIFAR-10 in torchvision's format \(missing data_batch_1.*"
                                                 r"download=True.*data=digits_grey"):
        CIFAR10DataModule(str(tmp_path)).prepare_data()
