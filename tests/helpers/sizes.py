"""Overrides that make a task's run tiny, so a smoke run takes seconds on a CPU."""

from __future__ import annotations

# a 64-pixel canvas of unscaled digits, 64 / 32 / 32 images in batches of 16
CANVAS_TINY = (
    "data.size=64", "data.max_scale=1.0", "data.train_size=64", "data.val_size=32", "data.test_size=32",
    "data.batch_size=16",
)  # fmt: skip
DETECTOR_TINY = ("model.widths=[8,16,32]", "model.head_width=16", "model.head_depth=1")
DETECTION_TINY = (*CANVAS_TINY, *DETECTOR_TINY)
SEGMENTATION_TINY = (*CANVAS_TINY, "model.widths=[8,16]")

# task -> overrides for a run of a few steps; a task not listed runs at its configs' sizes
TASK_TINY: dict[str, tuple[str, ...]] = {
    "classification": ("model.widths=[8,16]",),
    "regression": ("model.hidden=[16]",),
    "distillation": ("task.teacher_model.widths=[8,16]", "model.hidden=[16]", "task.teacher_epochs=1"),
    "vae": ("model.hidden=[32]", "model.latent_dim=2"),
    "siamese": ("model.widths=[8,16]", "model.num_outputs=16"),
    "simclr": ("model.widths=[8,16]", "task.eval_train_samples=200", "task.probe_steps=5"),
    "detection": DETECTION_TINY,
    "segmentation": SEGMENTATION_TINY,
}

# the exact-resume runs (SIGKILL, SIGTERM): mlp with dropout and shifted images draw random numbers every step;
# 12 steps over 2 epochs, a step checkpoint every 4
RESUME_RUN = (
    "debug=smoke",
    "model=mlp",
    "model.hidden=[32]",
    "trainer.limit_train_batches=6",
    "trainer.max_epochs=2",
    "callbacks.step_checkpoint.every_n_train_steps=4",
)

# the same on a streamed image folder (data.root set by the test): 48 digits less the split-off test, 6 batches an
# epoch, cropped and flipped per sample in 2 workers
STREAM_RESUME_RUN = (
    *RESUME_RUN,
    "data=image_folder",
    "data.image_size=16",
    "data.batch_size=6",
    "data.storage=stream",
    "data.augment=crop_flip",
    "data.num_workers=2",
)
