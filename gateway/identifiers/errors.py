"""Exceptions raised by the identifier validators.

Every failure names the rule that failed (a stable string the API passes on
as-is), a message for a clerk (Chinese first, then English in parentheses) and,
where one position is at fault, that position (1-based).

>>> err = InvalidUSCC("length", "应为18位 (must have 18 characters)")
>>> isinstance(err, ValueError), err.rule, err.position
(True, 'length', None)
>>> str(err)
'应为18位 (must have 18 characters)'
"""

from __future__ import annotations

__all__ = ["InvalidCitizenID", "InvalidIdentifier", "InvalidUSCC"]


class InvalidIdentifier(ValueError):
    """An identifier failed one validation rule.

    The exception never keeps the identifier itself: only ``rule``, ``message``
    and ``position`` (which is also all that ``args`` holds), so it is safe to log.
    """

    def __init__(self, rule: str, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.position = position

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(rule={self.rule!r}, message={self.message!r}, position={self.position!r})"

    def __reduce__(self) -> tuple[type[InvalidIdentifier], tuple[str, str, int | None]]:
        return type(self), (self.rule, self.message, self.position)


class InvalidUSCC(InvalidIdentifier):
    """A 统一社会信用代码 (USCC, GB 32100-2015) is invalid."""


class InvalidCitizenID(InvalidIdentifier):
    """A 公民身份号码 (citizen ID, GB 11643-1999) is invalid.

    Its message never contains more of the number than :func:`mask` shows.
    """
