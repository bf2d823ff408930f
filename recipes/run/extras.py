"""What a run shows and keeps besides its metrics (``configs/extras/``): the composed config as a tree, the run
folder at the start and the end, its tags, and the warnings filter.

At the start (rank 0): ``extras.ignore_warnings`` silences Python warnings, ``extras.enforce_tags`` refuses a run
without ``tags=[...]``, ``extras.print_config`` prints the composed config as a Rich tree and saves it as
``config_tree.log``; the tags go to ``tags.log`` (W&B gets them through ``configs/logger/wandb.yaml``), the git
commit to ``commit.txt``. At the end, the test metrics and where the run's files are go to the log (and so to ``train.log``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from losses.errors import ConfigError
from recipes.run.launch import rank

log = logging.getLogger(__name__)

# the groups that make a run, first in the tree; every other key follows in config order
TREE_ORDER = ("task", "loss", "box_loss", "data", "model", "trainer", "callbacks", "logger", "paths", "extras")


def value(cfg: DictConfig, key: str) -> object:
    """``cfg[key]`` resolved where it can be, else as written (e.g. ``${hydra:...}`` outside a Hydra run)."""
    try:
        return cfg[key]
    except Exception:
        return cfg._get_node(key)._value()


def node_yaml(node: DictConfig) -> str:
    """A config node as YAML, interpolations resolved where they can be (else as written)."""
    try:
        text = OmegaConf.to_yaml(node, resolve=True)
    except Exception:
        text = OmegaConf.to_yaml(node, resolve=False)
    return text.rstrip()


def config_tree(cfg: DictConfig, order: Iterable[str] = TREE_ORDER):
    """The composed config as a ``rich.tree.Tree``: one branch per group (YAML), then the plain settings."""
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", style="bold", guide_style="dim")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order]
    groups = [k for k in keys if isinstance(cfg._get_node(k), DictConfig)]
    settings = OmegaConf.create({k: value(cfg, k) for k in keys if k not in groups})
    for key, node in [*((k, cfg[k]) for k in groups), ("settings", settings)]:
        tree.add(str(key), style="bold").add(Syntax(node_yaml(node), "yaml", theme="ansi_dark", background_color="default"))
    return tree


def save_config_tree(cfg: DictConfig, path: Path, show: bool = True) -> None:
    """Print the config tree to the terminal (``show``) and write it, without colours, to ``path``."""
    from rich.console import Console

    tree = config_tree(cfg)
    if show:
        Console().print(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        Console(file=f, color_system=None, width=120).print(tree)


def tags_of(cfg: DictConfig) -> list[str]:
    """The run's ``tags`` as strings (a single tag may be given without brackets)."""
    tags = cfg.get("tags") or []
    return [str(t) for t in ([tags] if isinstance(tags, str) else tags)]


def start(cfg: DictConfig) -> None:
    """The ``extras`` of a run, on rank 0, before anything is built; a missing enforced tag is a ConfigError."""
    extras = cfg.get("extras") or {}
    tags = tags_of(cfg)
    if extras.get("enforce_tags") and not tags:
        raise ConfigError("tags: none given, but extras.enforce_tags=true asks every run for tags; add e.g. tags=[baseline]")
    if extras.get("ignore_warnings"):
        warnings.filterwarnings("ignore")
    if rank() != 0:
        return
    folder = Path(cfg.paths.output_dir)
    if extras.get("print_config", True):
        save_config_tree(cfg, folder / "config_tree.log")
    if tags:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "tags.log").write_text("".join(f"{t}\n" for t in tags))
    save_commit(folder / "commit.txt")
    log.info("run folder: %s", folder)


def save_commit(path: Path) -> None:
    """The code's git commit (``-dirty`` with uncommitted changes) for the report's ``runs.csv``; none outside git."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return
    if head.returncode == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") + "\n")


def finish(cfg: DictConfig, metrics: dict[str, float], best_checkpoint: str = "") -> None:
    """Log the test metrics and where the run's files are (rank 0)."""
    if rank() != 0:
        return
    tested = {k: v for k, v in metrics.items() if k.startswith("test/")}
    if tested:
        log.info("test metrics: %s", ", ".join(f"{k}={v:.4g}" for k, v in sorted(tested.items())))
    folder = Path(cfg.paths.output_dir)
    written = sorted(p.name + "/" * p.is_dir() for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []
    if best_checkpoint:
        log.info("best checkpoint: %s", best_checkpoint)
    log.info("run folder: %s (%s)", folder, ", ".join(written) or "nothing written")
