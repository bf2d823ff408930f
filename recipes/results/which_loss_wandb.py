"""W&B for the searches: one W&B group per search (its trials and seed runs), and the which_loss ranking logged into
that group as a W&B table, so the runs and the report sit together in the W&B project."""

from __future__ import annotations

import hashlib
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from recipes.results.which_loss import COLUMNS, summary_rows
from recipes.run.loggers import resolve_wandb_mode


def group_name(kind: str, study: str, storage: str) -> str:
    """``<kind>-<study>-<digest of the storage>``: workers that share a storage (one search) share a group."""
    return f"{kind}-{study}-{hashlib.sha1(storage.encode()).hexdigest()[:8]}"


def given_group(arguments: list[str]) -> str | None:
    """The group the command line set (``logger.wandb.group=...``), which the searches keep."""
    for argument in arguments:
        key, _, value = argument.partition("=")
        if key.lstrip("+~") == "logger.wandb.group":
            return value
    return None


def wandb_overrides(config: DictConfig, group: str, job_type: str) -> list[str]:
    """The overrides that put a job in ``group`` with ``job_type`` (tune, final); none without a W&B logger."""
    if OmegaConf.select(config, "logger.wandb") is None:
        return []
    return [f"logger.wandb.group={group}", f"logger.wandb.job_type={job_type}"]


def log_report(config: DictConfig, result: dict, sweep: Path, group: str) -> str | None:
    """The ranking (``which_loss.csv``'s columns), every run's row and the plots as one W&B run of job type
    ``report`` in ``group``; returns its mode, or None without a W&B logger (or with W&B disabled)."""
    settings = OmegaConf.select(config, "logger.wandb")
    if settings is None:
        return None
    mode = resolve_wandb_mode(str(settings.get("mode", "auto")))
    if mode == "disabled":
        return None
    import wandb

    manifest = result["manifest"]
    run = wandb.init(
        project=settings.get("project"), entity=settings.get("entity"), group=group, job_type="report",
        name=f"which_loss-{manifest['task']}", dir=str(sweep), mode=mode, config=manifest,
    )  # fmt: skip
    runs = result.get("runs") or []
    columns = list(dict.fromkeys(k for row in runs for k in row))
    tables = {  # a missing value is None, so W&B types each column by its numbers
        "which_loss": wandb.Table(columns=COLUMNS, data=[[none(v) for v in r] for r in summary_rows(result["entries"])]),
        "which_loss_runs": wandb.Table(columns=columns, data=[[none(row.get(k)) for k in columns] for row in runs]),
    }
    run.log({**tables, **{f"plot/{p.stem}": wandb.Image(str(p)) for p in result.get("plots", [])}})
    run.finish()
    return mode


def none(value: object) -> object:
    return None if value == "" else value
