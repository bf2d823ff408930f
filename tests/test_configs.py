"""Every config composes, and every loss/task config passes the pre-flight check."""

from __future__ import annotations

import pytest

from recipes.checks import check_config
from tests.conftest import CONFIGS


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


@pytest.mark.parametrize("loss", options("loss"))
def test_every_loss_config_composes_and_builds(make_config, loss):
    import losses

    cfg = make_config(f"loss={loss}")
    kind = losses.kind_of(cfg.loss.name)
    task = next(t for t in options("task") if kind in _task_kinds(make_config, t))
    built = check_config(make_config(f"task={task}", f"loss={loss}"))
    assert built["loss"].name == cfg.loss.name


def _task_kinds(make_config, task: str) -> tuple[str, ...]:
    from recipes.tasks import task_class

    return task_class(make_config(f"task={task}").task._target_).slots["loss"]


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
