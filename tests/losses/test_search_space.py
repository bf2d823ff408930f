"""Every registered loss declares where a search should look, inside what its own validation accepts.

Both ends of every declared range construct the loss (a search never proposes a value the loss refuses), a
log-scale range starts above 0, and every real-number hyperparameter (not ``reduction``, not a flag) is either
searched or left out with a reason: a new loss is checked by being registered.
"""

from __future__ import annotations

import pytest

import losses
from losses import ConfigError
from losses.search import Range, as_range, not_searched, number_hyperparameters, search_space

NAMES = losses.available()


@pytest.mark.parametrize("name", NAMES)
def test_both_ends_of_every_declared_range_construct_the_loss(name):
    for arg, declared in search_space(name).items():
        for value in (declared.low, declared.high):
            losses.build(name, **{arg: value})  # raises ConfigError if the loss refuses it


@pytest.mark.parametrize("name", NAMES)
def test_every_number_hyperparameter_is_searched_or_excluded_with_a_reason(name):
    space, excluded = search_space(name), not_searched(name)
    for arg in number_hyperparameters(name):
        assert arg in space or excluded.get(arg, "").strip(), f"loss {name!r}: {arg} has no search range and no reason"
    assert not set(space) & set(excluded)
    assert set(space) <= set(number_hyperparameters(name))  # no range for an argument the loss does not take


def test_declared_spaces_name_the_issue_s_examples():
    assert search_space("focal")["gamma"] == Range(0.0, 5.0)
    assert search_space("label_smoothing")["label_smoothing"] == Range(0.0, 0.3)
    assert search_space("nt_xent")["temperature"] == Range(0.03, 1.0, log=True)
    assert search_space("huber")["delta"].log and search_space("mse") == {}
    assert "eps" in not_searched("giou") and "label_smoothing" not in not_searched("label_smoothing")


def test_a_range_outside_the_loss_s_validation_would_be_caught():
    """The check above is not vacuous: gamma's lower end moved below 0 is refused by the focal loss."""
    with pytest.raises(ConfigError, match="gamma must be >= 0"):
        losses.build("focal", gamma=as_range("focal", "gamma", (-1.0, 5.0)).low)


@pytest.mark.parametrize("bad", [(1.0,), (2.0, 1.0), (0.0, 1.0, "log"), (0.1, 1.0, "ln"), (True, 2.0)])
def test_a_malformed_declaration_is_refused(bad):
    with pytest.raises(ValueError, match="search_space"):
        as_range("focal", "gamma", bad)
