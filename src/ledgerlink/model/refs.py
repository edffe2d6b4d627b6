"""Cross-system references: the links that tie one record to its copies elsewhere.

A reference is ``(system, kind, id)``. Its ``key`` doubles as the business
idempotency key of the side effect that creates the referenced record, e.g.
``dynamics_sl:salesorder:ORD-1001``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator


class ExternalRef(BaseModel):
    """One record in one external system."""

    model_config = ConfigDict(frozen=True)

    system: str
    kind: str
    id: str

    @field_validator("system", "kind", "id")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value or not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @property
    def key(self) -> str:
        return f"{self.system}:{self.kind}:{self.id}"

    @classmethod
    def parse(cls, key: str) -> ExternalRef:
        system, kind, ident = key.split(":", 2)
        return cls(system=system, kind=kind, id=ident)

    def __str__(self) -> str:
        return self.key
