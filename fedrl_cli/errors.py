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


class WriteFailed(RunFailed):
    """The file system refused a write (no space, read-only, permission denied); the last checkpoint stays valid."""


class DirRefused(ConfigError):
    """A run or sweep dir that another live process writes, or that holds another run's results (exit 2)."""


class Escalated(BaseException):
    """An error raised in a Hydra callback, carried past Hydra (which turns a callback's exceptions into warnings
    and goes on) to the CLI; ``error`` is the original."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def first_line(error: BaseException) -> str:
    """An error's message in one line of at most 200 characters (its type's name when it has none)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
