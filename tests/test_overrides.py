"""recipes.run.overrides: whose HYDRA_FULL_ERROR it is decides between one message and Hydra's traceback."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException

from recipes.run.overrides import OURS, report_config_errors


def bad_override() -> None:
    raise ConfigCompositionException("Could not append to config. An item is already at 'seed'.")


def test_a_composition_error_is_one_message_and_status_2(monkeypatch, capsys):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.delenv(OURS, raising=False)
    with pytest.raises(SystemExit) as exit_:
        report_config_errors(bad_override)
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: Could not append to config. An item is already at 'seed'.\n"


def test_a_rank_that_inherited_our_setting_still_gives_one_message(monkeypatch, capsys):
    """A DDP rank starts with the HYDRA_FULL_ERROR=1 that rank 0's report_config_errors set, not the user."""
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    monkeypatch.setenv(OURS, "1")
    with pytest.raises(SystemExit) as exit_:
        report_config_errors(bad_override)
    assert exit_.value.code == 2


def test_the_users_own_setting_keeps_the_traceback(monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    monkeypatch.delenv(OURS, raising=False)
    with pytest.raises(ConfigCompositionException):
        report_config_errors(bad_override)
