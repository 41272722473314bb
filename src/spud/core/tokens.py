"""The prompt's token count kept from step to step: a step counts only its new messages."""

from __future__ import annotations

from spud.core.messages import Message
from spud.core.protocols import Model, ToolSpec

# How far a sum of messages counted one by one may fall short of the whole list counted at
# once, per message and in all (rounding, the shared wrapper of consecutive tool results).
SLACK_PER_MESSAGE = 4
SLACK = 64


class PromptTokens:
    """Counts the model's prompt tokens for a list that only grows, without re-rendering it.

    The whole list is counted once; each message added later is counted alone and added on.
    When that estimate, with its slack, comes near the budget, the whole list is counted
    again, so the decision near the limit is the model's own exact count.
    """

    def __init__(self, model: Model) -> None:
        self.model = model
        self._specs: list[ToolSpec] | None = None
        self._seen = 0  # messages covered by the count
        self._last: Message | None = None  # the last of them, to see the list only grew
        self._tokens = 0
        self._estimated = 0  # messages added on one by one since the last exact count
        self._empty = 0

    def fits(self, messages: list[Message], specs: list[ToolSpec], budget: int) -> bool:
        """Whether the messages fit in budget tokens."""
        if not self._continues(messages, specs):
            self._exact(messages, specs)
        else:
            for m in messages[self._seen :]:
                self._tokens += self.model.count_tokens([m], []) - self._empty
                self._estimated += 1
            self._seen, self._last = len(messages), messages[-1] if messages else None
        if self._estimated == 0:
            return self._tokens <= budget
        if self._tokens + SLACK + SLACK_PER_MESSAGE * self._estimated <= budget:
            return True
        self._exact(messages, specs)
        return self._tokens <= budget

    def _continues(self, messages: list[Message], specs: list[ToolSpec]) -> bool:
        seen = self._seen
        return (
            specs == self._specs
            and len(messages) >= seen
            and (seen == 0 or messages[seen - 1] is self._last)
        )

    def _exact(self, messages: list[Message], specs: list[ToolSpec]) -> None:
        if specs != self._specs:
            self._specs, self._empty = list(specs), self.model.count_tokens([], [])
        self._tokens = self.model.count_tokens(messages, specs)
        self._seen, self._last = len(messages), messages[-1] if messages else None
        self._estimated = 0
