"""Task x data x model: a combination that cannot run is one message naming the setting and what fits, exit
status 2, before any data is read (recipes/run/combinations.py)."""

from __future__ import annotations

import pytest
from omegaconf import open_dict

from recipes.run.checks import check_config
from recipes.run.combinations import BATCHES, OUTPUTS, options
from recipes.run.tasks import TASKS, task_class
from tests.helpers.configs import CONFIGS, compose_config
from tests.test_bad_inputs import run_and_expect

COMBINATIONS = [
    # the batch the task consumes against the one the data provides
    (["task=detection", "data=mnist5k"], "data=mnist5k: task 'detection' consumes images+boxes, but data 'mnist5k' "
     "provides images+labels. Data that fit: canvas, canvas_binary, coco_folder"),
    (["task=simclr", "data=diabetes"], "data=diabetes: task 'simclr' consumes images+labels, but data 'diabetes' "
     "provides rows+targets. Data that fit: cifar10, fashion_mnist, image_folder, mnist, mnist5k"),
    (["task=siamese", "data=mnist5k"], "data=mnist5k: task 'siamese' consumes pairs/triplets, but data 'mnist5k' "
     "provides images+labels. Data that fit: image_folder_pairs, mnist5k_pairs"),
    (["task=vae", "data=diabetes"], "data=diabetes: task 'vae' consumes images+labels, but data 'diabetes' "
     "provides rows+targets"),
    (["task=segmentation", "data=mnist5k"], "task 'segmentation' consumes images+masks, but data 'mnist5k' provides "
     "images+labels. Data that fit: canvas, canvas_binary"),
    (["data=canvas"], "data=canvas: task 'classification' consumes images+labels or rows+labels, but data 'canvas' "
     "provides images+boxes or images+masks"),
    # what the task needs from its model against what the model outputs
    (["task=regression", "model=convnet"], "model=convnet: task 'regression' needs row outputs from its model, but model "
     "'convnet' outputs logits, embedding. Models that fit: tabular_mlp"),
    (["task=segmentation", "model=convnet"], "model=convnet: task 'segmentation' needs pixel logits from its model, but "
     "model 'convnet' outputs logits, embedding. Models that fit: deeplabv3, fcn, lraspp, unet"),
    (["task=detection", "model=unet"], "model=unet: task 'detection' needs detector outputs from its model, but model "
     "'unet' outputs pixel logits. Models that fit: detector"),
    (["model=vae"], "model=vae: task 'classification' needs logits from its model, but model 'vae' outputs encode/decode. "
     "Models that fit: convnet, mlp, mlp_small"),
    (["task=vae", "model=convnet"], "task 'vae' needs encode/decode from its model, but model 'convnet' outputs logits, "
     "embedding. Models that fit: vae"),
    (["task=distillation", "model@task.teacher_model=unet"], "task.teacher_model._target_=recipes.models.UNet: task "
     "'distillation' needs logits from its teacher model (task.teacher_model), but model 'recipes.models.UNet' "
     "outputs pixel logits"),
    # a model that reads what the data does not have
    (["task=regression", "model=mlp"], "model=mlp: model.in_features[0] reads data.channels, but data 'diabetes' has no "
     "'channels' (model 'mlp' is for other data). Models that fit: tabular_mlp"),
    (["model=tabular_mlp"], "model=tabular_mlp: model.in_features reads data.num_features, but data 'mnist5k' has no "
     "'num_features'"),
    # channels and classes
    (["model.in_channels=3"], "model.in_channels: model 'convnet' takes 3-channel images, but data 'mnist5k' has "
     "data.channels=1; set model.in_channels=1"),
    (["model.num_outputs=5"], "model.num_outputs: 5 classes, but data 'mnist5k' has data.num_classes=10 and task "
     "'classification' needs logits for each; set model.num_outputs=10"),
    (["task.num_classes=5"], "task.num_classes: 5 classes, but data 'mnist5k' has data.num_classes=10"),
    (["task=segmentation", "model.num_outputs=2"], "model.num_outputs: 2 classes, but data 'canvas' has data.mask_classes=11"),
    (["task=detection", "model.num_classes=3"], "model.num_classes: 3 classes, but data 'canvas' has data.num_classes=10"),
    (["task=distillation", "task.teacher_model.num_outputs=5"], "task.teacher_model.num_outputs: 5 classes, but data "
     "'mnist5k' has data.num_classes=10"),
    (["data.channels=3"], "data 'mnist5k': channels must be 1, what dataset mnist5k holds; set data.channels=1 (got 3)"),
    (["data.num_classes=5"], "data 'mnist5k': num_classes must be 10, what dataset mnist5k holds; "
     "set data.num_classes=10 (got 5)"),
    (["data.image_size=32"], "data 'mnist5k': image_size must be 28, what dataset mnist5k holds; "
     "set data.image_size=28 (got 32)"),
    (["data=cifar10", "data.channels=1"], "data 'cifar10': channels must be 3, what dataset cifar10 holds"),
    # monitor
    (["monitor.metric=val/accuracy"], "monitor.metric: task 'classification' logs no 'val/accuracy' at validation, so the "
     "best checkpoint could not be chosen; it logs val/acc, "),
    (["task=regression", "monitor.metric=val/coverage"], "monitor.metric: task 'regression' logs no 'val/coverage' "
     "at validation, so the best checkpoint could not be chosen; it logs "),
    (["monitor.metric=test/acc"], "monitor.metric: task 'classification' logs no 'test/acc' at validation"),
    (["monitor.mode=maximum"], "monitor.mode: must be min or max (got 'maximum')"),
]  # fmt: skip


@pytest.mark.parametrize("overrides,message", COMBINATIONS, ids=[" ".join(o) for o, _ in COMBINATIONS])
def test_a_combination_that_cannot_run_is_one_message_with_status_2_before_data_loads(tmp_path, capsys, overrides, message):
    fresh_data = tmp_path / "data"
    cfg = compose_config(["debug=smoke", *overrides], tmp_path / "run", fresh_data)
    error = run_and_expect(cfg, capsys, 2)
    assert error.startswith("error: ")
    assert message in error, error
    assert not fresh_data.exists()  # nothing was read: mnist5k would be cached there


def test_the_closest_validation_metric_is_listed_first(make_config):
    from losses.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        check_config(make_config("task=segmentation", "monitor.metric=val/dic"))
    listed = str(err.value).partition("it logs ")[2].removesuffix(". Set monitor.metric to one of them").split(", ")
    assert listed[0] == "val/dice" and sorted(listed) == ["val/dice", "val/iou", "val/loss"]


@pytest.mark.parametrize(
    "overrides",
    [
        ["task=regression", "loss=gaussian_nll", "monitor.metric=val/coverage"],  # coverage with an interval
        ["task=regression", "loss=quantile", "monitor.metric=val/interval_width"],
        ["task=distillation", "monitor.metric=val/baseline_acc"],
        ["task=simclr", "monitor.metric=val/online_acc"],
        ["monitor.metric=train/loss_epoch", "monitor.mode=min"],  # a training metric: not checked
    ],
)
def test_a_metric_a_setting_makes_the_task_log_may_be_monitored(make_config, overrides):
    check_config(make_config(*overrides))


def test_a_metric_of_a_setting_that_is_off_is_refused(make_config):
    from losses.errors import ConfigError

    with pytest.raises(ConfigError, match="logs no 'val/baseline_acc'"):
        check_config(make_config("task=distillation", "task.baseline=false", "monitor.metric=val/baseline_acc"))


# ----- declarations -------------------------------------------------------------------------------
@pytest.mark.parametrize("task", TASKS)
def test_every_task_declares_a_batch_and_its_models_outputs_by_known_names(task):
    cls = task_class(TASKS[task])
    assert cls.batch and set((cls.batch,) if isinstance(cls.batch, str) else cls.batch) <= set(BATCHES)
    assert cls.model_outputs and set(cls.model_outputs.values()) <= set(OUTPUTS)
    assert cls.val_metrics


@pytest.mark.parametrize("group,attribute,names", [("data", "batches", BATCHES), ("model", "outputs", OUTPUTS)])
def test_every_shipped_datamodule_and_model_declares_known_names(group, attribute, names):
    found = dict(options(group, attribute))
    assert set(found) == {p.stem for p in (CONFIGS / group).glob("*.yaml")}  # every option declares
    assert all(set(declared_names) <= set(names) for declared_names in found.values()), found


class OwnData:
    """A datamodule of the user's own that declares nothing: never refused by name."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs


def test_a_datamodule_and_model_of_your_own_without_declarations_are_accepted(make_config):
    cfg = make_config("task=detection")
    with open_dict(cfg):
        cfg.data._target_ = f"{__name__}.OwnData"  # declares no batches
        cfg.model._target_ = "torch.nn.Identity"  # declares no outputs
    from recipes.run.combinations import check_combination

    check_combination(cfg, task_class(cfg.task._target_))  # nothing raised


def test_a_datamodule_of_your_own_that_declares_its_batch_is_checked(make_config):
    from losses.errors import ConfigError
    from recipes.run.combinations import check_combination

    OwnData.batches = ("rows+targets",)
    try:
        cfg = make_config()
        with open_dict(cfg):
            cfg.data._target_ = f"{__name__}.OwnData"
        expected = r"task 'classification' consumes images\+labels or rows\+labels, but data 'mnist5k' provides rows\+targets"
        with pytest.raises(ConfigError, match=expected):
            check_combination(cfg, task_class(cfg.task._target_))
    finally:
        del OwnData.batches


@pytest.mark.parametrize("dataset,holds", [("mnist5k", (1, 28, 10)), ("cifar10", (3, 32, 10))])
def test_an_image_datamodule_left_at_null_takes_what_its_dataset_holds(dataset, holds):
    from recipes.data.images import ImageDataModule

    dm = ImageDataModule(dataset=dataset)
    assert (dm.channels, dm.image_size, dm.num_classes) == holds
