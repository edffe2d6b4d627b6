"""Render mapping templates against canonical records.

A template is text with ``{path|filter:arg|filter}`` placeholders, e.g.
``"Web order {order_reference}"`` or ``"{merchant_defined.3|upper|truncate:30}"``.
Paths walk attributes and mapping keys of the record; a missing value renders
empty (use ``default:`` to say otherwise). Templates are parsed once, when the
integration file loads, so a typo is reported then, naming the field.

What a template renders goes to a back office, so a rendering that holds a full
card number is refused: ``render`` raises ``CardNumberRefused`` naming the
target field (never the value), and nothing is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledgerlink.mappings.functions import ARITY, FILTERS, as_text
from ledgerlink.model.cardnumbers import CardNumberRefused, contains_card_number

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class TemplateError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class _Filter:
    name: str
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Placeholder:
    start: int
    end: int
    path: tuple[str, ...]
    filters: tuple[_Filter, ...]


def _parse_placeholder(inner: str) -> tuple[tuple[str, ...], tuple[_Filter, ...]]:
    parts = [p.strip() for p in inner.split("|")]
    if not parts[0]:
        raise TemplateError("empty placeholder {}")
    path = tuple(parts[0].split("."))
    if any(not segment or not re.fullmatch(r"[A-Za-z0-9_]+", segment) for segment in path):
        raise TemplateError(f"{parts[0]!r} is not a dotted path")
    filters = []
    for spec in parts[1:]:
        name, *args = spec.split(":")
        if name not in FILTERS:
            raise TemplateError(f"unknown filter {name!r} (known: {', '.join(sorted(FILTERS))})")
        low, high = ARITY[name]
        if not low <= len(args) <= high:
            raise TemplateError(f"filter {name!r} takes {low}..{high} argument(s), got {len(args)}")
        filters.append(_Filter(name, tuple(args)))
    return path, tuple(filters)


class Template:
    def __init__(self, source: str, *, roots: frozenset[str] | None = None) -> None:
        if contains_card_number(source):
            raise TemplateError("the template holds a full card number")  # the message must not echo it
        self.source = source
        placeholders = []
        for match in _PLACEHOLDER.finditer(source):
            path, filters = _parse_placeholder(match.group(1))
            if roots is not None and path[0] not in roots:
                raise TemplateError(f"{path[0]!r} is not a field of the record (known: {', '.join(sorted(roots))})")
            placeholders.append(_Placeholder(match.start(), match.end(), path, filters))
        self._placeholders = tuple(placeholders)

    def render(self, record: Any, *, field: str = "template") -> str:
        """The text for ``record``; ``field`` (the back-office field it fills) is named if it is refused."""
        out = []
        cursor = 0
        for placeholder in self._placeholders:
            out.append(self.source[cursor : placeholder.start])
            value = resolve(record, placeholder.path)
            for flt in placeholder.filters:
                value = FILTERS[flt.name](value, *flt.args)
            out.append(as_text(value))
            cursor = placeholder.end
        out.append(self.source[cursor:])
        text = "".join(out)
        if contains_card_number(text):
            raise CardNumberRefused([field], source="mapping output")
        return text

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def resolve(record: Any, path: tuple[str, ...]) -> Any:
    value = record
    for segment in path:
        if value is None:
            return None
        if isinstance(value, Mapping):
            value = value.get(segment)
        else:
            value = getattr(value, segment, None)
    return value
