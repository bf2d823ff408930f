"""The reference experiments beyond classification: each sweeps what it claims, composes, and runs as a user runs it."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from recipes.results.report import key_values
from recipes.results.report import main as report_main
from recipes.run.checks import check_config
from tests.helpers.configs import CONFIGS
from tests.helpers.sizes import DETECTION_TINY, SEGMENTATION_TINY
from tests.test_experiments_classification import run_experiment, sweep_params

FIVE_SEEDS = "0,1,2,3,4"  # where the differences claimed are within two standard deviations at fewer seeds

# experiment -> (swept axis -> its points, seeds, smoke-size overrides, two points to run, metrics every run reports)
EXPERIMENTS = {
    "focal_gamma": (
        {"experiment/focal_point": "g0,g05,g1,g2,g5"},
        FIVE_SEEDS,
        DETECTION_TINY,
        ["experiment/focal_point=g0,g2"],
        {"test/map", "test/map_50", "test/map_75"},
    ),
    "box_losses": (
        {"box_loss": "l1,iou,giou,diou,ciou"},
        FIVE_SEEDS,
        DETECTION_TINY,
        ["box_loss=l1,giou"],  # giou: the report's baseline
        {"test/map", "test/map_50", "test/map_75"},
    ),
    "segmentation_losses": (
        {"loss": "dice,jaccard,tversky,ce"},
        FIVE_SEEDS,
        SEGMENTATION_TINY,
        ["loss=dice,ce"],
        {"test/dice", "test/iou", "test/dice_3"},
    ),
    "siamese_losses": (
        {"loss": "hinge_embedding,cosine_embedding,contrastive,triplet,margin_ranking", "task.open_set": "false,true"},
        "0,1,2",
        ("model.widths=[8,16]", "model.num_outputs=16", "data.eval_pairs=200"),
        ["loss=contrastive,triplet", "task.open_set=true"],
        {"test/roc_auc", "test/eer", "test/acc", "test/pixel_roc_auc", "test/pixel_eer"},
    ),
    "simclr_temperature": (
        {"loss.temperature": "0.05,0.1,0.5,1.0"},
        FIVE_SEEDS,
        ("model.widths=[8,16]", "task.eval_train_samples=300", "task.probe_steps=10"),
        ["loss.temperature=0.1,1.0"],
        {
            "test/knn_acc",
            "test/probe_acc",
            "test/probe10_acc",
            "test/pixel_probe_acc",
            "test/random_probe_acc",
            "test/supervised_probe_acc",
        },
    ),
    "distillation_temperature": (
        {"task.temperature": "1,2,4,8"},
        FIVE_SEEDS,
        ("task.teacher_model.widths=[8,16]", "model.hidden=[32]"),
        ["task.temperature=1,8"],
        {"test/acc", "test/baseline_acc", "test/baseline_epoch", "test/teacher_acc", "test/agreement"},
    ),
    "vae_latent": (
        {"model.latent_dim": "2,5,10,20", "loss.beta": "0.5,1,4"},
        "0,1,2",
        ("model.hidden=[32]", "task.iwae_samples=10"),
        ["model.latent_dim=2", "loss.beta=1,4"],
        {"test/nelbo", "test/recon", "test/kl", "test/niwae", "test/nelbo_gap"},
    ),
    "robust_regression": (
        {"experiment/regression_method": "mse,mae,huber,log_cosh,quantile,gaussian_nll,gaussian_nll_homoscedastic"},
        FIVE_SEEDS,
        ("model.hidden=[16]",),
        ["experiment/regression_method=mse,gaussian_nll_homoscedastic"],
        {"test/mae", "test/rmse", "test/nll", "test/coverage50", "test/coverage90"},
    ),
}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_the_sweep_covers_every_point_with_its_seeds(experiment):
    axes, seeds, *_ = EXPERIMENTS[experiment]
    params = sweep_params(experiment)
    assert params == {**axes, "seed": seeds}


@pytest.mark.parametrize(
    ("experiment", "override"),
    [
        (e, f"{axis}={point}")
        for e, (axes, *_) in EXPERIMENTS.items()
        for axis, points in axes.items()
        for point in points.split(",")
    ],
)
def test_every_point_composes_and_passes_the_check(make_config, experiment, override):
    cfg = make_config(f"experiment={experiment}", override)
    check_config(cfg)
    axis, _, value = override.partition("=")
    if axis == "loss":
        assert cfg.loss.name == value
    elif axis == "experiment/regression_method":
        assert cfg.loss.name == value.removesuffix("_homoscedastic")
        assert cfg.task.homoscedastic == value.endswith("_homoscedastic")
    elif axis == "experiment/focal_point":
        assert (cfg.loss.gamma, cfg.loss.alpha) == {"g0": (0, 0.75), "g05": (0.5, 0.5)}.get(value, (cfg.loss.gamma, 0.25))


def test_the_distillation_sweep_shares_one_teacher_per_seed(make_config):
    caches = {make_config("experiment=distillation_temperature", f"seed={s}").task.teacher_cache for s in (0, 1)}
    assert len(caches) == 2 and all(c.endswith(("seed0.pt", "seed1.pt")) for c in caches)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_as_a_multirun_at_smoke_size_and_reports(tmp_path, experiment):
    _, _, tiny, points, columns = EXPERIMENTS[experiment]
    sweep = tmp_path / experiment
    result = run_experiment(sweep, f"experiment={experiment}", *points, *tiny, smoke=("debug=smoke", "callbacks=none", "seed=0"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list(sweep.glob("*/csv/metrics.csv"))) == 2
    out = report_main([str(sweep)])
    assert len(out["rows"]) == 2 and out["metric"].startswith("test/")
    assert {c.baseline for c in out["comparisons"]} == {baseline(experiment)}  # report.baseline reached the runs
    for row in out["rows"]:
        assert row["seeds"] == 1 and columns <= set(row), columns - set(row)


def composed(experiment: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=[f"experiment={experiment}"], return_hydra_config=True)


def baseline(experiment: str) -> str:
    return composed(experiment).report.baseline


@pytest.mark.parametrize("experiment", [p.stem for p in sorted((CONFIGS / "experiment").glob("*.yaml"))])
def test_every_sweep_names_a_report_baseline_it_sweeps(experiment):
    cfg = composed(experiment)
    params = {str(k): str(v) for k, v in (cfg.hydra.sweeper.get("params") or {}).items()}
    if not params:  # a single run, or which_loss's own search (it ranks against the default loss itself)
        assert "report" not in cfg
        return
    for key, value in key_values([cfg.report.baseline], "report.baseline").items():
        assert key in params and key != "seed", (key, sorted(params))
        assert value in params[key].split(","), (value, params[key])
