"""Cybersource wire models: the JSON the REST API and its webhooks exchange (spec §4 to §6).

These mirror the wire, not our model: camelCase on the wire (snake_case here),
amounts as decimal *strings* (a JSON number where an amount belongs is refused,
so a float never becomes money), and every model lenient about fields it does
not name, because Cybersource adds fields freely and the SDK injects some
(``clientReferenceInformation.partner.developerId``). Translation to canonical
records lives in ``translate.py``.

PTS responses (payments, captures, refunds, reversals, voids) and TSS
transaction details share most of their structure, so they share one base,
``Transaction``; the per-operation names exist to say which one a call returns.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Wire(BaseModel):
    """Base of every wire model: camelCase aliases, unknown fields kept, construction by either name."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# --- shared pieces ---------------------------------------------------------------------------


class Link(Wire):
    href: str | None = None
    method: str | None = None


class Partner(Wire):
    developer_id: str | None = None
    solution_id: str | None = None


class ClientReference(Wire):
    code: str | None = None
    transaction_id: str | None = None
    partner: Partner | None = None


class AmountDetails(Wire):
    total_amount: str | None = None
    authorized_amount: str | None = None
    currency: str | None = None
    tax_amount: str | None = None


class BillTo(Wire):
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    address1: str | None = None
    address2: str | None = None
    locality: str | None = None
    administrative_area: str | None = None
    postal_code: str | None = None
    country: str | None = None
    email: str | None = None
    phone_number: str | None = None


class LineItem(Wire):
    product_sku: str | None = Field(default=None, validation_alias=AliasChoices("productSku", "productSKU", "product_sku"))
    product_name: str | None = None
    product_code: str | None = None
    quantity: int | str | None = None
    unit_price: str | None = None
    tax_amount: str | None = None


class OrderInformation(Wire):
    amount_details: AmountDetails | None = None
    bill_to: BillTo | None = None
    ship_to: BillTo | None = None
    line_items: list[LineItem] | None = None


class MerchantDefinedField(Wire):
    key: str | None = None
    value: str | None = None


class Card(Wire):
    """Card data as responses carry it. ``number`` exists only on *requests* that carry a PAN (the SDK's);
    ledgerlink never sends one and never reads one."""

    number: str | None = Field(default=None, repr=False)
    expiration_month: str | None = None
    expiration_year: str | None = None
    type: str | None = None
    suffix: str | None = None
    prefix: str | None = None
    security_code: str | None = Field(default=None, repr=False)


class TokenRef(Wire):
    id: str | None = None
    state: str | None = None


class PaymentInformation(Wire):
    card: Card | None = None
    tokenized_card: Card | None = None
    customer: TokenRef | None = None
    payment_instrument: TokenRef | None = None
    instrument_identifier: TokenRef | None = None


class PaymentAccountInformation(Wire):
    card: Card | None = None


class TokenInformation(Wire):
    customer: TokenRef | None = None
    payment_instrument: TokenRef | None = None
    instrument_identifier: TokenRef | None = None
    shipping_address: TokenRef | None = None
    instrumentidentifier_new: bool | None = Field(default=None, alias="instrumentidentifierNew")


class ProcessingInformation(Wire):
    capture: bool | None = None
    commerce_indicator: str | None = None
    action_list: list[str] | None = None
    action_token_types: list[str] | None = None


class ProcessorInformation(Wire):
    approval_code: str | None = None
    network_transaction_id: str | None = None
    transaction_id: str | None = None
    response_code: str | None = None


class ErrorDetail(Wire):
    field: str | None = None
    reason: str | None = None


class ErrorInformation(Wire):
    reason: str | None = None
    message: str | None = None
    details: list[ErrorDetail] | None = None


class RiskRule(Wire):
    name: str | None = None
    decision: str | None = None


class RiskScore(Wire):
    result: str | int | None = None
    factor_codes: list[str] | None = None
    model_used: str | None = None


class RiskInformation(Wire):
    profile: RiskRule | None = None
    rules: list[RiskRule] | None = None
    info_codes: dict[str, list[str]] | None = None
    score: RiskScore | None = None
    case_priority: int | str | None = None


class Application(Wire):
    name: str | None = None
    status: str | None = None
    reason_code: str | None = None
    r_code: str | None = None
    r_flag: str | None = None
    r_message: str | None = None
    reconciliation_id: str | None = None


class ApplicationInformation(Wire):
    status: str | None = None
    reason_code: str | None = None
    r_code: str | None = None
    r_flag: str | None = None
    applications: list[Application] | None = None


class RefundAmountDetails(Wire):
    refund_amount: str | None = None
    currency: str | None = None


class ReversalAmountDetails(Wire):
    reversed_amount: str | None = None
    original_transaction_amount: str | None = None
    currency: str | None = None


class VoidAmountDetails(Wire):
    void_amount: str | None = None
    original_transaction_amount: str | None = None
    currency: str | None = None


# --- requests --------------------------------------------------------------------------------


class PaymentRequest(Wire):
    """POST /pts/v2/payments: authorise, or sale with ``processingInformation.capture=true``."""

    client_reference_information: ClientReference | None = None
    processing_information: ProcessingInformation | None = None
    payment_information: PaymentInformation | None = None
    order_information: OrderInformation | None = None
    merchant_defined_information: list[MerchantDefinedField] | None = None


class CaptureRequest(Wire):
    client_reference_information: ClientReference | None = None
    order_information: OrderInformation | None = None
    merchant_defined_information: list[MerchantDefinedField] | None = None


class RefundRequest(CaptureRequest):
    pass


class ReversalInformation(Wire):
    amount_details: AmountDetails | None = None
    reason: str | None = None


class ReversalRequest(Wire):
    client_reference_information: ClientReference | None = None
    reversal_information: ReversalInformation | None = None


class VoidRequest(Wire):
    client_reference_information: ClientReference | None = None


# --- responses -------------------------------------------------------------------------------


class Transaction(Wire):
    """What PTS 201 responses and TSS details have in common; every field optional."""

    id: str | None = None
    root_id: str | None = None
    status: str | None = None
    submit_time_utc: str | None = Field(
        default=None, validation_alias=AliasChoices("submitTimeUtc", "submitTimeUTC", "submit_time_utc")
    )
    reconciliation_id: str | None = None
    merchant_id: str | None = None
    client_reference_information: ClientReference | None = None
    processing_information: ProcessingInformation | None = None
    order_information: OrderInformation | None = None
    payment_information: PaymentInformation | None = None
    payment_account_information: PaymentAccountInformation | None = None
    token_information: TokenInformation | None = None
    processor_information: ProcessorInformation | None = None
    risk_information: RiskInformation | None = None
    error_information: ErrorInformation | None = None
    application_information: ApplicationInformation | None = None
    merchant_defined_information: list[MerchantDefinedField] | None = None
    refund_amount_details: RefundAmountDetails | None = None
    reversal_amount_details: ReversalAmountDetails | None = None
    void_amount_details: VoidAmountDetails | None = None
    links: dict[str, Any] | None = Field(default=None, alias="_links")


class PaymentResponse(Transaction):
    """201 from POST /pts/v2/payments, approved or declined alike."""


class CaptureResponse(Transaction):
    pass


class RefundResponse(Transaction):
    pass


class ReversalResponse(Transaction):
    pass


class VoidResponse(Transaction):
    pass


class TransactionDetails(Transaction):
    """200 from GET /tss/v2/transactions/{id}; also the full-detail webhook ``payload.data``."""


class PtsError(Wire):
    """400/502 body of the Payments API: ``{submitTimeUtc, status, reason, message, details[]}``."""

    submit_time_utc: str | None = None
    status: str | None = None
    reason: str | None = None
    message: str | None = None
    details: list[ErrorDetail] | None = None


class TmsErrorDetail(Wire):
    name: str | None = None
    location: str | None = None


class TmsErrorItem(Wire):
    type: str | None = None
    message: str | None = None
    details: list[TmsErrorDetail] | None = None


class TmsError(Wire):
    """Token Management errors, a different family from PTS: ``{errors: [{type, message, details}]}``."""

    errors: list[TmsErrorItem] = Field(default_factory=list)


# --- webhooks --------------------------------------------------------------------------------


class WebhookEnvelope(Wire):
    """A notification body (spec §6.3). ``payload`` is event-specific, so it stays untyped here."""

    webhook_id: str | None = None
    transaction_trace_id: str | None = None
    product_id: str | None = None
    organization_id: str | None = None
    event_type: str
    event_date: str | None = None
    request_type: str | None = None
    retry_number: int | None = None
    notification_id: str | None = None
    payload: Any


class KeyInformation(Wire):
    provider: str | None = None
    tenant: str | None = None
    organization_id: str | None = None
    key_id: str | None = None
    key: str | None = Field(default=None, repr=False)
    key_type: str | None = None
    status: str | None = None
    expiration_date: str | None = None
    expiry_duration: str | None = None


class KeyRequest(Wire):
    client_request_action: str = "CREATE"
    key_information: KeyInformation


class KeyResponse(Wire):
    submit_time_utc: str | None = None
    status: str | None = None
    key_information: KeyInformation


class WebhookProduct(Wire):
    product_id: str
    event_types: list[str] = Field(default_factory=list)


class RetryPolicy(Wire):
    algorithm: str | None = None
    first_retry: int | None = None
    interval: int | None = None
    number_of_retries: int | None = None
    deactivate_flag: bool | str | None = None
    repeat_sequence_count: int | None = None
    repeat_sequence_wait_time: int | None = None


class SecurityPolicy(Wire):
    security_type: str | None = None
    key_id: str | None = None
    config: dict[str, Any] | None = None

    def kms_key_id(self) -> str | None:
        """Plugins put the KMS key id in either of two places (spec §6.1)."""
        if self.key_id:
            return self.key_id
        extra = (self.config or {}).get("additionalConfig") or {}
        return extra.get("keyId") if isinstance(extra, dict) else None


class WebhookSubscription(Wire):
    """Request and response of /notification-subscriptions/v2/webhooks."""

    webhook_id: str | None = None
    organization_id: str | None = None
    name: str | None = None
    description: str | None = None
    products: list[WebhookProduct] = Field(default_factory=list)
    webhook_url: str | None = None
    health_check_url: str | None = None
    notification_scope: str | None = None
    status: str | None = None
    retry_policy: RetryPolicy | None = None
    security_policy: SecurityPolicy | None = None
    created_on: str | None = None


# --- Transaction Search (TSS) ------------------------------------------------------------------


class SearchRequest(Wire):
    """POST /tss/v2/searches. ``query`` is ``field:value`` terms joined by `` AND ``."""

    save: bool | None = None
    name: str | None = None
    timezone: str | None = None
    query: str
    offset: int | None = None
    limit: int | None = None
    sort: str | None = None


class TransactionSummary(Transaction):
    """One search hit: a subset of TSS details (``applicationInformation.status`` rather than ``status``)."""


class SearchEmbedded(Wire):
    transaction_summaries: list[TransactionSummary] = Field(default_factory=list)


class SearchResponse(Wire):
    search_id: str | None = None
    query: str | None = None
    offset: int | None = None
    limit: int | None = None
    sort: str | None = None
    count: int | None = None
    total_count: int | None = None
    submit_time_utc: str | None = None
    embedded: SearchEmbedded | None = Field(default=None, alias="_embedded")
    links: dict[str, Any] | None = Field(default=None, alias="_links")

    @property
    def summaries(self) -> list[TransactionSummary]:
        return self.embedded.transaction_summaries if self.embedded else []


# --- Reporting (spec §7) ------------------------------------------------------------------------


class NetFundingSummary(Wire):
    type: str | None = None  # PURCHASES | REFUNDS | FEES | CHARGEBACKS
    payment_sub_type: str | None = None
    conveyed_count: int | None = None
    conveyed_amount: str | None = None
    settled_count: int | None = None
    funded_count: int | None = None
    funded_amount: str | None = None
    currency_code: str | None = None


class CurrencyAmount(Wire):
    currency: str | None = None
    value: str | None = None


class NetFundings(Wire):
    """GET /reporting/v3/net-fundings: per-currency totals; net = purchases − refunds − fees − chargebacks."""

    start_time: str | None = None
    end_time: str | None = None
    net_funding_summaries: list[NetFundingSummary] = Field(default_factory=list)
    total_purchases: list[CurrencyAmount] = Field(default_factory=list)
    total_refunds: list[CurrencyAmount] = Field(default_factory=list)
    total_fees: list[CurrencyAmount] = Field(default_factory=list)
    total_chargebacks: list[CurrencyAmount] = Field(default_factory=list)
    net_total: list[CurrencyAmount] = Field(default_factory=list)


class ChargebackDetail(Wire):
    """One stage of a chargeback (the SDK's ``ReportingV3ChargebackDetailsGet200ResponseChargebackDetails``).

    ``feeAmount``/``feeCurrency`` are not in the SDK model; the sandbox adds them (named after the Business
    Center report's FeeAmount field) and they are read when present.
    """

    processor_merchant_id: str | None = None
    merchant_name: str | None = None
    transaction_reference_number: str | None = None
    merchant_reference_number: str | None = None
    nature_of_dispute: str | None = None
    alert_type: str | None = None
    amount: str | None = None
    sign: str | None = None
    action: str | None = None
    card_type: str | None = None
    original_settlement_time: str | None = None
    tracking_number: str | None = None
    currency_code: str | None = None
    request_id: str | None = None
    response_due_time: str | None = None
    time: str | None = None
    action_description: str | None = None
    customer_id: str | None = None
    reason_code: str | None = None
    representment_cp_time: str | None = Field(default=None, alias="representmentCPTime")
    applications: str | None = None
    event_requested_time: str | None = None
    pre_dispute_flag: str | None = None
    fee_amount: str | None = None
    fee_currency: str | None = None


class ChargebackDetails(Wire):
    organization_id: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    chargeback_details: list[ChargebackDetail] = Field(default_factory=list)
