"""Predict with a checkpoint on your own data: ``python predict.py ckpt_path=<ckpt> input=<image, folder, or table>``.

The checkpoint is rebuilt with the config it was trained with (its run folder's ``.hydra/config.yaml``, combined
with the command line as eval.py does); its datamodule gives the image size, channels and normalisation. Writes
what the task's users feed on, to ``output`` (default: ``logs/predict/runs/<date>/``); see ``recipes.run.predict``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from recipes.run.overrides import report_config_errors
from recipes.run.project import setup_project
from recipes.run.resolvers import register_resolvers
from train import run


def predict_entry(cfg: DictConfig) -> dict[str, float]:
    from recipes.run.predict import predict

    written = predict(cfg)
    print(f"predictions: {written}")
    return {}


@hydra.main(version_base="1.3", config_path="configs", config_name="predict")
def main(cfg: DictConfig) -> Path | None:
    """Entry point: one message and a non-zero exit status for a bad setting, no traceback."""
    logging.captureWarnings(True)
    run(cfg, predict_entry)
    return None


setup_project(__file__)
register_resolvers()

if __name__ == "__main__":
    report_config_errors(main, "predict")  # an override Hydra cannot compose: one message, exit 2
