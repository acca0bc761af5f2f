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
    over_white = [(c * 40 + 255 * (255 - 40)) / 255 for c in (10, 20, 30)]  # alpha 40 of 255 over white
    np.testing.assert_allclose(np.asarray(load_image(rgba))[0, 0], over_white, atol=1)
    assert list_images(tmp_path) == [gray, rgba]


def test_every_bit_depth_and_mode_loads_as_what_it_shows(tmp_path):
    """1-bit, 8- and 16-bit grayscale, palette (with a transparent entry), LA/RGBA, CMYK: 8-bit RGB of the
    colours a viewer shows (16-bit scaled, not clipped: it came out 99.6% white)."""
    ramp16 = np.linspace(0, 65535, 64 * 256).round().astype(np.uint16).reshape(64, 256)
    Image.fromarray(ramp16).save(tmp_path / "gray16.png")
    assert Image.open(tmp_path / "gray16.png").mode == "I;16"
    loaded = np.asarray(load_image(tmp_path / "gray16.png")).astype(int)
    np.testing.assert_allclose(loaded[..., 0], ramp16 / 257, atol=0.51)
    assert (loaded == loaded[..., :1]).all() and (loaded == 255).mean() < 0.01

    bits = np.indices((4, 4)).sum(0) % 2 == 0
    Image.fromarray(bits).convert("1").save(tmp_path / "bits.png")
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "bits.png"))[..., 1], bits * 255)
    ramp8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(ramp8).save(tmp_path / "gray8.png")
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "gray8.png"))[..., 2], ramp8)

    palette = Image.new("P", (2, 1))
    palette.putpalette([200, 10, 20, 0, 0, 0])
    palette.putpixel((1, 0), 1)
    palette.save(tmp_path / "palette.png", transparency=1)  # entry 1 (black) is transparent
    assert np.asarray(load_image(tmp_path / "palette.png")).tolist() == [[[200, 10, 20], [255, 255, 255]]]
    Image.fromarray(np.array([[[100, 0], [100, 255]]], np.uint8), "LA").save(tmp_path / "la.png")
    assert np.asarray(load_image(tmp_path / "la.png"))[..., 0].tolist() == [[255, 100]]
    cmyk = Image.new("CMYK", (2, 2), (255, 0, 0, 0))  # full cyan
    cmyk.save(tmp_path / "cyan.jpg", quality=100)
    np.testing.assert_allclose(np.asarray(load_image(tmp_path / "cyan.jpg"))[0, 0], [0, 255, 255], atol=3)


def test_exif_rotated_jpeg_is_turned_upright(tmp_path):
    img = Image.new("RGB", (16, 8), "white")
    img.paste((255, 0, 0), (0, 0, 8, 8))  # red left half
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation 6: the camera was turned; show rotated 90 degrees clockwise
    img.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    upright = np.asarray(load_image(tmp_path / "photo.jpg")).astype(int)
    assert upright.shape == (16, 8, 3)
    assert upright[2, 4, 1] < 60 and upright[13, 4, 1] > 200  # the red half is now on top


def test_extreme_sizes_are_refused_before_allocating(tmp_path, monkeypatch):
    """A 1500x2 content image at size 192 would be 144000x192 (7 GB in a CNN): refused, naming it."""
    strip = tmp_path / "strip.png"
    Image.new("RGB", (1500, 2)).save(strip)
    monkeypatch.setattr("torchvision.transforms.functional.resize", lambda *a, **k: pytest.fail("resized"))
    expected = (r"^content=strip.png is 1500x2 pixels, an aspect ratio of 750:1 \(at most 10:1; at size 192 "
                r"it would become 144000x192\); crop it")
    with pytest.raises(ImageError, match=expected):
        preprocess(strip, 192, name="content=strip.png")
    with pytest.raises(ImageError, match=r"would become 5000x5000 = 25 MP at size 5000, more than 16.8 MP; "
                                         r"use a smaller size"):
        preprocess(_random_image(48, 48), 5000)
    with pytest.raises(ImageError, match=rf"^{tmp_path} is a folder, not an image file"):
        load_image(tmp_path)


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
