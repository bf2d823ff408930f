"""The error for a run that cannot go on (as opposed to ``losses.errors.ConfigError``, a wrong setting)."""


class RunError(RuntimeError):
    """The run cannot go on (a full disk, a non-finite loss); printed as one message, the run's outputs kept."""
