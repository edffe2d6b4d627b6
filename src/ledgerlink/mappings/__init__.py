"""Declarative mappings: the per-customer business rules of an integration, validated and compiled."""

from ledgerlink.mappings.engine import Template, TemplateError
from ledgerlink.mappings.spec import MappingSpec, load_mapping

__all__ = ["MappingSpec", "Template", "TemplateError", "load_mapping"]
