"""Task recipes: one LightningModule per task (``base.Task`` and one module each), their metrics, data and
models; ``run/`` is the path from a composed config to ``Trainer.fit``, ``results/`` reads what runs wrote."""

from recipes.run.resolvers import register_resolvers

register_resolvers()  # the configs' ${scaled:...}, ${inverse_frequency:...}, ${unused_subdir:...}
