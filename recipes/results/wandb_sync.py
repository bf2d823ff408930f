"""Upload every offline W&B run under a folder: ``python -m recipes.results.wandb_sync [logs/] [--dry-run]``.

Runs keep their W&B data in ``<run folder>/wandb/offline-run-<date>-<id>/`` (``logs/<task>/runs/<run>/`` and
``logs/<task>/multiruns/<sweep>/<job>/``). Each such folder not yet synced (wandb leaves a ``.wandb.synced``
file in it) goes to ``wandb sync <folder>``, oldest first, so a resumed run's folders reach W&B in order.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def offline_runs(root: str | Path) -> list[Path]:
    """The offline-run folders under ``root`` that hold a run file and are not synced yet, oldest first per run."""
    found = [
        p
        for p in Path(root).rglob("offline-run-*")
        if p.is_dir() and not p.is_symlink() and "latest-run" not in p.parts and any(p.glob("*.wandb"))
    ]
    return sorted(p for p in found if not any(p.glob("*.wandb.synced")))


def wandb_sync(folder: Path) -> int:
    """``wandb sync <folder>`` with this interpreter's wandb; its exit status."""
    return subprocess.run([sys.executable, "-m", "wandb", "sync", str(folder)], check=False).returncode


def main(argv: list[str] | None = None, sync: Callable[[Path], int] = wandb_sync) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.results.wandb_sync", description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="logs", help="folder searched for offline runs (default: logs)")
    parser.add_argument("--dry-run", action="store_true", help="list the folders, upload nothing")
    args = parser.parse_args(argv)

    runs = offline_runs(args.root)
    if not runs:
        print(f"no offline W&B runs to sync under {args.root}")
        return 0
    if args.dry_run:
        print("\n".join(str(run) for run in runs))
        return 0
    from recipes.run.loggers import wandb_base_url, wandb_logged_in

    base_url = wandb_base_url()
    if not wandb_logged_in(base_url):  # `wandb sync` would ask for a key
        print(f"error: not logged in to W&B ({base_url}); run `wandb login` or set WANDB_API_KEY, then sync", file=sys.stderr)
        return 2
    failed = [run for run in runs if sync(run) != 0]
    print(f"synced {len(runs) - len(failed)} of {len(runs)} offline runs under {args.root}")
    for run in failed:
        print(f"error: `wandb sync {run}` failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
