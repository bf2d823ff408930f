"""This project's Hydra sweepers (Hydra takes sweepers from the ``hydra_plugins`` package only)."""
