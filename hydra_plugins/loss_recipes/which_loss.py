"""``python train.py -m experiment=which_loss task=<task>``: tune every loss that fits each slot of the task, retrain the
best setting of each with K seeds, test, and rank them (``recipes.results.which_loss``).

A Hydra sweeper, so every run is an ordinary ``train.py`` job launched by the configured launcher (locally, or as
SLURM jobs through submitit) into ``<sweep>/tune/<slot>/<loss>/<trial>`` and ``<sweep>/final/<slot>/<loss>/seed<k>``.
Per loss: an Optuna study (seeded TPE, ``trials`` trials) over the space the loss declares, on the task's validation
metric, with ``test=false``; a loss that declares no space keeps its config's values. The studies are stored in
``<sweep>/which_loss.db`` (or the ``storage`` database URL) and finished seed runs are kept: rerun the command with
the same ``hydra.sweep.dir`` and it goes on where it stopped. With a W&B logger every job joins one W&B group per
sweep (job type ``tune`` or ``final``) and the ranking is logged there as a table.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.loss_recipes.resumable_optuna import finished
from losses import available
from losses.errors import ConfigError
from recipes.results.report import read_run
from recipes.results.which_loss import MANIFEST, report
from recipes.results.which_loss_wandb import given_group, group_name, log_report, wandb_overrides
from recipes.run.search import search_ranges
from recipes.run.tasks import task_class

log = logging.getLogger(__name__)


class WhichLossSweeper(Sweeper):
    def __init__(
        self,
        trials: int,
        seeds: int,
        tune_lr: bool = False,
        losses: list[str] | None = None,
        test_metric: str | None = None,
        n_jobs: int = 1,
        startup_trials: int = 4,
        storage: str | None = None,
    ) -> None:
        self.trials, self.seeds, self.tune_lr = int(trials), int(seeds), bool(tune_lr)
        self.only = list(losses) if losses else None
        self.test_metric = test_metric
        self.n_jobs = max(int(n_jobs), 1)
        self.startup_trials = int(startup_trials)
        self.storage_url = storage
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.sweep_dir = Path(config.hydra.sweep.dir)

    # ----- what to run -------------------------------------------------------------------------------
    def plan(self) -> dict[str, list[str]]:
        """For each slot of the task: the registered losses of its kinds that have a config in that slot's group."""
        slots = task_class(self.config.task._target_).slots
        plan = {}
        for slot, kinds in slots.items():
            options = set(self.hydra_context.config_loader.get_group_options(slot))
            names = sorted({n for kind in kinds for n in available(kind)} & options)
            if self.only is not None:
                names = [n for n in names if n in self.only]
            if names:
                plan[slot] = names
        if not plan:
            raise ConfigError(f"which_loss: no loss of the task's slots is left (losses={self.only})")
        return plan

    def job_arguments(self, arguments: list[str], plan: dict[str, list[str]]) -> list[str]:
        """The command line's overrides for every job, less the keys this sweeper sets itself; a sweep is refused."""
        own = {*plan, "seed", "test"}
        kept = []
        for override in OverridesParser.create().parse_overrides(arguments):
            if override.is_sweep_override():
                raise ConfigError(f"which_loss: {override.input_line} is a sweep; which_loss chooses the losses and seeds itself")
            if override.get_key_element().lstrip("+~") not in own:
                kept.append(override.input_line)
        return kept

    # ----- the sweep --------------------------------------------------------------------------------
    def sweep(self, arguments: list[str]) -> None:
        plan = self.plan()
        base = self.job_arguments(arguments, plan)
        monitor = self.config.monitor
        manifest = {
            "task": OmegaConf.select(self.config, "hydra.runtime.choices.task") or self.config.task._target_,
            "metric": str(monitor.metric),
            "test_metric": self.test_metric or str(monitor.metric).replace("val/", "test/", 1),
            "mode": str(monitor.mode),
            "defaults": {s: OmegaConf.select(self.config, f"hydra.runtime.choices.{s}") or self.config[s].name for s in plan},
            "slots": plan,
            "trials": self.trials,
            "seeds": self.seeds,
            "tune_lr": self.tune_lr,
            "best": {},
            "failed": {},
        }
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        self.storage = self.storage_url or f"sqlite:///{self.sweep_dir.resolve()}/which_loss.db"
        self.group = given_group(arguments) or group_name("which_loss", str(manifest["task"]), self.storage)
        for slot, names in plan.items():
            for name in names:
                key = f"{slot}={name}"
                try:
                    best = self.tune(slot, name, base, manifest)
                    manifest["best"][key] = best
                    self.write(manifest)
                    self.final(slot, name, best, base, manifest["test_metric"])
                except Exception as err:  # one loss that cannot train (its data, its head) must not end the ranking
                    log.warning("which_loss: %s failed: %s", key, err)
                    manifest["failed"][key] = f"{type(err).__name__}: {err}".splitlines()[0][:300]
                self.write(manifest)
        result = report(self.sweep_dir)
        log.info("which_loss: ranking in %s", self.sweep_dir / "which_loss.md")
        if log_report(self.config, result, self.sweep_dir, self.group):
            log.info("which_loss: ranking logged to W&B, group %s", self.group)
        return result

    def write(self, manifest: dict) -> None:
        (self.sweep_dir / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False))

    def launch(self, overrides: list[list[str]]) -> list:
        returns = self.launcher.launch([tuple(o) for o in overrides], initial_job_idx=self.job_idx)
        self.job_idx += len(returns)
        return returns

    def tune(self, slot: str, name: str, base: list[str], manifest: dict) -> dict:
        """The best setting of loss ``name`` on the validation metric (empty: its config's values)."""
        import optuna  # the optional extra (recipes.run.search.missing_extra says so before Hydra starts)

        lr = float(self.config.task.optimizer.lr) if self.tune_lr else None
        ranges = search_ranges(name, slot, lr)
        if not ranges or self.trials < 1:
            return {}
        sampler = optuna.samplers.TPESampler(seed=self.config.get("seed"), n_startup_trials=self.startup_trials)
        study = optuna.create_study(
            study_name=f"{slot}={name}",
            storage=self.storage,
            sampler=sampler,
            direction=f"{manifest['mode']}imize",
            load_if_exists=True,
        )
        left = self.trials - finished(study.trials)
        while left > 0:
            asked = [study.ask() for _ in range(min(left, self.n_jobs))]
            overrides = []
            for trial in asked:
                values = {key: trial.suggest_float(key, r.low, r.high, log=r.log) for key, r in ranges.items()}
                overrides.append(
                    [
                        *base,
                        f"{slot}={name}",
                        *(f"{k}={v!r}" for k, v in values.items()),
                        "test=false",
                        *wandb_overrides(self.config, self.group, "tune"),
                        f"hydra.sweep.subdir=tune/{slot}/{name}/{trial.number}",
                    ]
                )
            for trial, ret in zip(asked, self.launch(overrides)):
                try:
                    value = float(ret.return_value)
                except Exception as err:  # a failed job raises here; a run that logged no metric returns None
                    log.warning("which_loss: %s=%s trial %d failed: %s", slot, name, trial.number, err)
                    value = math.nan
                if math.isfinite(value):
                    study.tell(trial, value)
                else:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
            left -= len(asked)
        if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
            raise RuntimeError(f"every tuning trial failed (see {self.sweep_dir / 'tune' / slot / name})")
        return {key: float(v) for key, v in study.best_params.items()}

    def final(self, slot: str, name: str, best: dict, base: list[str], test_metric: str) -> None:
        """Retrain the best setting with seeds 0 .. seeds-1 and test; seed runs that finished already are kept."""
        folder = self.sweep_dir / "final" / slot / name
        todo = [s for s in range(self.seeds) if not self.finished(folder / f"seed{s}", test_metric)]
        overrides = [
            [
                *base,
                f"{slot}={name}",
                *(f"{k}={v!r}" for k, v in best.items()),
                f"seed={s}",
                "test=true",
                *wandb_overrides(self.config, self.group, "final"),
                f"hydra.sweep.subdir=final/{slot}/{name}/seed{s}",
            ]
            for s in todo
        ]
        failed = []
        for seed, ret in zip(todo, self.launch(overrides) if overrides else []):
            try:
                ret.return_value  # noqa: B018 (raises the job's error)
            except Exception as err:
                failed.append(f"seed {seed}: {err}")
        if len(failed) == self.seeds:
            raise RuntimeError(failed[0])
        for message in failed:
            log.warning("which_loss: %s=%s %s", slot, name, message)

    @staticmethod
    def finished(folder: Path, test_metric: str) -> bool:
        run = read_run(folder)
        return run is not None and test_metric in run.metrics
