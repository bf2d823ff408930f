"""The distillation recipe: teacher trained or loaded safely, student distilled, all three accuracies reported."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from losses import ConfigError
from train import train

TINY_TEACHER = ("task.teacher_model.widths=[8,16]",)


def test_smoke_run_trains_a_teacher_saves_it_and_reports_three_accuracies(smoke_config, tmp_path):
    metrics = train(smoke_config("task=distillation", *TINY_TEACHER))
    for key in ("test/acc", "test/teacher_acc", "test/baseline_acc", "test/agreement", "test/baseline_agreement", "test/nll"):
        assert math.isfinite(metrics[key]), key
    saved = torch.load(tmp_path / "teacher" / "teacher.pt", weights_only=True)
    assert "head.1.weight" in saved  # a ConvNet's weights
    assert saved["body.0.1.running_mean"].abs().sum() > 0  # trained in train mode: batch norm collected statistics
    assert (tmp_path / "teacher" / "csv" / "metrics.csv").exists()  # the classification recipe's log
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert all(torch.equal(state[f"teacher.{k}"], v) for k, v in saved.items())  # frozen while the student trained


def test_distilled_student_learns_well_above_chance(smoke_config):
    metrics = train(
        smoke_config(
            "task=distillation",
            "model@task.teacher_model=mlp",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=25",
            "data.batch_size=64",
            "task.baseline=false",
        )
    )
    assert metrics["test/teacher_acc"] > 0.6
    assert metrics["test/acc"] > 0.4  # chance is 0.1
    assert "test/baseline_acc" not in metrics


def test_teacher_from_a_classification_checkpoint_is_loaded_not_retrained(smoke_config, tmp_path, data_dir):
    from tests.helpers.configs import compose_config

    first = tmp_path / "classification"
    teacher_metrics = train(compose_config(["debug=smoke", "model.widths=[8,16]"], first, data_dir))
    second = tmp_path / "distillation"
    cfg = compose_config(
        ["debug=smoke", "task=distillation", *TINY_TEACHER, f"task.teacher_ckpt={first}/checkpoints/best.ckpt"],
        second,
        data_dir,
    )
    metrics = train(cfg)
    assert not (second / "teacher").exists()
    # the same weights on the same test batches: the teacher scores what the classification run scored
    assert metrics["test/teacher_acc"] == pytest.approx(teacher_metrics["test/acc"])
    state = torch.load(second / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    original = torch.load(first / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"]
    for key, value in original.items():
        if key.startswith("model."):
            assert torch.equal(state["teacher." + key.removeprefix("model.")], value), key  # frozen


def test_a_teacher_cache_trains_the_teacher_once_for_every_run_that_shares_it(tmp_path, data_dir):
    from tests.helpers.configs import compose_config

    cache = tmp_path / "shared" / "teacher.pt"
    runs = {}
    for temperature in (2, 4):
        folder = tmp_path / f"t{temperature}"
        overrides = [
            "debug=smoke",
            "task=distillation",
            *TINY_TEACHER,
            f"task.teacher_cache={cache}",
            f"task.temperature={temperature}",
        ]
        runs[temperature] = (folder, train(compose_config(overrides, folder, data_dir)))
    assert (runs[2][0] / "teacher").exists() and not (runs[4][0] / "teacher").exists()  # trained once, then loaded
    assert cache.is_file() and not list(cache.parent.glob(".*"))  # no partial file left behind
    assert runs[4][1]["test/teacher_acc"] == pytest.approx(runs[2][1]["test/teacher_acc"])  # the same teacher


def test_missing_teacher_checkpoint_is_a_config_error(smoke_config, tmp_path):
    with pytest.raises(ConfigError, match=r"task.teacher_ckpt: .*nope.pt does not exist; train one with"):
        train(smoke_config("task=distillation", *TINY_TEACHER, f"task.teacher_ckpt={tmp_path}/nope.pt"))


def test_corrupt_teacher_checkpoint_is_a_config_error(smoke_config, tmp_path):
    corrupt = tmp_path / "teacher.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ConfigError, match=r"task.teacher_ckpt: .*teacher.pt is not a weights-only PyTorch checkpoint"):
        train(smoke_config("task=distillation", *TINY_TEACHER, f"task.teacher_ckpt={corrupt}"))


class Payload:
    """An object whose unpickling would run code: what weights_only loading must refuse."""

    def __reduce__(self):
        return (print, ("code ran while loading",))


def test_teacher_checkpoint_that_would_run_code_is_refused(smoke_config, tmp_path):
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"weight": torch.zeros(1), "extra": Payload()}, unsafe)
    with pytest.raises(ConfigError, match="is not a weights-only PyTorch checkpoint"):
        train(smoke_config("task=distillation", *TINY_TEACHER, f"task.teacher_ckpt={unsafe}"))


def test_teacher_checkpoint_of_another_architecture_names_task_teacher_model(smoke_config, tmp_path):
    path = tmp_path / "mlp.pt"
    torch.save(torch.nn.Linear(784, 10).state_dict(), path)
    with pytest.raises(ConfigError, match=r"do not fit task.teacher_model \(ConvNet\) .*missing: .*model@task.teacher_model"):
        train(smoke_config("task=distillation", *TINY_TEACHER, f"task.teacher_ckpt={path}"))


def test_js_div_fits_the_slot_and_trains(smoke_config):
    cfg = smoke_config("task=distillation", *TINY_TEACHER, "loss=js_div", "task.baseline=false", "trainer.limit_train_batches=2")
    assert math.isfinite(train(cfg)["test/loss"])


def test_with_alpha_one_the_student_is_the_student_alone(smoke_config):
    # without dropout (whose masks differ between the two copies) the two students are the same function
    metrics = train(smoke_config("task=distillation", *TINY_TEACHER, "task.alpha=1.0", "model.dropout=0.0"))
    assert metrics["test/acc"] == metrics["test/baseline_acc"]  # same init, same batches, labels only
    assert metrics["test/agreement"] == metrics["test/baseline_agreement"]
    assert metrics["test/nll"] == pytest.approx(metrics["test/loss"], rel=1e-5)  # alpha = 1: the loss is the hard CE


def test_resuming_a_run_does_not_train_the_teacher_again(tmp_path, data_dir):
    from tests.helpers.configs import compose_config

    first = tmp_path / "first"
    train(compose_config(["debug=smoke", "task=distillation", *TINY_TEACHER, "task.scheduler=null"], first, data_dir))
    second = tmp_path / "second"
    overrides = ["debug=smoke", "task=distillation", *TINY_TEACHER, "task.scheduler=null", "trainer.max_epochs=2"]
    train(compose_config([*overrides, f"ckpt_path={first}/checkpoints/last.ckpt"], second, data_dir))
    assert not (second / "teacher").exists()
    saved = torch.load(first / "teacher" / "teacher.pt", weights_only=True)
    state = torch.load(second / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert all(torch.equal(state[f"teacher.{k}"], v) for k, v in saved.items())


def test_a_classification_loss_in_the_slot_is_refused_before_anything_runs(smoke_config):
    from recipes.run.checks import check_config

    with pytest.raises(ConfigError, match="loss 'ce' is of kind 'classification'.*kl_div"):
        check_config(smoke_config("task=distillation", "loss=ce"))


@pytest.mark.parametrize(
    "override,message",
    [
        ("task.temperature=0", "task 'distillation': temperature must be >= 0.0001 (got 0)"),
        ("task.temperature=1e-5", "task 'distillation': temperature must be >= 0.0001 (got 1e-05)"),  # T^2 = 1e-10
        ("task.alpha=1.5", "task 'distillation': alpha must be <= 1 (got 1.5)"),
    ],
)
def test_bad_task_hyperparameters_are_refused(smoke_config, override, message):
    from hydra.utils import instantiate

    from recipes.run.checks import check_config

    cfg = smoke_config("task=distillation", *TINY_TEACHER, override)
    with pytest.raises(Exception) as err:  # Hydra wraps what the constructor raises
        instantiate(cfg.task, model=instantiate(cfg.model), losses=check_config(cfg))
    assert message in str(err.value)


def by_hand(student, teacher, t, name, direction="forward"):
    """T^2 times the divergence between softmax(teacher/T) and softmax(student/T), averaged over the batch."""
    p, q = F.softmax(teacher / t, 1), F.softmax(student / t, 1)
    if name == "js_div":
        m = (p + q) / 2
        divergence = 0.5 * (p * (p / m).log()).sum(1) + 0.5 * (q * (q / m).log()).sum(1)
    elif direction == "reverse":
        divergence = (q * (q.log() - p.log())).sum(1)
    else:
        divergence = (p * (p.log() - q.log())).sum(1)
    return t * t * divergence.mean()


@pytest.mark.parametrize(
    "loss_name,hparams",
    [("kl_div", {}), ("kl_div", {"log_target": True}), ("kl_div", {"direction": "reverse"}), ("js_div", {"log_target": True})],
)
def test_soft_loss_is_t_squared_times_the_divergence_of_softened_distributions(loss_name, hparams):
    import losses
    from recipes.distillation import DistillationTask
    from recipes.models import MLP

    task = DistillationTask(
        MLP(4, 3, hidden=[]),
        {"loss": losses.build(loss_name, **hparams)},
        torch.optim.SGD,
        teacher_model=MLP(4, 3, hidden=[]),
        temperature=3.0,
        num_classes=3,
    )
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(5, 3, generator=g) * 4, torch.randn(5, 3, generator=g) * 4
    expected = by_hand(student, teacher, 3.0, loss_name, hparams.get("direction", "forward"))
    torch.testing.assert_close(task.soft_loss(student, teacher), expected)


def test_the_teacher_stays_in_eval_mode_when_lightning_switches_to_training():
    import losses
    from recipes.distillation import DistillationTask
    from recipes.models import MLP, ConvNet

    task = DistillationTask(
        MLP(784, 10, hidden=[8]), {"loss": losses.build("kl_div")}, torch.optim.SGD, teacher_model=ConvNet(widths=[4])
    )
    task.train()
    assert task.model.training and not task.teacher.training
    assert not any(p.requires_grad for p in task.teacher.parameters())
    assert torch.equal(next(task.baseline.parameters()), next(task.model.parameters()))  # the same start


def distillation_task(cfg):
    """The distillation task of ``cfg``, built as train.py builds it (no data, no Trainer)."""
    from hydra.utils import instantiate

    from recipes.run.checks import check_config

    return instantiate(cfg.task, model=instantiate(cfg.model), losses=check_config(cfg))


def test_the_teacher_run_is_the_classification_recipe_in_the_teacher_folder(smoke_config, tmp_path):
    from recipes.run.checks import check_config
    from recipes.run.teacher import teacher_config

    cfg = smoke_config("task=distillation", *TINY_TEACHER, "task.teacher_epochs=3")
    teacher = teacher_config(cfg, distillation_task(cfg))
    assert teacher.task._target_ == "recipes.classification.ClassificationTask"
    assert teacher.model == cfg.task.teacher_model and teacher.trainer.max_epochs == 3
    assert check_config(teacher)["loss"].name == "ce"
    assert teacher.callbacks.model_checkpoint.dirpath == str(tmp_path / "teacher" / "checkpoints")
    assert list(teacher.logger) == ["csv"] and teacher.logger.csv.save_dir == str(tmp_path / "teacher")
    assert teacher.task.scheduler.max_lr == cfg.task.optimizer.lr  # the schedule's interpolation still resolves


def test_the_teacher_run_leaves_the_random_state_and_the_cache_as_if_the_teacher_came_from_a_file(smoke_config, tmp_path):
    from types import SimpleNamespace

    from recipes.run.teacher import train_teacher_first

    cache = tmp_path / "shared" / "teacher.pt"
    cfg = smoke_config("task=distillation", *TINY_TEACHER, f"task.teacher_cache={cache}")
    task = distillation_task(cfg)
    trained = {k: v + 1 for k, v in task.teacher.state_dict().items()}
    runs = []

    def fake_train(teacher_cfg):  # what train() leaves behind: a best checkpoint of the classification recipe
        runs.append(teacher_cfg)
        torch.rand(100)  # a run draws random numbers
        folder = tmp_path / "teacher" / "checkpoints"
        folder.mkdir(parents=True)
        torch.save({"state_dict": {f"model.{k}": v for k, v in trained.items()}}, folder / "best.ckpt")
        return {"val/acc": 0.9}

    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    train_teacher_first(cfg, task, SimpleNamespace(world_size=1), fake_train)
    assert torch.equal(torch.rand(3), expected)  # the student's run draws what it would have drawn
    assert len(runs) == 1 and task.teacher_ckpt == cfg.task.teacher_ckpt == str(tmp_path / "teacher" / "teacher.pt")
    assert task.hparams["teacher_ckpt"] == task.teacher_ckpt  # the checkpoint's hyperparameters say so too
    saved = torch.load(cache, weights_only=True)
    assert saved.keys() == trained.keys() and all(torch.equal(saved[k], v) for k, v in trained.items())
    assert not list(cache.parent.glob(".*"))  # the partial file was renamed into place

    cfg = smoke_config("task=distillation", *TINY_TEACHER, f"task.teacher_cache={cache}")  # the next run of a sweep
    again = distillation_task(cfg)
    train_teacher_first(cfg, again, SimpleNamespace(world_size=1), fake_train)
    assert len(runs) == 1 and again.teacher_ckpt == str(cache)  # the cache, not a second run


def test_with_several_processes_the_teacher_must_come_from_a_checkpoint(smoke_config):
    from types import SimpleNamespace

    from recipes.run.teacher import train_teacher_first

    cfg = smoke_config("task=distillation", *TINY_TEACHER)

    def refuse(teacher_cfg):
        raise AssertionError("no process may train a teacher")

    with pytest.raises(ConfigError, match="task.teacher_ckpt: with several processes the teacher must come from a checkpoint"):
        train_teacher_first(cfg, distillation_task(cfg), SimpleNamespace(world_size=2), refuse)


def test_the_student_alone_is_tested_at_its_own_best_validation_epoch(smoke_config, tmp_path):
    import pandas as pd

    overrides = ("trainer.max_epochs=4", "trainer.limit_train_batches=3", "model.hidden=[16]", "task.teacher_epochs=1")
    metrics = train(smoke_config("task=distillation", *TINY_TEACHER, *overrides))
    log = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    val = log.dropna(subset=["val/baseline_acc"]).reset_index(drop=True)
    own_best = int(val["val/baseline_acc"].idxmax())  # the first epoch of the maximum, as ModelCheckpoint keeps it
    assert metrics["test/baseline_epoch"] == own_best
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert state["baseline_best_acc"].item() == pytest.approx(val["val/baseline_acc"].max())
    # the weights tested are the ones kept at that epoch, not the student alone's at the distilled student's epoch
    student_best = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"]
    assert int(student_best["baseline_best_epoch"]) <= own_best
