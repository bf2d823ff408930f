"""Test a checkpoint with the config it was trained with: ``python eval.py ckpt_path=<run>/checkpoints/best.ckpt``.

The config is the run folder's ``.hydra/config.yaml``; overrides on the command line still apply
(``trainer.limit_test_batches=10``, ``data.eval_batch_size=256``, ``trainer=gpu``). Writes to
``logs/eval/runs/<date>/`` (``eval.log``, ``csv/metrics.csv``, ``config_tree.log``), prints the test metrics and
returns them. See ``recipes.run.evaluate`` for how the two configs combine.
"""

from __future__ import annotations

import logging
import warnings

import hydra
from omegaconf import DictConfig

from recipes.run.evaluate import trained_config
from recipes.run.overrides import report_config_errors
from recipes.run.project import setup_project
from recipes.run.resolvers import register_resolvers
from train import run, train


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """The test metrics of ``cfg.ckpt_path``, tested with the config of its run (changed by the command line)."""
    # testing needs none of the checkpoint callbacks the run was trained with (they are left out on purpose)
    warnings.filterwarnings("ignore", message="Be aware that when using `ckpt_path`, callbacks")
    return train(trained_config(cfg))


@hydra.main(version_base="1.3", config_path="configs", config_name="eval")
def main(cfg: DictConfig) -> dict[str, float]:
    """Entry point: one message and a non-zero exit status for a bad setting or a failed run, no traceback."""
    logging.captureWarnings(True)
    return run(cfg, evaluate)


setup_project(__file__)
register_resolvers()

if __name__ == "__main__":
    report_config_errors(main, "eval")  # an override Hydra cannot compose: one message, exit 2
