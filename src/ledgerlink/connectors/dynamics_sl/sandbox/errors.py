"""The one error the sandbox raises: an HTTP status plus SL's table and field when they are known."""

from __future__ import annotations

from typing import Any


class SLError(Exception):
    """A refused request. ``existing`` names the record a duplicate collided with (409)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        table: str | None = None,
        field: str | None = None,
        existing: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.table = table
        self.field = field
        self.existing = existing

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "table": self.table,
                                 "field": self.field}
        if self.existing is not None:
            error["existing"] = self.existing
        return {"error": error}


def invalid(table: str, field: str, message: str, code: str = "InvalidValue", status: int = 422) -> SLError:
    return SLError(status, code, f"{table}.{field}: {message}", table=table, field=field)


def not_found(table: str, what: str) -> SLError:
    return SLError(404, "NotFound", f"{table} {what} does not exist", table=table)
