"""Where a run starts: the project folder every path hangs off, and the project's ``.env``.

``python /path/to/train.py`` writes under the project's ``logs/`` from whatever folder it is started in:
``configs/paths/default.yaml`` roots the paths at ``PROJECT_ROOT``, which is the folder of the entry script
unless the environment (or ``.env``) already sets it; ``paths.root_dir=<folder>`` on the command line wins
over both. ``.env`` in that folder (git-ignored) sets environment variables for the run, such as
``WANDB_API_KEY`` or ``DATA_DIR``; a variable already set in the environment keeps its value.
"""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import load_dotenv


def setup_project(entry_script: str | Path) -> Path:
    """Load ``<project>/.env`` and set ``PROJECT_ROOT`` (if unset) to the folder of ``entry_script``; returns the root."""
    folder = Path(entry_script).resolve().parent
    load_dotenv(folder / ".env", override=False)
    os.environ.setdefault("PROJECT_ROOT", str(folder))
    return Path(os.environ["PROJECT_ROOT"])
