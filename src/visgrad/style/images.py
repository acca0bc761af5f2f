"""Input images for style transfer: user files, scikit-image's bundled pictures, or a generated painting.

An image *spec* is one of
- a file path (``~/pictures/me.jpg``), read by :func:`visgrad.images.load_image`;
- ``skimage:NAME``: a picture that ships with scikit-image (``skimage:chelsea``, ``skimage:astronaut``,
  ``skimage:coffee``, ``skimage:hubble_deep_field``, textures ``skimage:brick`` ...), no download;
- ``generated:strokes``: a procedural "painting" of coloured brush strokes that swirl along a smooth flow
  field (in the spirit of Starry Night), made deterministically here; ``generated:strokes:SEED`` varies it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from visgrad.images import ImageError, load_image

SKIMAGE_PICTURES = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "chelsea",
    "coffee",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "rocket",
    "text",
)

# Night-sky palette (RGB): deep and light blues, teal, yellow, cream.
STROKE_PALETTE = np.array(
    [
        [16, 32, 84],
        [30, 64, 140],
        [62, 110, 190],
        [110, 160, 210],
        [40, 120, 130],
        [230, 200, 70],
        [245, 225, 140],
        [250, 245, 220],
        [20, 40, 60],
    ],
    dtype=np.float64,
)


def load_image_spec(spec: str) -> Image.Image:
    """A PIL RGB image from a spec (path, ``skimage:NAME`` or ``generated:strokes[:SEED]``)."""
    spec = str(spec)
    if spec.startswith("skimage:"):
        return skimage_picture(spec.removeprefix("skimage:"))
    if spec.startswith("generated:"):
        kind, _, seed = spec.removeprefix("generated:").partition(":")
        if kind != "strokes" or (seed and not seed.isdigit()):
            raise ImageError(
                f"unknown generated image {spec!r}; use generated:strokes or generated:strokes:SEED"
            )
        return stroke_painting(seed=int(seed or 0))
    return load_image(spec)


def skimage_picture(name: str) -> Image.Image:
    """One of scikit-image's bundled pictures as PIL RGB (grayscale ones are replicated to 3 channels)."""
    import skimage.data

    if name not in SKIMAGE_PICTURES:
        raise ImageError(
            f"unknown scikit-image picture {name!r}; choose one of {', '.join(SKIMAGE_PICTURES)}"
        )
    pixels = getattr(skimage.data, name)()
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    return Image.fromarray(pixels[..., :3].astype(np.uint8))


def stroke_painting(size: int = 384, seed: int = 0, num_strokes: int = 2500) -> Image.Image:
    """A deterministic painting-like picture: curved strokes from ``STROKE_PALETTE`` following swirls.

    The flow angle at (x, y) is a sum of a few random sinusoids plus two vortices; each stroke starts at a
    random point, walks ~12 segments along the flow and is drawn 3-9 px wide with a jittered palette colour.
    """
    rng = np.random.default_rng(seed)
    freqs = rng.uniform(1.0, 4.0, size=(4, 2)) * 2 * np.pi / size
    phases = rng.uniform(0, 2 * np.pi, size=4)
    vortices = rng.uniform(0.2 * size, 0.8 * size, size=(2, 2))

    def angle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        waves = np.sin(np.multiply.outer(x, freqs[:, 0]) + np.multiply.outer(y, freqs[:, 1]) + phases).sum(-1)
        swirl = sum(np.arctan2(y - vy, x - vx) + np.pi / 2 for vx, vy in vortices)
        return 0.6 * waves + 0.5 * swirl

    # Walk all strokes along the flow at once: paths (num_strokes, 13, 2).
    xy = [rng.uniform(0, size, size=(num_strokes, 2))]
    for _ in range(12):
        a = angle(xy[-1][:, 0], xy[-1][:, 1])
        xy.append(xy[-1] + 4 * np.stack([np.cos(a), np.sin(a)], axis=-1))
    paths = np.stack(xy, axis=1)
    colors = np.clip(
        STROKE_PALETTE[rng.integers(len(STROKE_PALETTE), size=num_strokes)]
        + rng.normal(0, 12, size=(num_strokes, 3)),
        0,
        255,
    ).astype(int)
    widths = rng.integers(3, 10, size=num_strokes)

    img = Image.new("RGB", (size, size), tuple(int(v) for v in STROKE_PALETTE[0]))
    draw = ImageDraw.Draw(img)
    for path, color, width in zip(paths, colors, widths, strict=True):
        draw.line(
            [tuple(p) for p in path.tolist()], fill=tuple(color.tolist()), width=int(width), joint="curve"
        )
    return img.filter(ImageFilter.SMOOTH)


def _pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0


def _to_pil(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).round().astype(np.uint8))


def match_colors(style: Image.Image, content: Image.Image) -> Image.Image:
    """``style`` with each RGB channel's histogram matched to ``content``'s (colour-preserving transfer)."""
    from skimage.exposure import match_histograms

    return _to_pil(match_histograms(_pixels(style), _pixels(content), channel_axis=-1))


def luminance(img: Image.Image, like: Image.Image | None = None) -> Image.Image:
    """The luminance (Y of YIQ) of ``img`` as a gray RGB image; with ``like``, Y's mean and std are matched
    to the luminance of ``like`` (luminance-only transfer, Gatys et al. 2016, "Preserving color")."""
    from skimage.color import rgb2yiq

    y = rgb2yiq(_pixels(img))[..., 0]
    if like is not None:
        ref = rgb2yiq(_pixels(like))[..., 0]
        y = (y - y.mean()) / max(y.std(), 1e-6) * ref.std() + ref.mean()
    return _to_pil(np.repeat(y[..., None], 3, axis=-1))


def with_content_colors(result: Image.Image, content: Image.Image) -> Image.Image:
    """The luminance of ``result`` combined with the chrominance (I, Q of YIQ) of ``content``."""
    from skimage.color import rgb2yiq, yiq2rgb

    yiq = rgb2yiq(_pixels(content.resize(result.size, Image.Resampling.BICUBIC)))
    yiq[..., 0] = rgb2yiq(_pixels(result))[..., 0]
    return _to_pil(yiq2rgb(yiq))
