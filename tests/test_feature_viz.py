"""Feature visualization (visgrad.vision.feature_viz) and the crop-robustness measure of class_viz."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata
from torch import nn

from visgrad.images import Normalization
from visgrad.vision.class_viz import create_class_visualization, crop_robustness, random_crop_boxes
from visgrad.vision.feature_viz import (
    COLOR_CORRELATION,
    FourierImage,
    ImageParam,
    correlate_colors,
    decorrelate_colors,
    fourier_class_visualization,
    random_transforms,
    rfft2d_freqs,
)


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: a second thread only adds synchronisation (10x slower on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def photo(size: int) -> torch.Tensor:
    """scikit-image's ``chelsea`` resized to (1, 3, size, size), pixels kept inside (0.02, 0.98)."""
    pixels = torch.from_numpy(skdata.chelsea().copy()).permute(2, 0, 1)[None].double() / 255
    pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return pixels.clamp(0.02, 0.98)


def test_rfft2d_freqs_are_the_frequencies_of_rfft2():
    freqs = rfft2d_freqs(6, 5)
    assert freqs.shape == torch.fft.rfft2(torch.zeros(6, 5)).shape == (6, 3)
    assert freqs[0, 0] == 0 and freqs[3, 0] == pytest.approx(0.5)
    assert freqs[1, 2] == pytest.approx(math.hypot(1 / 6, 2 / 5))


def test_fourier_image_is_a_scaled_orthonormal_inverse_fft():
    image = FourierImage(8, 6, batch=2, decay_power=1.0).double()
    spectrum = torch.view_as_complex((image.spectrum * image.scale).contiguous())
    expected = torch.fft.irfft2(spectrum, s=(8, 6)) * math.sqrt(8 * 6) / 4
    torch.testing.assert_close(image(), expected)
    assert image.scale[0, 0, 0, 0, 0] == 8  # the DC term is scaled as the lowest frequency, 1 / max(H, W)
    assert image.scale[0, 0, 1, 0, 0] == pytest.approx(8)  # f = 1/8
    assert image.scale[0, 0, 4, 0, 0] == pytest.approx(2)  # f = 1/2: high frequencies get 4x smaller steps


def test_image_param_represents_a_photo():
    # Fit the Fourier image to the photo's decorrelated logits (the sigmoid is a bijection onto (0, 1);
    # fitting before it avoids Adam parking a pixel in the sigmoid's flat tail), then compare the pixels.
    target = photo(32).float()
    torch.manual_seed(0)
    param = ImageParam(32, 32)
    goal = correlate_colors(torch.logit(target))
    optimizer = torch.optim.Adam(param.parameters(), lr=0.1)
    for _ in range(200):
        optimizer.zero_grad()
        (param.fourier() - goal).pow(2).mean().backward()
        optimizer.step()
    error = (param().detach() - target).abs()
    assert error.mean() < 0.005 and error.max() < 0.02, (error.mean().item(), error.max().item())


def test_image_param_gradients_match_finite_differences():
    param = ImageParam(6, 5, sd=0.5, generator=torch.Generator().manual_seed(0)).double()
    weights = torch.randn(1, 3, 6, 5, dtype=torch.float64)

    def objective(spectrum: torch.Tensor) -> torch.Tensor:
        pixels = torch.func.functional_call(param, {"fourier.spectrum": spectrum}, ())
        return (pixels * weights).sum()

    spectrum = param.fourier.spectrum.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(objective, (spectrum,))
    (grad,) = torch.autograd.grad(objective(spectrum), spectrum)
    assert (grad.abs() > 0).float().mean() > 0.8  # all but the imaginary parts irfft2 ignores


def test_color_decorrelation_round_trip_and_direction():
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(correlate_colors(decorrelate_colors(x)), x)
    torch.testing.assert_close(decorrelate_colors(correlate_colors(x)), x)
    columns = COLOR_CORRELATION.T
    assert columns.norm(dim=1).max() == pytest.approx(1.0)
    gram = columns @ columns.T  # Lucid's SVD square root: orthogonal columns
    assert (gram - torch.diag(gram.diag())).abs().max() < 0.02
    # White noise in the decorrelated space becomes colour-correlated RGB, as in natural images.
    noise = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    corr = np.corrcoef(decorrelate_colors(noise).reshape(3, -1).numpy())
    assert corr[np.triu_indices(3, 1)].min() > 0.75


def test_random_transforms_are_seeded_differentiable_and_keep_grey_grey():
    pixels = torch.full((1, 3, 32, 32), 0.5, requires_grad=True)
    outs = [random_transforms(pixels, torch.Generator().manual_seed(s)) for s in (1, 1, 2, 3, 4)]
    assert torch.equal(outs[0], outs[1])
    for out in outs:
        assert 39 <= out.shape[-1] <= 49 and out.shape[-2] == out.shape[-1]  # (32 + 16) * [0.9, 1.1] - 4
        torch.testing.assert_close(out, torch.full_like(out, 0.5))
    outs[2].sum().backward()
    assert pixels.grad.abs().sum() > 0


class MeanRedness(nn.Module):
    """Toy classifier: logits (N, 2) = [k * (mean of channel 0 - 0.5), 0]."""

    def __init__(self, k: float = 10.0):
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red = self.k * (x[:, 0].mean(dim=(1, 2)) - 0.5)
        return torch.stack([red, torch.zeros_like(red)], dim=1)


def test_random_crop_boxes_stay_inside_and_cover_the_asked_area():
    boxes = random_crop_boxes(40, 60, 500, scale=(0.5, 1.0), generator=torch.Generator().manual_seed(0))
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 40).all() and (left + w <= 60).all()
    area = (h * w).double() / (40 * 60)
    assert area.min() > 0.4 and area.max() <= 1.0 and area.mean() == pytest.approx(0.73, abs=0.05)


def test_crop_robustness_has_the_known_answer_on_a_toy_model():
    identity = nn.Identity()
    # Uniform image: every crop is the same image, so every crop has the full image's probability.
    flat = torch.full((1, 3, 20, 20), 0.8, dtype=torch.float64)
    result = crop_robustness(flat, 0, MeanRedness(), identity, num_crops=32)
    expected = torch.sigmoid(torch.tensor(10 * 0.3, dtype=torch.float64))
    torch.testing.assert_close(result.probs, expected.expand(32))
    assert result.top1 == 1.0
    # Left half red: a crop's redness is the share of its box left of the middle.
    half = torch.zeros(1, 3, 40, 40, dtype=torch.float64)
    half[..., :20] = 1.0
    result = crop_robustness(half, 0, MeanRedness(), identity, num_crops=32, seed=3)
    _, left, _, w = result.boxes.T.double()
    share = (20 - left).clamp(0).clamp(max=w) / w
    torch.testing.assert_close(result.probs, torch.sigmoid(10 * (share - 0.5)), atol=0.03, rtol=0)
    assert result.top1 == (result.probs > 0.5).double().mean().item()  # two classes: top-1 iff p > 1/2
    assert result.probs.std() > 0.1  # the crops really differ


def test_fourier_class_visualization_raises_the_target_on_a_toy_model():
    result = fourier_class_visualization(0, MeanRedness(k=1.0), nn.Identity(), image_size=24,
                                         num_iterations=30, learning_rate=0.1, show_every=10, seed=0)
    assert result.image.shape == (1, 3, 24, 24) and 0 < result.image.min() and result.image.max() < 1
    assert [step for step, _ in result.snapshots] == [0, 10, 20, 30]
    assert len(result.scores) == len(result.probs) == 30
    assert result.image[:, 0].mean() > 0.6 and result.probs[-1] > result.probs[0]


def test_pixel_class_visualization_keeps_pixels_valid_in_the_classifiers_normalisation():
    minus_one_to_one = Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    result = create_class_visualization(0, MeanRedness(k=10.0), learning_rate=50, num_iterations=6,
                                        blur_every=0, max_jitter=2, image_size=16, seed=0,
                                        norm=minus_one_to_one)
    assert result.image.min() >= -1 and result.image.max() == 1  # ImageNet's bounds would allow 2.25
    assert (result.image[:, 0] == 1).float().mean() > 0.9  # the red channel pushed to its top


def test_fourier_class_visualization_is_seeded():
    def run(seed):
        return fourier_class_visualization(0, MeanRedness(), nn.Identity(), image_size=12, num_iterations=2,
                                           seed=seed).image

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(None), run(None))
