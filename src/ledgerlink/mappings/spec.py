"""The ``mapping:`` section of an integration file: one pydantic schema, the single source of truth.

It holds the business rules that differ per customer: how gateway statuses
harmonise into back-office order statuses, how customers are matched, how an
order and its lines are built, which GL accounts money lands in, and which
custom fields carry what. Unknown keys are errors (a typo must not be ignored),
and templates are compiled at load so their mistakes are reported with the
field they are in.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ledgerlink.mappings.engine import Template, TemplateError
from ledgerlink.model import GLAccount, OrderStatus, Payment, PaymentStatus

SKIP = "skip"

PAYMENT_FIELDS = frozenset(Payment.model_fields) | {"chain_id"}

DEFAULT_ORDER_STATUS: dict[PaymentStatus, OrderStatus | Literal["skip"]] = {
    PaymentStatus.PENDING_REVIEW: OrderStatus.ON_HOLD,
    PaymentStatus.AUTHORIZED: OrderStatus.OPEN,
    PaymentStatus.CAPTURED: OrderStatus.PAID,
    PaymentStatus.SETTLED: OrderStatus.PAID,
    PaymentStatus.DECLINED: SKIP,
}


@lru_cache(maxsize=4096)
def compile_template(value: str) -> Template:
    try:
        return Template(value, roots=PAYMENT_FIELDS)
    except TemplateError as exc:
        if "card number" in str(exc):
            raise ValueError(f"bad template: {exc}") from None
        raise ValueError(f"bad template {value!r}: {exc}") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StatusRules(_Strict):
    gateway: dict[str, PaymentStatus] = Field(
        default_factory=dict, description="gateway status -> canonical status, over the connector's defaults"
    )
    order: dict[PaymentStatus, OrderStatus | Literal["skip"]] = Field(
        default_factory=lambda: dict(DEFAULT_ORDER_STATUS),
        description="canonical payment status -> back-office order status ('skip': post nothing)",
    )

    @model_validator(mode="after")
    def _complete(self) -> StatusRules:
        merged = {**DEFAULT_ORDER_STATUS, **self.order}
        object.__setattr__(self, "order", merged)
        return self

    def order_status(self, status: PaymentStatus) -> OrderStatus | None:
        """The order status for a payment status; None means nothing is posted."""
        target = self.order.get(status, SKIP)
        return None if target == SKIP else OrderStatus(target)


class CustomerRules(_Strict):
    match_on: list[Literal["email", "external_id", "id"]] = Field(default_factory=lambda: ["email", "external_id"])
    fallback_id: str | None = Field(None, description="back-office customer for payments without customer details")

    @field_validator("match_on")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one key to match customers on")
        return value


class OrderRules(_Strict):
    line_sku: str = "WEBSALE"
    line_description: str = "Web order {order_reference}"
    apply_payments: Literal["invoice", "prepayment"] = "invoice"
    invoice_description: str = "Card payment {order_reference}"

    @field_validator("line_description", "invoice_description")
    @classmethod
    def _template(cls, value: str) -> str:
        compile_template(value)
        return value


class AccountRules(_Strict):
    """GL accounts by purpose. A flow that needs one that is not set refuses to start, naming it."""

    card_clearing: GLAccount | None = Field(None, description="where captured card money lands until settlement")
    sales: GLAccount | None = Field(None, description="revenue account for order lines (None: item default)")
    returns: GLAccount | None = Field(None, description="sales returns: the debit of a refund's credit memo")
    refund_liability: GLAccount | None = Field(None, description="card refunds owed until the processor pays them")
    write_off: GLAccount | None = Field(None, description="invoices written off (voided or never captured)")
    processing_fees: GLAccount | None = Field(None, description="the processor's fees")
    bank: GLAccount | None = Field(None, description="where the processor's net deposit lands")
    chargeback_clearing: GLAccount | None = Field(None, description="chargebacks until the processor deducts them")
    chargeback_losses: GLAccount | None = Field(None, description="chargebacks lost")
    chargeback_fees: GLAccount | None = Field(None, description="the processor's chargeback fees")

    def require(self, *names: str, purpose: str) -> dict[str, GLAccount]:
        """The named accounts; a ``ValueError`` naming every missing one (``mapping.accounts.<name>``)."""
        missing = [name for name in names if getattr(self, name) is None]
        if missing:
            fields = ", ".join(f"mapping.accounts.{name}" for name in missing)
            raise ValueError(f"{purpose} needs {fields}")
        return {name: getattr(self, name) for name in names}


class FieldRules(_Strict):
    order: dict[str, str] = Field(default_factory=dict, description="back-office order field -> template")
    receipt: dict[str, str] = Field(default_factory=dict, description="back-office receipt field -> template")

    @field_validator("order", "receipt")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        for target, template in value.items():
            try:
                compile_template(template)
            except ValueError as exc:
                raise ValueError(f"{target}: {exc}") from None
        return value


class MappingSpec(_Strict):
    version: int = 1
    statuses: StatusRules = Field(default_factory=StatusRules)
    customer: CustomerRules = Field(default_factory=CustomerRules)
    order: OrderRules = Field(default_factory=OrderRules)
    accounts: AccountRules = Field(default_factory=AccountRules)
    fields: FieldRules = Field(default_factory=FieldRules)

    def render(self, template: str, payment: Payment, *, field: str = "mapping template") -> str:
        """``template`` rendered for ``payment``; a card number in the result raises ``CardNumberRefused``
        naming ``field`` (e.g. ``mapping.order.line_description``)."""
        return compile_template(template).render(payment, field=field)

    def render_fields(self, rules: dict[str, str], payment: Payment, *,
                      section: str = "mapping.fields") -> dict[str, str]:
        """Custom fields by target; a refused one is named ``<section>.<target>``."""
        return {target: compile_template(source).render(payment, field=f"{section}.{target}")
                for target, source in rules.items()}


def load_mapping(data: dict[str, Any] | None) -> MappingSpec:
    return MappingSpec.model_validate(data or {})
