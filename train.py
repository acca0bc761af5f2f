"""Train a model (the image captioner by default) from the Hydra config in ``conf/train.yaml``.

    python train.py model=lstm
    python train.py -m model=rnn,lstm model.hidden_dim=128,512
    python train.py experiment=overfit_lstm
"""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("VISGRAD_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from visgrad.training import train

    return train(cfg)


if __name__ == "__main__":
    main()
