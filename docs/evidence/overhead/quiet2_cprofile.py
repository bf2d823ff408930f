"""cProfile of the framework's training epoch (classification, 400 steps, after one unprofiled fit): where the time goes.

OMP_NUM_THREADS=1 python docs/evidence/overhead/quiet2_cprofile.py > docs/evidence/overhead/quiet2_cprofile.txt
"""

import cProfile
import logging
import os
import pstats
import warnings

import torch

from bench import overhead as o

torch.set_num_threads(1)
os.environ.setdefault("WANDB_SILENT", "true")
warnings.filterwarnings("ignore")
logging.getLogger("lightning").setLevel(logging.ERROR)
STEPS = 400
cfg = o.config("classification", [], STEPS)
datamodule, task, trainer = o.framework_trainer(cfg)
batches = o.premade_batches(datamodule, STEPS + 1)
o.feed(datamodule, batches)
trainer.fit(task, datamodule=datamodule)  # warm
o.finish(trainer)
datamodule, task, trainer = o.framework_trainer(cfg)
o.feed(datamodule, batches)
profile = cProfile.Profile()
epoch = trainer.fit_loop.epoch_loop.run


def profiled(*args, **kwargs):
    profile.enable()
    try:
        return epoch(*args, **kwargs)
    finally:
        profile.disable()


trainer.fit_loop.epoch_loop.run = profiled
trainer.fit(task, datamodule=datamodule)
o.finish(trainer)
stats = pstats.Stats(profile)
stats.sort_stats("tottime").print_stats(30)
stats.sort_stats("cumtime").print_stats("recipes|callbacks|logger_connector|result.py|core/module.py", 40)
stats.print_callers("_raw_device_count_nvml|current_accelerator|result.py:305")
