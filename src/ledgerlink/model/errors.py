"""Errors as values for bad input: every problem names its field and the reason."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One problem with one field of an input document (``field`` is a dotted path)."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class InvalidInput(ValueError):
    """Input that cannot be accepted; carries every issue found, each with its field."""

    def __init__(self, issues: list[FieldIssue] | FieldIssue, *, source: str = "input") -> None:
        self.issues = [issues] if isinstance(issues, FieldIssue) else list(issues)
        self.source = source
        super().__init__(f"invalid {source}: " + "; ".join(str(i) for i in self.issues))

    def as_dict(self) -> dict[str, object]:
        return {
            "error": "invalid_input",
            "source": self.source,
            "issues": [{"field": i.field, "reason": i.reason} for i in self.issues],
        }
