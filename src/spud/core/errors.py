"""Errors the core raises; every one carries a message fit for a user."""


class SpudError(Exception):
    """Base class: the message is shown to the user as is, without a traceback."""


class FormatError(SpudError):
    """The model's reply was not a valid tool call; fed back to the model."""

    def __init__(self, problem: str, raw: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.raw = raw


class ContextOverflow(SpudError):
    """The trajectory cannot fit the model's context window even after eliding."""


class LimitReached(SpudError):
    """A step, token, cost or time limit stopped the run."""

    def __init__(self, which: str, detail: str) -> None:
        super().__init__(f"{which} limit reached: {detail}")
        self.which = which


class ModelError(SpudError):
    """The model could not be reached or answered with an error; the run can be resumed."""


class ModelNotFound(SpudError):
    """An unknown model name, or a model file that is missing or corrupt."""


class ConfigError(SpudError):
    """Bad configuration or bad input from the user."""
