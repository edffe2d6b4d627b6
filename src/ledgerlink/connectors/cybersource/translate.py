"""Cybersource wire ↔ canonical records.

One function reads every transaction-shaped document (PTS 201 responses, TSS
details, full-detail webhook payloads) into a canonical ``Payment``; one builds
the payments request from an ``AuthorizationRequest``. Problems are reported as
``InvalidInput`` naming the dotted wire path (prefixed by where the document sat,
e.g. ``payload.data.orderInformation.amountDetails.totalAmount``), so a bad
webhook or response explains itself in the dead-letter list.

Statuses map through ``StatusTable``: a Cybersource status alone is ambiguous
(``PENDING`` is a capture or a refund; ``AUTHORIZED`` is an authorisation or a
sale), so keys are ``"<kind>:<STATUS>"`` with a plain ``"<STATUS>"`` fallback, and
an integration may override either form.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from ledgerlink.connectors.cybersource import schemas as wire
from ledgerlink.connectors.cybersource.cards import CARD_TYPE_CODES, brand_for_type, expiry_date
from ledgerlink.connectors.cybersource.decision_manager import describe
from ledgerlink.connectors.cybersource.declines import classify_decline
from ledgerlink.model import (
    Address,
    AuthorizationRequest,
    FieldIssue,
    InvalidInput,
    LineItem,
    Money,
    MoneyError,
    Party,
    Payment,
    PaymentKind,
    PaymentStatus,
    PaymentToken,
    RiskAssessment,
    currency_exponent,
)

GATEWAY = "cybersource"
SOURCE = "cybersource document"

_K = PaymentKind
_S = PaymentStatus

DEFAULT_STATUS_MAP: dict[str, PaymentStatus] = {
    "AUTHORIZED": _S.AUTHORIZED,
    "sale:AUTHORIZED": _S.CAPTURED,
    "PARTIAL_AUTHORIZED": _S.AUTHORIZED,
    "sale:PARTIAL_AUTHORIZED": _S.CAPTURED,
    "AUTHORIZED_PENDING_REVIEW": _S.PENDING_REVIEW,
    "PENDING_REVIEW": _S.PENDING_REVIEW,
    "AUTHORIZED_RISK_DECLINED": _S.DECLINED,
    "DECLINED": _S.DECLINED,
    "INVALID_REQUEST": _S.DECLINED,
    "capture:PENDING": _S.CAPTURED,
    "capture:TRANSMITTED": _S.CAPTURED,
    "refund:PENDING": _S.REFUNDED,
    "refund:TRANSMITTED": _S.REFUNDED,
    "REVERSED": _S.VOIDED,
    "VOIDED": _S.VOIDED,
    "CANCELLED": _S.VOIDED,
}

REVIEW_STATUSES = frozenset({"AUTHORIZED_PENDING_REVIEW", "PENDING_REVIEW"})
RISK_REJECT_STATUSES = frozenset({"AUTHORIZED_RISK_DECLINED"})
RISK_REJECT_REASONS = frozenset({"DECISION_PROFILE_REJECT", "SCORE_EXCEEDS_THRESHOLD"})
# Legacy reason codes (spec §4.7/§8) for the risk outcomes PTS reports only by name.
RISK_REASON_CODES = {"DECISION_PROFILE_REVIEW": "480", "DECISION_PROFILE_REJECT": "481", "SCORE_EXCEEDS_THRESHOLD": "400"}

# TSS application names → the kind of transaction they make (first match wins: a
# follow-on's own service outranks the services of the payment it acts on).
_APPLICATION_KINDS = (
    ("ics_void", _K.VOID),
    ("ics_auth_reversal", _K.REVERSAL),
    ("ics_credit", _K.REFUND),
)


class StatusTable:
    """Cybersource status (per kind) → canonical status, with an integration's overrides on top."""

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        self._overrides: dict[str, PaymentStatus] = {}
        for key, value in (overrides or {}).items():
            try:
                self._overrides[key] = PaymentStatus(value)
            except ValueError:
                known = ", ".join(s.value for s in PaymentStatus)
                raise ValueError(f"status_map[{key!r}]: {value!r} is not a canonical status ({known})") from None

    def resolve(self, kind: PaymentKind, status: str) -> PaymentStatus | None:
        """Overrides first (kind-specific, then plain), then the defaults in the same order."""
        specific = f"{kind.value}:{status}"
        for table in (self._overrides, DEFAULT_STATUS_MAP):
            for key in (specific, status):
                if key in table:
                    return table[key]
        return None


DEFAULT_STATUS_TABLE = StatusTable()


class _Issues:
    """Collects problems so one bad document reports all of them, each at its full path."""

    def __init__(self, prefix: str) -> None:
        self.prefix = f"{prefix}." if prefix else ""
        self.items: list[FieldIssue] = []

    def add(self, path: str, reason: str) -> None:
        self.items.append(FieldIssue(self.prefix + path, reason))

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidInput(self.items, source=SOURCE)


def validation_issues(error: ValidationError, prefix: str = "") -> list[FieldIssue]:
    """Pydantic's errors as field issues with dotted wire paths (``lineItems[0].unitPrice``)."""
    issues = []
    for item in error.errors(include_url=False):
        path = ""
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        full = f"{prefix}.{path}" if prefix and path else (prefix or path)
        issues.append(FieldIssue(full or "body", item["msg"]))
    return issues


def read_transaction(doc: Mapping[str, Any] | wire.Transaction, *, path: str = "") -> wire.Transaction:
    """A transaction document as a wire model; ``InvalidInput`` naming the field when its shape is wrong."""
    if isinstance(doc, wire.Transaction):
        return doc
    try:
        return wire.TransactionDetails.model_validate(doc)
    except ValidationError as exc:
        raise InvalidInput(validation_issues(exc, path), source=SOURCE) from None


def infer_kind(doc: wire.Transaction, hint: PaymentKind | None = None) -> PaymentKind:
    """The transaction's kind: the caller's hint when it knows better, else TSS ``applications``."""
    apps = doc.application_information.applications if doc.application_information else None
    names = {a.name for a in apps or () if a.name}
    captured = "ics_bill" in names or bool(doc.processing_information and doc.processing_information.capture)
    if hint is not None:
        return _K.SALE if hint is _K.AUTHORIZATION and captured else hint
    for name, kind in _APPLICATION_KINDS:
        if name in names:
            return kind
    if "ics_auth" in names or not names:
        return _K.SALE if captured else _K.AUTHORIZATION
    return _K.CAPTURE  # ics_bill alone


def to_payment(
    doc: Mapping[str, Any] | wire.Transaction,
    *,
    kind: PaymentKind | None = None,
    kind_hint: PaymentKind | None = None,
    statuses: StatusTable = DEFAULT_STATUS_TABLE,
    fallback_amount: Money | None = None,
    parent_id: str | None = None,
    review: bool = False,
    path: str = "",
) -> Payment:
    """A canonical ``Payment`` from any transaction-shaped document.

    ``kind`` is certain knowledge (the call that produced the response);
    ``kind_hint`` is a guess refined by the document (a webhook event type).
    ``fallback_amount`` covers responses that omit the amount (many declines).
    ``review`` marks a risk-review event whose document may not say so itself.
    """
    txn = read_transaction(doc, path=path)
    issues = _Issues(path)
    resolved_kind = kind or infer_kind(txn, kind_hint)

    if not txn.id:
        issues.add("id", "missing transaction id")
    status = None
    if not txn.status:
        issues.add("status", "missing status")
    else:
        status = statuses.resolve(resolved_kind, txn.status)
        if status is None:
            issues.add("status", f"status {txn.status!r} of a {resolved_kind.value} has no canonical mapping "
                                 "(add it to the integration's status_map)")
    amount = _amount(txn, resolved_kind, fallback_amount, issues)
    currency = amount.currency if amount else None
    token = _token(txn, issues)
    party = _party(txn, token)
    line_items = _line_items(txn, currency, issues)
    merchant_defined = _merchant_defined(txn, issues)
    submitted = _timestamp(txn.submit_time_utc, "submitTimeUtc", issues)
    issues.raise_if_any()
    assert status is not None and amount is not None and txn.id is not None

    error = txn.error_information
    declined = status is _S.DECLINED
    return Payment(
        gateway=GATEWAY,
        id=txn.id,
        kind=resolved_kind,
        status=status,
        gateway_status=txn.status or "",
        amount=amount,
        order_reference=txn.client_reference_information.code if txn.client_reference_information else None,
        root_id=txn.root_id,
        parent_id=parent_id or parent_from_links(txn),
        party=party,
        token=token,
        merchant_defined=merchant_defined,
        line_items=line_items,
        risk=_risk(txn, review),
        decline_reason=error.reason if declined and error else None,
        decline_category=classify_decline(error.reason if error else None) if declined else None,
        decline_message=error.message if declined and error else None,
        reconciliation_id=txn.reconciliation_id,
        submitted_at=submitted,
    )


# --- pieces of a payment ---------------------------------------------------------------------


def parent_from_links(txn: wire.Transaction) -> str | None:
    """The transaction a follow-on acts on, from ``_links.parentTransaction.href`` (the sandbox sends it; real
    TSS has only the unordered ``relatedTransactions``, so a real document usually leaves this unknown)."""
    link = (txn.links or {}).get("parentTransaction")
    href = link.get("href") if isinstance(link, dict) else None
    if not isinstance(href, str) or not href.strip("/"):
        return None
    return href.rstrip("/").rsplit("/", 1)[-1] or None


def parse_money(amount: Any, currency: Any, amount_path: str, currency_path: str, issues: _Issues) -> Money | None:
    """Money from wire text, reporting an unknown currency and an inexact amount at their own paths."""
    if not isinstance(currency, str) or not currency:
        issues.add(currency_path, "missing currency")
        return None
    try:
        currency_exponent(currency.upper())
    except MoneyError as exc:
        issues.add(currency_path, str(exc))
        return None
    if not isinstance(amount, str) or not amount.strip():
        issues.add(amount_path, "missing amount (a decimal string)")
        return None
    try:
        return Money.of(amount, currency)
    except (ValidationError, MoneyError) as exc:
        reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        issues.add(amount_path, reason.removeprefix("Value error, "))
        return None


# Follow-ons report their amount in a block of their own: kind → (model attribute, amount attribute, wire names).
_OWN_AMOUNTS = {
    _K.REFUND: ("refund_amount_details", "refund_amount", "refundAmountDetails", "refundAmount"),
    _K.REVERSAL: ("reversal_amount_details", "reversed_amount", "reversalAmountDetails", "reversedAmount"),
    _K.VOID: ("void_amount_details", "void_amount", "voidAmountDetails", "voidAmount"),
}
_ORDER_AMOUNTS = "orderInformation.amountDetails"


def _amount(txn: wire.Transaction, kind: PaymentKind, fallback: Money | None, issues: _Issues) -> Money | None:
    details = txn.order_information.amount_details if txn.order_information else None
    order_currency = details.currency if details else None
    own = _OWN_AMOUNTS.get(kind)
    block = getattr(txn, own[0]) if own else None
    if own is not None and block is not None:
        amount, currency = getattr(block, own[1]), block.currency or order_currency
        amount_path, currency_path = f"{own[2]}.{own[3]}", f"{own[2]}.currency"
    elif details is not None and (details.total_amount is not None or details.authorized_amount is not None):
        # A partial approval is worth what was approved; otherwise the total asked for (an approval's
        # response carries only the authorised amount, which then equals it).
        authorized = details.authorized_amount is not None and (
            txn.status == "PARTIAL_AUTHORIZED" or details.total_amount is None
        )
        amount = details.authorized_amount if authorized else details.total_amount
        amount_path = f"{_ORDER_AMOUNTS}.{'authorizedAmount' if authorized else 'totalAmount'}"
        currency, currency_path = details.currency, f"{_ORDER_AMOUNTS}.currency"
    elif fallback is not None:
        return fallback
    else:
        issues.add(f"{_ORDER_AMOUNTS}.totalAmount", "missing amount")
        return None
    if currency is None and fallback is not None:
        currency = fallback.currency
    return parse_money(amount, currency, amount_path, currency_path, issues)


def _token(txn: wire.Transaction, issues: _Issues) -> PaymentToken | None:
    pay, tok = txn.payment_information, txn.token_information
    token_id, kind = None, None
    for attr, name in (("payment_instrument", "payment_instrument"), ("customer", "customer"),
                       ("instrument_identifier", "instrument_identifier")):
        ref = (getattr(pay, attr) if pay else None) or (getattr(tok, attr) if tok else None)
        if ref is not None and ref.id:
            token_id, kind = ref.id, name
            break
    if token_id is None or kind is None:
        return None
    card_path = "paymentInformation.card"
    card = pay.card if pay and pay.card else None
    if card is None and pay and pay.tokenized_card:
        card, card_path = pay.tokenized_card, "paymentInformation.tokenizedCard"
    type_code = card.type if card else None
    if type_code is None and txn.payment_account_information and txn.payment_account_information.card:
        type_code = txn.payment_account_information.card.type
    last4 = card.suffix if card else None
    if last4 is not None and (len(last4) != 4 or not last4.isdigit()):
        issues.add(f"{card_path}.suffix", "must be the last four digits of the card")
        last4 = None
    expiry = None
    if card is not None:
        try:
            expiry = expiry_date(card.expiration_month, card.expiration_year)
        except ValueError as exc:
            issues.add(f"{card_path}.expirationMonth", str(exc))
    return PaymentToken(gateway=GATEWAY, token_id=token_id, kind=kind, brand=brand_for_type(type_code),
                        last4=last4, expiry=expiry)


def _party(txn: wire.Transaction, token: PaymentToken | None) -> Party | None:
    bill = txn.order_information.bill_to if txn.order_information else None
    if bill is None:
        return None
    address = None
    if any((bill.address1, bill.address2, bill.locality, bill.administrative_area, bill.postal_code, bill.country)):
        address = Address(line1=bill.address1, line2=bill.address2, city=bill.locality,
                          region=bill.administrative_area, postal_code=bill.postal_code, country=bill.country)
    return Party(
        name=bill.company,
        first_name=bill.first_name,
        last_name=bill.last_name,
        email=bill.email,
        phone=bill.phone_number,
        address=address,
        tokens=(token,) if token else (),
    )


def _line_items(txn: wire.Transaction, currency: str | None, issues: _Issues) -> tuple[LineItem, ...]:
    items = txn.order_information.line_items if txn.order_information else None
    if not items or currency is None:
        return ()
    result = []
    for index, item in enumerate(items):
        path = f"orderInformation.lineItems[{index}]"
        price = parse_money(item.unit_price, currency, f"{path}.unitPrice", "orderInformation.amountDetails.currency",
                            issues)
        try:
            quantity = Decimal(str(item.quantity)) if item.quantity is not None else Decimal(1)
        except InvalidOperation:
            issues.add(f"{path}.quantity", "not a number")
            continue
        if price is not None:
            result.append(LineItem(sku=item.product_sku, description=item.product_name, quantity=quantity,
                                   unit_price=price))
    return tuple(result)


def _merchant_defined(txn: wire.Transaction, issues: _Issues) -> dict[str, str]:
    fields = txn.merchant_defined_information or ()
    result = {}
    for index, item in enumerate(fields):
        if item.key is None:
            issues.add(f"merchantDefinedInformation[{index}].key", "missing key")
            continue
        result[item.key] = item.value or ""
    return result


def _risk(txn: wire.Transaction, review: bool) -> RiskAssessment | None:
    info = txn.risk_information
    status = txn.status or ""
    reason = txn.error_information.reason if txn.error_information else None
    if info is None and not review and status not in REVIEW_STATUSES | RISK_REJECT_STATUSES:
        return None
    if review or status in REVIEW_STATUSES:
        decision = "review"
    elif status in RISK_REJECT_STATUSES or reason in RISK_REJECT_REASONS:
        decision = "reject"
    else:
        decision = "accept"
    codes: list[str] = []
    app = txn.application_information
    if app and app.reason_code and decision != "accept":
        codes.append(app.reason_code)
    elif reason in RISK_REASON_CODES:
        codes.append(RISK_REASON_CODES[reason])
    score = None
    rules: tuple[str, ...] = ()
    if info is not None:
        if info.score is not None:
            codes.extend(info.score.factor_codes or ())
            text = str(info.score.result) if info.score.result is not None else ""
            score = int(text) if text.isdigit() else None
        for values in (info.info_codes or {}).values():
            codes.extend(values)
        rules = tuple(r.name for r in info.rules or () if r.name)
    unique = tuple(dict.fromkeys(codes))
    return RiskAssessment(decision=decision, reason_codes=unique, score=score, rules=rules,
                          reasons=describe(unique))


def _timestamp(value: str | None, path: str, issues: _Issues) -> datetime | None:
    if value is None:
        return None
    parsed = parse_timestamp(value)
    if parsed is None:
        issues.add(path, f"{value!r} is not an ISO 8601 time")
    return parsed


def parse_timestamp(value: str) -> datetime | None:
    """An ISO 8601 time; one without an offset is UTC (Cybersource's ``eventDate`` omits it)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- canonical → wire ------------------------------------------------------------------------

_TOKEN_FIELDS = {
    "customer": "customer",
    "payment_instrument": "paymentInstrument",
    "instrument_identifier": "instrumentIdentifier",
}


def payment_request(request: AuthorizationRequest) -> wire.PaymentRequest:
    """The POST /pts/v2/payments body for an authorisation (or sale) against a stored token.

    Only tokens travel: there is no field here a card number could ride in.
    """
    issues = _Issues("")
    token = request.token
    if token.gateway != GATEWAY:
        issues.add("token.gateway", f"a {token.gateway!r} token cannot be used with Cybersource")
    field = _TOKEN_FIELDS.get(token.kind)
    if field is None:
        issues.add("token.kind", f"must be one of {', '.join(_TOKEN_FIELDS)}")
    payment_information: dict[str, Any] = {field or "customer": {"id": token.token_id}}
    if token.kind == "instrument_identifier" and token.expiry is not None:
        payment_information["card"] = {"expirationMonth": f"{token.expiry.month:02d}",
                                       "expirationYear": f"{token.expiry.year:04d}"}
        if token.brand in CARD_TYPE_CODES:
            payment_information["card"]["type"] = CARD_TYPE_CODES[token.brand]
    merchant_defined = []
    for key, value in request.merchant_defined.items():
        if not key.isdigit() or not 0 <= int(key) <= 100:
            issues.add(f"merchant_defined.{key}", "Cybersource merchant-defined keys are numbers 0..100")
        merchant_defined.append({"key": key, "value": value})
    line_items = []
    for index, item in enumerate(request.line_items):
        if item.quantity != item.quantity.to_integral_value():
            issues.add(f"line_items[{index}].quantity", "Cybersource quantities are whole numbers")
        if item.unit_price.currency != request.amount.currency:
            issues.add(f"line_items[{index}].unit_price", "currency differs from the payment's")
        line_items.append({"productSku": item.sku, "productName": item.description,
                           "quantity": int(item.quantity), "unitPrice": item.unit_price.format()})
    issues.raise_if_any()
    order: dict[str, Any] = {
        "amountDetails": {"totalAmount": request.amount.format(), "currency": request.amount.currency}
    }
    if request.party is not None:
        order["billTo"] = bill_to(request.party)
    if line_items:
        order["lineItems"] = line_items
    return wire.PaymentRequest.model_validate({
        "clientReferenceInformation": client_reference(request),
        "processingInformation": processing_information(request),
        "paymentInformation": payment_information,
        "orderInformation": order,
        "merchantDefinedInformation": merchant_defined or None,
    })


def client_reference(request: AuthorizationRequest) -> dict[str, str]:
    """``code`` is the merchant's order reference; our idempotency key, when there is one, travels as the
    client's own ``transactionId`` (kept by the gateway and searchable, spec §4.2)."""
    reference = {"code": request.order_reference}
    if request.reference:
        reference["transactionId"] = request.reference
    return reference


def processing_information(request: AuthorizationRequest) -> dict[str, Any]:
    """A renewal is a merchant-initiated charge of a stored credential: ``commerceIndicator: recurring`` and the
    initiator block (spec §4.2), so the issuer sees a subscription, not a card-not-present purchase."""
    if not request.recurring:
        return {"capture": request.capture, "commerceIndicator": "internet"}
    return {
        "capture": request.capture,
        "commerceIndicator": "recurring",
        "authorizationOptions": {"initiator": {"type": "merchant", "credentialStoredOnFile": True,
                                               "storedCredentialUsed": True}},
    }


def bill_to(party: Party) -> dict[str, str]:
    address = party.address or Address()
    values = {
        "firstName": party.first_name,
        "lastName": party.last_name,
        "company": party.name if party.first_name or party.last_name else None,
        "address1": address.line1,
        "address2": address.line2,
        "locality": address.city,
        "administrativeArea": address.region,
        "postalCode": address.postal_code,
        "country": address.country,
        "email": party.email,
        "phoneNumber": party.phone,
    }
    if not party.first_name and not party.last_name and party.name:
        first, _, last = party.name.partition(" ")
        values["firstName"], values["lastName"] = first, last or None
    return {k: v for k, v in values.items() if v}


def amount_details(amount: Money) -> dict[str, str]:
    return {"totalAmount": amount.format(), "currency": amount.currency}
