"""visualize.py at the edges: every refusal of an input, a target, a device or an option happens before the
run folder is written (in-process: the task's ``prepare`` or earlier raises a ``UserError`` and no output
folder exists; through the app, in the slow tests: no folder, no ``.hydra/``, no log, no event file, no
HParams row); a full disk while writing a figure names the run folder's file and leaves no cut PNG; the
printed TensorBoard command is shell-quoted."""

from __future__ import annotations

import errno
import os
import shlex
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from omegaconf import open_dict
from PIL import Image

from visgrad.errors import ConfigError, UserError
from visgrad.images import ImageError
from visgrad.options import option, positive_int
from visgrad.tasks import run_task
from visgrad.tasks.lifecycle import Task, TaskRun
from visgrad.utils.reporting import ReportedError, user_errors_reported

ROOT = Path(__file__).resolve().parents[1]


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels (PIL refuses it on open when too large)."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + len(ihdr).to_bytes(4, "big") + chunk
            + zlib.crc32(chunk).to_bytes(4, "big") + b"\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bad inputs of every kind, beside one good photo."""
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    good = folder / "good.png"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    data = good.read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    noise = bytes(rng.integers(0, 256, 500, dtype=np.uint8))
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + noise)
    (folder / "empty.png").write_bytes(b"")
    (folder / "huge.png").write_bytes(png_header(15000, 15000))
    (folder / "folder.png").mkdir()
    np.savez(folder / "archive.npz", X=np.zeros((2, 8, 8, 3), np.uint8), y=np.array([0, 1]))
    archive = (folder / "archive.npz").read_bytes()
    (folder / "truncated.npz").write_bytes(archive[: len(archive) // 2])
    (folder / "corrupt.npz").write_bytes(b"PK\x03\x04" + bytes(100))
    np.savez(folder / "other.npz", images=np.zeros((2, 8, 8, 3), np.uint8))
    np.save(folder / "single.npy", np.zeros(3))
    (folder / "single.npy").rename(folder / "single.npz")
    return folder


@pytest.fixture(scope="module")
def classifier():
    from visgrad.models.classifier import efficientnet_lite0_classifier

    return efficientnet_lite0_classifier()


@pytest.fixture
def cached_classifier(monkeypatch, classifier):
    """The ImageNet classifier loaded once for the module (run_task's loader is tested elsewhere)."""
    monkeypatch.setattr("visgrad.tasks.load_classifier", lambda cfg, device: classifier)


def with_inputs(overrides: list[str], inputs: Path) -> list[str]:
    """``overrides`` with ``F/`` pointing into ``inputs``, on the CPU unless they say otherwise."""
    overrides = [o.replace("F/", f"{inputs}/") for o in overrides]
    return overrides if any(o.startswith("device=") for o in overrides) else [*overrides, "device=cpu"]


REFUSED = [
    (["task.images=F/nowhere.png"], ImageError, r"^image file or folder not found: F/nowhere.png$"),
    (["task.images=F/corrupt.png"], ImageError,
     r"^cannot read F/corrupt.png as an image \(not an image format PIL knows, or corrupt\); give a "),
    (["task.images=F/truncated.png"], ImageError,
     r"^cannot read F/truncated.png as an image \(image file is truncated\)"),
    (["task.images=F/empty.png"], ImageError, r"^F/empty.png is empty \(0 bytes\); give a JPEG/PNG file$"),
    (["task.images=F/huge.png"], ImageError,
     r"^F/huge.png is too large to read \(Image size \(225000000 pixels\) exceeds limit of \d+ pixels\); "
     r"give a smaller image \(downscale it first\)$"),
    (["task.images=F/folder.png"], ImageError, r"^no images \(.*\) in folder F/folder.png$"),
    (["task.images=F/truncated.npz"], ImageError, r"^F/truncated.npz is not a readable .npz archive"),
    (["task.images=F/corrupt.npz"], ImageError, r"^F/corrupt.npz is not a readable .npz archive"),
    (["task.images=F/single.npz"], ImageError, r"^F/single.npz is not a readable .npz archive"),
    (["task.images=F/other.npz"], ImageError, r"^F/other.npz must hold the arrays X \(images\) and y "
                                              r"\(labels\); it holds images$"),
    (["task=fooling", "task.target=notaclass"], ConfigError, r"^task.target='notaclass': unknown class name"),
    (["task=fooling", "task.target=5000"], ConfigError, r"^task.target=5000: class index 5000 is out of "),
    (["task=fooling", "task.targets=[]"], ConfigError, r"^task.targets=\[\]: must be null"),
    (["task=saliency", "task.target=-3"], ConfigError, r"^task.target=-3: class index -3 is out of range"),
    (["task=class_viz", "task.target=1000"], ConfigError, r"^task.target=1000: class index 1000 is out of"),
    (["task=class_viz", "task.robustness.scale=[1.5,0.2]"], ConfigError,
     r"^task.robustness.scale=\[1.5,0.2\]: must be two area fractions \[low, high\] in \(0, 1\]"),
    (["task=class_viz", "task.robustness.scale=[0.9,0.2]"], ConfigError,
     r"^task.robustness.scale=\[0.9, 0.2\]: the low fraction is above the high one; give "
     r"\[low, high\], e.g. \[0.5,1.0\]$"),
    (["+task.foo=1"], ConfigError, r"^task.foo: not an option of SaliencyOptions"),
    (["device=tpu"], ConfigError, r"^device='tpu': not a device visgrad runs on"),
    (["task=feature_inversion", "task.content_layer=[]"], ConfigError,
     r"^task.content_layer=\[\]: must be null \(the network's\), a module index or a list of them"),
]


@pytest.mark.parametrize(("overrides", "error", "message"), REFUSED, ids=lambda v: " ".join(v)
                         if isinstance(v, list) else "")
def test_visualize_refusals_come_before_the_run_folder(compose_cfg, cached_classifier, inputs, overrides,
                                                       error, message) -> None:
    cfg = compose_cfg("visualize", with_inputs(overrides, inputs))
    with pytest.raises(error, match=message.replace("F/", f"{inputs}/")) as caught:
        run_task(cfg)
    assert isinstance(caught.value, UserError)
    assert not Path(cfg.paths.output_dir).exists()


def test_an_unreadable_image_is_called_unreadable(compose_cfg, cached_classifier, inputs,
                                                  monkeypatch) -> None:
    """Permission denied: "not readable" with the fix (as root every file is readable: PIL's open is made to
    meet what a user without read permission meets)."""
    real_open = Image.open
    unreadable = inputs / "unreadable.png"
    unreadable.write_bytes((inputs / "good.png").read_bytes())

    def denied(path, *args, **kwargs):
        if Path(path) == unreadable:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", denied)
    cfg = compose_cfg("visualize", ["device=cpu", f"task.images={unreadable}"])
    with pytest.raises(ImageError, match=rf"^{unreadable} is not readable \(permission denied\): give your "
                                         rf"user read access \(chmod u\+r {unreadable}\)$"):
        run_task(cfg)
    assert not Path(cfg.paths.output_dir).exists()


@dataclass
class PlotOptions:
    points: int = option(3, positive_int, "a positive integer")


def _plot(run: TaskRun, prepared: None) -> dict[str, float]:
    fig, ax = plt.subplots()
    ax.plot(range(run.options.points))
    run.add_figure(fig, "plot")
    return {"plot/points": float(run.options.points)}


PLOT = Task("plot_task", "a plot", lambda run: None, _plot, PlotOptions, uses_classifier=False)


def plot_cfg(compose_cfg):
    cfg = compose_cfg("visualize", ["task=saliency"])
    with open_dict(cfg):
        cfg.task = {"name": f"{__name__}.PLOT"}
    return cfg


def test_a_full_disk_while_saving_a_figure_names_the_file_and_leaves_no_png(compose_cfg, monkeypatch) -> None:
    """The disk fills while matplotlib writes the PNG: the error names that file in the run folder (not the
    current folder), and no 0-byte or cut PNG is left."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    def full_disk(self, target, *args, **kwargs):
        with open(target, "wb") if isinstance(target, str | Path) else _kept_open(target) as file:
            file.write(b"\x89PNG\r\n")
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FigureCanvasAgg, "print_png", full_disk)
    cfg = plot_cfg(compose_cfg)
    out = Path(cfg.paths.output_dir)
    with pytest.raises(ReportedError, match=rf"^Error: disk full: could not write {out / 'plot.png'} \(No "
                                            rf"space left on device; \d+ MiB free in {out}\)"):
        with user_errors_reported():
            run_task(cfg)
    assert not list(out.glob("*.png")) and not list(out.glob(".*.tmp"))


class _kept_open:
    """A file object as a context manager that leaves it open (matplotlib's caller owns it)."""

    def __init__(self, file) -> None:
        self.file = file

    def __enter__(self):
        return self.file

    def __exit__(self, *exc) -> None:
        return None


def test_the_printed_tensorboard_command_is_shell_quoted(compose_cfg, tmp_path, capsys) -> None:
    cfg = plot_cfg(compose_cfg)
    cfg.paths.output_dir = str(tmp_path / "my runs #1" / "it's")
    run_task(cfg)
    printed = capsys.readouterr().out
    line = next(line for line in printed.splitlines() if line.startswith("TensorBoard: "))
    command = shlex.split(line.removeprefix("TensorBoard: "))
    assert command == ["tensorboard", "--logdir", cfg.paths.output_dir]
    assert (Path(cfg.paths.output_dir) / "plot.png").stat().st_size > 0


def run_visualize(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "VISGRAD_ROOT": str(cwd), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, str(ROOT / "visualize.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [
    ["task.images=F/nowhere.png"], ["task.images=F/corrupt.png"], ["task.images=F/truncated.png"],
    ["task.images=F/empty.png"], ["task.images=F/huge.png"], ["task.images=F/truncated.npz"],
    ["task=fooling", "task.target=notaclass"], ["task=fooling", "task.target=5000"], ["device=tpu"],
    ["+task.foo=1"], ["task=feature_inversion", "task.content_layer=[]"],
], ids=" ".join)
def test_a_refused_visualize_run_leaves_nothing(tmp_path: Path, inputs: Path, overrides: list[str]) -> None:
    """Through the app: exit status 1, a few lines without a traceback, and no folder at all (Hydra's
    .hydra/ and visualize.log are removed with the folders the run created)."""
    result = run_visualize([*with_inputs(overrides, inputs), "print_config=false",
                            f"hydra.run.dir={tmp_path / 'runs' / 'refused'}"], tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 4, result.stderr
    assert "Error: " in result.stderr, result.stderr
    assert not (tmp_path / "runs").exists()
