"""Project files a contributor relies on: the pre-commit hook runs the same ruff as `make lint`."""

from __future__ import annotations

import yaml

from tests.helpers.configs import ROOT


def test_the_pre_commit_hook_runs_ruff_with_fixes_at_the_installed_version():
    from importlib.metadata import version

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    (repo,) = [r for r in config["repos"] if r["repo"].endswith("/ruff-pre-commit")]
    assert [h["id"] for h in repo["hooks"]] == ["ruff"] and "--fix" in repo["hooks"][0]["args"]
    assert repo["rev"] == f"v{version('ruff')}"  # the hook checks what `make lint` checks
