"""Errors of the service layer that surfaces turn into 403, 404 and 409."""

from spud.core.errors import SpudError


class Forbidden(SpudError):
    """The user's role does not allow this action."""


class NotFound(SpudError):
    """No such thing in the user's organisation (other organisations' things are not found)."""


class Conflict(SpudError):
    """The thing is not in a state that allows this (e.g. an approval already decided)."""
