"""Errors the core raises; every one carries a message fit for a user."""


class SpudError(Exception):
    """Base class: the message is shown to the user as is, without a traceback."""


class FormatError(SpudError):
    """The model's reply was not a valid tool call; fed back to the model."""

    def __init__(self, problem: str, raw: str = "", cut: bool = False) -> None:
        super().__init__(problem)
        self.problem = problem
        self.raw = raw
        self.cut = cut  # stopped at the output cap


class RunEnded(SpudError):
    """A way a run ends: the loop catches every one in one place and stores its status."""

    status = "stopped"
    hint = ""  # added to the stored summary

    def __init__(self, summary: str, status: str | None = None) -> None:
        super().__init__(summary)
        self.summary = summary
        if status is not None:
            self.status = status


class Finished(RunEnded):
    """The model finished and every check that applies passed (or none applied)."""

    status = "finished"


class CheckFailed(RunEnded):
    """The model finished, but the task's check still fails after the repairs allowed."""

    status = "check_failed"


class Repetition(RunEnded):
    """The same call gave the same result too many times."""

    status = "repetition"


class FormatErrors(RunEnded):
    """Too many invalid replies in a row."""

    status = "format_errors"


class NoAction(RunEnded):
    """The model tried to finish twice without doing anything."""

    status = "no_action"


class ContextOverflow(RunEnded):
    """The trajectory cannot fit the model's context window even after eliding."""

    status = "context_overflow"


class LimitReached(RunEnded):
    """A step, token, cost or time limit stopped the run."""

    def __init__(self, which: str, detail: str) -> None:
        super().__init__(f"{which} limit reached: {detail}", status=f"limit:{which}")
        self.which = which


class ModelError(RunEnded):
    """The model could not be reached or answered with an error; the run can be resumed."""

    status = "model_error"
    hint = " (resume the session to retry)"


class ModelNotFound(SpudError):
    """An unknown model name, or a model file that is missing or corrupt."""


class ConfigError(SpudError):
    """Bad configuration or bad input from the user."""
