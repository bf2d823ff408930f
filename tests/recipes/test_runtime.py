"""Runtime features for speed: batches on the device, compiled models, value checks that don't sync."""

from __future__ import annotations

import torch

from recipes.data.device import DeviceBatches
from train import train


def test_device_batches_cover_every_sample_once_per_epoch():
    x = torch.arange(10)
    batches = DeviceBatches((x, x * 2), batch_size=3, shuffle=True, drop_last=False)
    assert len(batches) == 4
    seen = torch.cat([b[0] for b in batches])
    assert sorted(seen.tolist()) == list(range(10))
    assert all(torch.equal(b[1], b[0] * 2) for b in batches)  # rows stay paired


def test_device_batches_drop_the_last_partial_batch_when_training():
    batches = DeviceBatches((torch.arange(10),), batch_size=3, shuffle=False, drop_last=True)
    assert [b[0].tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def test_compiled_model_trains_and_its_checkpoint_loads_uncompiled(smoke_config, tmp_path):
    metrics = train(smoke_config("model=mlp", "compile=true", "trainer.limit_train_batches=2"))
    assert torch.isfinite(torch.tensor(metrics["test/loss"]))
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert not any("_orig_mod" in key for key in state)
    from recipes.models import MLP

    fresh = MLP(in_features=[1, 28, 28], num_outputs=10, hidden=[256, 128])
    fresh.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
