"""How a command ends badly: bad input (exit 2), a run that failed (exit 1) or was interrupted (exit 130)."""


class ConfigError(ValueError):
    """Bad input: the message is one line naming the key, the value and what is allowed."""


class RunFailed(RuntimeError):
    """A run stopped early (divergence, an error inside the loop); its run dir records why."""


class Diverged(RunFailed):
    """A metric became NaN or infinite."""


class Interrupted(Exception):
    """The run was asked to stop (SIGINT or SIGTERM) and stopped after a round, leaving a checkpoint."""


class ResumeError(ValueError):
    """A path that cannot be resumed (not a run, completed, an unreadable checkpoint): one line, exit 2."""
