"""Train a model (the image captioner by default) from the Hydra config in ``conf/train.yaml``.

    python train.py model=lstm
    python train.py -m model=rnn,lstm model.net.hidden_dim=128,512
    python train.py experiment=overfit_lstm
    python train.py resume=logs/train/runs/<time>     # continue a killed run in its own folder
"""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("VISGRAD_ROOT", str(ROOT))


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from visgrad.training import train
    from visgrad.utils.reporting import user_errors_reported

    with user_errors_reported():  # a user error in a few lines, a bug with its traceback
        return train(cfg)


if __name__ == "__main__":
    from visgrad.utils.resume import expand_sys_argv

    expand_sys_argv(ROOT / "conf", "train")  # resume=RUN → the run's saved overrides and folder
    main()
