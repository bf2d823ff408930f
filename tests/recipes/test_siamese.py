"""The siamese recipe: pairs and triplets from class labels, open-set splits, verification metrics, end to end."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import roc_auc_score

from losses import ConfigError
from recipes.data.tuples import TupleDataModule
from recipes.run.checks import check_config
from recipes.siamese import Verification, best_threshold, equal_error_rate
from train import train

TINY = ("model.widths=[8,16]", "model.num_outputs=16")


@pytest.fixture(scope="module")
def open_set_data(tmp_path_factory):
    dm = TupleDataModule(tuples="triplet", open_set=True, data_dir=str(tmp_path_factory.mktemp("data")), eval_pairs=400)
    dm.setup()
    return dm


def test_open_set_keeps_whole_classes_out_of_training_and_out_of_validation(open_set_data):
    classes = {split: set(labels.unique().tolist()) for split, (_, labels) in open_set_data.splits.items()}
    assert classes["train"] == classes["val"] == {0, 1, 2, 3, 4, 5}  # checkpoint and threshold: seen classes only
    assert classes["test"] == {6, 7, 8, 9}
    sizes = {split: len(labels) for split, (_, labels) in open_set_data.splits.items()}
    assert sizes == {"train": 2700, "val": 300, "test": 1000}  # val_fraction 0.1 of the seen; half of the unseen


def test_closed_set_split_has_every_class_everywhere(tmp_path):
    dm = TupleDataModule(tuples="pair", open_set=False, data_dir=str(tmp_path))
    dm.setup()
    for _, labels in dm.splits.values():
        assert set(labels.unique().tolist()) == set(range(10))


def test_training_pairs_are_balanced_and_labelled_by_class(tmp_path):
    dm = TupleDataModule(tuples="contrastive", data_dir=str(tmp_path))  # a pair loss's name picks pairs
    dm.setup()
    assert dm.kind == "pair"
    dataset = dm.train_dataloader().dataset
    images, labels = dm.splits["train"]
    position = {images[i].numpy().tobytes(): int(labels[i]) for i in range(len(labels))}
    ys = []
    for i in range(200):
        x1, x2, y = dataset[i]
        same_class = position[x1.numpy().tobytes()] == position[x2.numpy().tobytes()]
        assert same_class == (int(y) == 1)
        assert not torch.equal(x1, x2)
        ys.append(int(y))
    assert sum(ys) == 0  # exactly as many same as different pairs


def test_triplets_have_a_same_class_positive_and_an_other_class_negative(open_set_data):
    dataset = open_set_data.train_dataloader().dataset
    labels = open_set_data.splits["train"][1]
    index = dataset.index
    for i in range(100):
        assert labels[index.same(i)] == labels[i]
        assert labels[index.other(i)] != labels[i]
    assert len(dataset[0]) == 3


def test_evaluation_pairs_are_fixed_balanced_and_the_same_for_pairs_and_triplets(tmp_path, open_set_data):
    other = TupleDataModule(tuples="pair", open_set=True, data_dir=str(tmp_path), eval_pairs=400)
    other.setup()
    for split in ("val", "test"):
        for a, b in zip(open_set_data.pairs[split], other.pairs[split]):
            assert torch.equal(a, b)
        i, j, y = other.pairs[split]
        labels = other.splits[split][1]
        assert torch.equal(labels[i] == labels[j], y == 1)
        assert int((y == 1).sum()) == 200


def test_a_views_loss_cannot_pick_the_tuples():
    with pytest.raises(ConfigError, match="data.tuples: loss 'nt_xent' is of kind 'views'"):
        TupleDataModule(tuples="nt_xent")


def test_too_few_unseen_classes_are_refused():
    with pytest.raises(ConfigError, match=r"unseen_classes must name 2 to 8 classes for open-set verification \(got \[9\]\)"):
        TupleDataModule(open_set=True, unseen_classes=[9])


def test_auc_matches_sklearn_and_eer_and_best_threshold_match_brute_force():
    g = torch.Generator().manual_seed(0)
    same = torch.rand(300, generator=g) < 0.5
    distances = torch.rand(300, generator=g) + 0.6 * (~same)  # different pairs tend to lie further apart
    metric = Verification()
    metric.update(distances, same)
    results = metric.compute()
    assert results["roc_auc"].item() == pytest.approx(roc_auc_score(same.numpy(), -distances.numpy()), abs=1e-6)
    candidates = torch.cat([distances, distances.min(0, keepdim=True).values - 1])
    accuracy = max(((distances <= t) == same).float().mean().item() for t in candidates)
    assert results["acc"].item() == pytest.approx(accuracy)
    assert ((distances <= results["threshold"]) == same).float().mean().item() == pytest.approx(accuracy)
    far = [((distances <= t) & ~same).sum().item() / (~same).sum().item() for t in distances.sort().values]
    frr = [((distances > t) & same).sum().item() / same.sum().item() for t in distances.sort().values]
    k = min(range(len(far)), key=lambda i: abs(far[i] - frr[i]))
    assert results["eer"].item() == pytest.approx((far[k] + frr[k]) / 2, abs=0.01)
    assert results["pos_distance"] < results["neg_distance"]


def test_perfectly_separated_pairs_have_zero_eer_and_full_accuracy():
    distances = torch.tensor([0.1, 0.2, 0.3, 0.9, 1.0, 1.1])
    same = torch.tensor([True, True, True, False, False, False])
    assert equal_error_rate(distances, same).item() == 0.0
    threshold, accuracy = best_threshold(distances, same)
    assert accuracy.item() == 1.0 and 0.3 < threshold.item() < 0.9


def test_the_test_threshold_comes_from_val_not_from_test():
    metric = Verification()
    metric.update(torch.tensor([0.1, 0.2, 0.9, 1.0]), torch.tensor([True, True, False, False]))
    assert metric.compute(threshold=torch.tensor(0.15))["acc"].item() == 0.75  # 0.2 is rejected at val's threshold


def test_siamese_refuses_a_loss_of_another_kind(make_config):
    with pytest.raises(ConfigError, match="slot 'loss' of task 'siamese' takes kind 'pair' or 'triplet'"):
        check_config(make_config("task=siamese", "loss=nt_xent"))


@pytest.mark.parametrize("loss", ["contrastive", "triplet"])
def test_a_short_run_verifies_digits_better_than_the_untrained_encoder(make_config, tmp_path, loss):
    cfg = make_config(
        "task=siamese",
        f"loss={loss}",
        "task.open_set=false",  # seen classes: a clear signal after 30 steps of a tiny encoder
        "logger=csv",
        *TINY,
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=30",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "data.batch_size=64",
        "data.eval_pairs=400",
    )
    metrics = train(cfg)
    for key in ("roc_auc", "eer", "acc", "threshold", "pos_distance", "neg_distance"):
        assert math.isfinite(metrics[f"test/{key}"]), key
    # chance is 0.5; the untrained encoder (seed 0, `fit=false`) scores ROC-AUC 0.63 and EER 0.40 here
    assert metrics["test/roc_auc"] > 0.68
    assert metrics["test/eer"] < 0.36
    assert metrics["test/acc"] > 0.6
    assert metrics["test/pos_distance"] < metrics["test/neg_distance"]
    assert (tmp_path / "images" / "test_embeddings_pca.png").exists()


def test_open_set_smoke_run_reports_every_verification_metric(smoke_config):
    metrics = train(smoke_config("task=siamese", "loss=margin_ranking", *TINY, "data.eval_pairs=200"))
    assert {f"test/{k}" for k in ("roc_auc", "eer", "acc", "threshold", "pos_distance", "neg_distance")} <= set(metrics)
    assert {f"test/pixel_{k}" for k in ("roc_auc", "eer", "acc")} <= set(metrics)  # the raw-pixel baseline
    assert 0.5 < metrics["test/pixel_roc_auc"] < 1.0  # pixels of the same digit are closer, but far from perfectly
    assert 0.0 <= metrics["test/eer"] <= 1.0 and 0.0 <= metrics["test/acc"] <= 1.0


def test_data_that_yields_pairs_for_a_triplet_loss_is_refused(smoke_config):
    message = r"task 'siamese': loss 'triplet' takes triplets, so the datamodule must yield them.* \(got 'pair'\)"
    with pytest.raises(ConfigError, match=message):
        train(smoke_config("task=siamese", "loss=triplet", "data.tuples=pair", *TINY))
