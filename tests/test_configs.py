"""Every config composes, and every loss/task config passes the pre-flight check."""

from __future__ import annotations

import pytest

from recipes.run.checks import check_config
from tests.helpers.configs import CONFIGS


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


@pytest.mark.parametrize("loss", options("loss"))
def test_every_loss_config_composes_and_builds(make_config, loss):
    import losses

    cfg = make_config(f"loss={loss}")
    kind = losses.kind_of(cfg.loss.name)
    task, slot = next((t, s) for t in options("task") for s, kinds in _task_slots(make_config, t).items() if kind in kinds)
    built = check_config(make_config(f"task={task}", f"{slot}={loss}"))  # e.g. box_loss=giou (configs/box_loss/)
    assert built[slot].name == cfg.loss.name


def _task_slots(make_config, task: str) -> dict[str, tuple[str, ...]]:
    from recipes.run.tasks import task_class

    return task_class(make_config(f"task={task}").task._target_).slots


@pytest.mark.parametrize("task", options("task"))
def test_every_task_config_passes_the_check_with_its_defaults(make_config, task):
    cfg = make_config(f"task={task}")
    assert set(check_config(cfg)) >= {"loss"}


@pytest.mark.parametrize(
    "group", ["data", "model", "trainer", "logger", "callbacks", "debug", "experiment", "hparams_search", "paths"]
)
def test_every_option_of_every_group_composes(make_config, group):
    for option in options(group):
        cfg = make_config(f"{group}={option}")
        assert cfg is not None
