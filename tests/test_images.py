"""Image loading and pre/deprocessing of visgrad.images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from visgrad.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageError,
    blur_image,
    clamp_image,
    deprocess,
    jitter,
    list_images,
    load_image,
    preprocess,
    to_uint8,
    unnormalize,
)


def _random_image(h=48, w=64, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))


def test_preprocess_normalises_with_imagenet_stats_and_round_trips():
    img = _random_image()
    x = preprocess(img, size=None)
    assert x.shape == (1, 3, 48, 64) and x.dtype == torch.float32
    pixels = np.asarray(img, dtype=np.float32) / 255
    expected = (pixels - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(deprocess(x)), np.asarray(img))
    np.testing.assert_array_equal(np.asarray(deprocess(x[0])), np.asarray(img))


def test_preprocess_resizes_shorter_side_or_exactly():
    img = _random_image(48, 64)
    assert preprocess(img, 24).shape == (1, 3, 24, 32)
    assert preprocess(img, (20, 30)).shape == (1, 3, 20, 30)


def test_deprocess_clamps_or_rescales():
    x = torch.full((1, 3, 4, 4), 100.0)
    x[..., 0, 0] = -100.0
    clamped = np.asarray(deprocess(x))
    assert clamped[1, 1].tolist() == [255, 255, 255] and clamped[0, 0].tolist() == [0, 0, 0]
    small = preprocess(_random_image(8, 8), None) * 0.01
    rescaled = np.asarray(deprocess(small, rescale=True))
    assert rescaled.min() == 0 and rescaled.max() == 255


def test_grayscale_and_rgba_files_are_converted(tmp_path):
    gray = tmp_path / "gray.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(gray)
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (8, 8), (10, 20, 30, 40)).save(rgba)
    assert load_image(gray).mode == "RGB" and preprocess(gray, None).shape == (1, 3, 8, 8)
    assert np.asarray(load_image(rgba))[0, 0].tolist() == [10, 20, 30]
    assert list_images(tmp_path) == [gray, rgba]


def test_unreadable_and_missing_images_name_the_file(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    with pytest.raises(ImageError, match="notes.jpg"):
        load_image(bad)
    with pytest.raises(ImageError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no images"):
        list_images(tmp_path / "empty")


def test_clamp_jitter_blur():
    x = torch.randn(2, 3, 16, 16) * 5
    pixels = unnormalize(clamp_image(x))
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6
    inside = preprocess(_random_image(16, 16), None)
    torch.testing.assert_close(clamp_image(inside), inside)
    shifted = jitter(x, 3, -2)
    torch.testing.assert_close(shifted[..., 5, 7], x[..., 7, 4])
    torch.testing.assert_close(jitter(shifted, -3, 2), x)
    blurred = blur_image(x, sigma=1.0)
    assert blurred.shape == x.shape and blurred.std() < x.std()
    torch.testing.assert_close(blur_image(torch.ones(1, 3, 9, 9), 0.5), torch.ones(1, 3, 9, 9))
    assert to_uint8(inside).shape == (1, 16, 16, 3)
