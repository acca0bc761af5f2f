"""A user extends visgrad from their own package without editing it: the worked examples of
docs/extending.md (``docs/examples/my_plugins``: a GRU cell, Grad-CAM, an occlusion task and their configs)
are copied into a throwaway folder and used through ``hydra.searchpath``, as a user would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples" / "my_plugins"
TINY_DATA = ["data.shapes.num_train=200", "data.shapes.num_val=60", "data.batch_size=50"]


@pytest.fixture(scope="module")
def user_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's folder: their package ``my_plugins`` and their config folder ``conf``."""
    folder = tmp_path_factory.mktemp("user project")
    shutil.copytree(EXAMPLES, folder, dirs_exist_ok=True)
    return folder


def app(project: Path, script: str, *overrides: str, run_dir: Path) -> subprocess.CompletedProcess:
    """``python <script> hydra.searchpath=[file://<project>/conf] ...`` with the user's package importable."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(ROOT / "src")]),
           "VISGRAD_ROOT": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    command = [sys.executable, str(ROOT / script), f"hydra.searchpath=[file://{project / 'conf'}]",
               f"hydra.run.dir={run_dir}", "print_config=false", *overrides]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=600)


def metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())


def test_the_gru_cell_passes_the_cell_checks(user_project: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(user_project))
    from my_plugins.gru import GRU

    from visgrad.captioning.cell_checks import cell_problems

    assert cell_problems(GRU) == []


def test_a_cell_of_your_own_trains_and_decodes(user_project: Path, shapes_root: Path, tmp_path: Path) -> None:
    data = [f"data.root={shapes_root}", *TINY_DATA]
    run = tmp_path / "gru"
    trained = app(user_project, "train.py", "model=gru", *data, "trainer.max_epochs=1",
                  "model.net.wordvec_dim=16", "model.net.hidden_dim=32", "model.meteor=false",
                  "model.num_samples=2", run_dir=run)
    assert trained.returncode == 0, trained.stderr[-3000:]
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["hyper_parameters"]["net"]["cell_type"] == "my_plugins.gru.GRU"
    assert checkpoint["state_dict"]["net.Wx"].shape == (16, 3 * 32)  # three gate blocks
    assert 0 <= metrics(run)["val/bleu4"] <= 1

    decoded = app(user_project, "visualize.py", "task=captions", f"ckpt_path={run / 'checkpoints/last.ckpt'}",
                  *data, "task.meteor=false", "task.num_images=2", run_dir=tmp_path / "captions")
    assert decoded.returncode == 0, decoded.stderr[-3000:]
    assert 0 <= metrics(tmp_path / "captions")["greedy/bleu4"] <= 1


def test_an_attribution_method_of_your_own_is_scored(user_project: Path, tmp_path: Path) -> None:
    run = tmp_path / "saliency"
    result = app(user_project, "visualize.py", "task=saliency",
                 "task.methods=[vanilla,my_plugins.gradcam.GRADCAM]", "+task.my_gradcam.upsample=nearest",
                 "task.num_images=2", "task.num_show=2", "task.metrics.steps=4", run_dir=run)
    assert result.returncode == 0, result.stderr[-3000:]
    scores = metrics(run)
    for method in ("vanilla", "my_gradcam", "random"):
        assert 0 <= scores[f"saliency/{method}/deletion_auc"] <= 1
        assert 0 <= scores[f"saliency/{method}/insertion_auc"] <= 1
    assert (run / "saliency.png").is_file()

    refused = app(user_project, "visualize.py", "task=saliency", "task.methods=[my_plugins.gradcam.GRADCAM]",
                  "+task.my_gradcam.upsample=cubic", run_dir=tmp_path / "refused")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "task.my_gradcam.upsample='cubic': must be bilinear or nearest" in refused.stderr  # its options
    assert not (tmp_path / "refused").exists()


def test_a_task_of_your_own_runs_and_refuses_bad_options(user_project: Path, tmp_path: Path) -> None:
    run = tmp_path / "occlusion"
    result = app(user_project, "visualize.py", "task=occlusion", "task.num_images=2", "task.window=112",
                 "task.stride=112", "task.metrics.steps=4", run_dir=run)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 0 <= metrics(run)["occlusion/occlusion/deletion_auc"] <= 1
    assert (run / "occlusion.png").is_file()

    for override, message in (("task.window=500", "task.window=500: larger than the 224-pixel inputs"),
                              ("task.stride=0", "task.stride=0: must be a positive integer (pixels); e.g. "
                                                "task.stride=24"),
                              ("+task.windw=8", "task.windw: not an option of OcclusionOptions")):
        refused_dir = tmp_path / "refused"
        refused = app(user_project, "visualize.py", "task=occlusion", override, run_dir=refused_dir)
        assert refused.returncode == 1
        assert message in refused.stderr and "Traceback" not in refused.stderr
        assert not refused_dir.exists()  # a refused run leaves no folder
