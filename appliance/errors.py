"""Errors shared by every layer."""

from __future__ import annotations

EXIT_CONFIG = 6  # LSB "program is not configured": what 3.0.6 returns on a bad config


class ConfigError(Exception):
    """A configuration problem the operator must fix: names the file, line and what was expected."""

    def __init__(self, path: str, line: int | None, message: str, hint: str = "") -> None:
        self.path = path
        self.line = line
        self.message = message
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        text = f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class DecodeError(ValueError):
    """A packet that cannot be decoded; `reason` is a short stable counter key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


class ConfigErrors(ConfigError):
    """Every problem found in one pass over a file, so the operator fixes them all at once."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.path, first.line, first.message, first.hint)

    def __str__(self) -> str:
        return "\n".join(ConfigError.__str__(e) for e in self.errors)
