"""The two ways a command ends badly: bad input (exit 2) and a run that failed (exit 1)."""


class ConfigError(ValueError):
    """Bad input: the message is one line naming the key, the value and what is allowed."""


class RunFailed(RuntimeError):
    """A run stopped early (divergence, an error inside the loop); its run dir records why."""


class Diverged(RunFailed):
    """A metric became NaN or infinite."""
