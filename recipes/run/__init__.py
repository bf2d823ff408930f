"""The path from a composed config to ``Trainer.fit``: checks, the task registry, building, guards, resume, launch, loggers."""
