"""Run an image-gradient task from the Hydra config in ``conf/visualize.yaml``.

    python visualize.py task=saliency
    python visualize.py task=style_transfer content=PATH style=PATH
    python visualize.py task=captions ckpt_path=PATH
"""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("VISGRAD_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="conf", config_name="visualize")
def main(cfg: DictConfig) -> float | None:
    from visgrad.tasks import run_task
    from visgrad.utils.reporting import user_errors_reported

    with user_errors_reported():  # a user error in a few lines, a bug with its traceback
        return run_task(cfg)


if __name__ == "__main__":
    main()
