"""Hyperparameter searches over the space each loss declares (``losses.search``), as Hydra's Optuna sweeper reads it.

``${search_params:NAME,SLOT,LR_TOO,LR}`` (configs/hparams_search/tune_loss.yaml) turns the declaration of the loss
``NAME`` in ``SLOT`` into ``hydra.sweeper.params``: ``{"loss.gamma": "interval(0.0, 5.0)"}``, a log-scale range as
``tag(log, interval(0.03, 1.0))``, plus the learning rate from a tenth to ten times ``LR`` when ``LR_TOO``.
"""

from __future__ import annotations

from losses.errors import ConfigError
from losses.search import Range, search_space

LR_KEY = "task.optimizer.lr"
LR_FACTOR = 10.0  # the learning rate is searched from lr / 10 to lr * 10, on a log scale


def search_ranges(name: str, slot: str = "loss", lr: float | None = None) -> dict[str, Range]:
    """The override keys a search over loss ``name`` in ``slot`` varies, with their ranges (``lr``: add the learning
    rate around that value)."""
    ranges = {f"{slot}.{arg}": r for arg, r in search_space(name).items()}
    if lr is not None:
        ranges[LR_KEY] = Range(lr / LR_FACTOR, lr * LR_FACTOR, log=True)
    return ranges


def sweeper_param(r: Range) -> str:
    """One range in the Optuna sweeper's override grammar."""
    interval = f"interval({r.low!r}, {r.high!r})"
    return f"tag(log, {interval})" if r.log else interval


def search_params(name: str, slot: str = "loss", lr_too: bool = False, lr: float | None = None) -> dict[str, str]:
    """``hydra.sweeper.params`` for a search over loss ``name`` (and the learning rate when ``lr_too``)."""
    ranges = search_ranges(name, slot, lr if lr_too else None)
    if not ranges:
        raise ConfigError(
            f"hparams_search=tune_loss: loss {name!r} declares no search space (it has no hyperparameter to tune); "
            "set tune.lr=true to search the learning rate, or pick a loss with hyperparameters"
        )
    return {key: sweeper_param(r) for key, r in ranges.items()}


def missing_extra(argv: list[str]) -> str | None:
    """The message for a search asked for (``hparams_search=...``, ``experiment=which_loss``) without the optional
    Optuna extra installed; None when nothing is missing. train.py prints it before Hydra composes anything."""
    import importlib.util

    searches = [a for a in argv if a.startswith("hparams_search=") and a != "hparams_search=null"]
    searches += [a for a in argv if a == "experiment=which_loss"]
    if not searches or importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None:
        return None
    return (
        f"{searches[0]}: needs the Optuna sweeper, an optional extra of this project; install it with "
        'pip install -e ".[optuna]" (make install installs it with the dev tools)'
    )
