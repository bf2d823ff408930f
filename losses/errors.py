"""The one exception type for "the configuration is wrong", shared by losses and recipes."""


class ConfigError(ValueError):
    """A setting is invalid; raised before any data is loaded and printed without a traceback."""


def config_error(owner: str, message: str) -> ConfigError:
    """Build the house-style message: ``loss 'focal': gamma must be >= 0 (got -1)``."""
    return ConfigError(f"{owner}: {message}")


class RunError(RuntimeError):
    """The run cannot go on (a full disk, a non-finite loss); printed as one message, the run's outputs kept."""
