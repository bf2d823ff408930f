"""Hydra's Optuna sweeper, resumable: rerun an interrupted search in its sweep folder and it runs what is left.

The stock sweeper reloads a stored study (``load_if_exists``) but runs ``n_trials`` more and numbers its jobs from
0 again, into the folders of the first trials. This one counts the trials the storage holds as finished, runs the
rest of ``n_trials``, and numbers new jobs after every stored trial (an interrupted one keeps its folder). It also
creates the folder of an ``sqlite:///`` storage, so the database can live in the sweep folder. With a W&B logger its
trials join one W&B group per study and storage (job type ``tune``), so workers sharing a storage share a group.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.plugins.sweeper import Sweeper

from recipes.results.which_loss_wandb import given_group, group_name, wandb_overrides

try:  # the optional extra: Hydra imports every plugin module at start, so this one must import without it
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError:
    OptunaSweeper = Sweeper

log = logging.getLogger(__name__)


def finished(trials: list) -> int:
    """How many of ``trials`` ended (complete, pruned or failed): what a resumed search does not run again."""
    import optuna

    ended = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return sum(t.state in ended for t in trials)


def stored_trials(storage: str, study_name: str) -> list:
    """The trials of ``study_name`` in ``storage``; none when the study is not there yet."""
    import optuna

    try:
        return optuna.load_study(study_name=study_name, storage=storage).trials
    except KeyError:
        return []


class ResumableOptunaSweeper(OptunaSweeper):
    def sweep(self, arguments: list[str]) -> None:
        impl = self.sweeper
        if impl.storage and impl.study_name:
            storage = str(impl.storage)
            if storage.startswith("sqlite:///"):
                Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            trials = stored_trials(storage, impl.study_name)
            done = finished(trials)
            if trials:
                log.info("resuming study %r: %d of %d trials finished", impl.study_name, done, impl.n_trials)
            impl.n_trials = max(impl.n_trials - done, 0)
            impl.job_idx = len(trials)  # after setup(), which starts it at 0
        group = given_group(arguments) or group_name("optuna", str(impl.study_name), str(impl.storage))
        return super().sweep([*arguments, *wandb_overrides(impl.config, group, "tune")])
