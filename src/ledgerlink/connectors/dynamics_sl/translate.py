"""Canonical records <-> SL rows, as pure functions.

Free text is truncated to its CHAR length (a name cut at 60 characters is still the name); identifiers
and codes that would change meaning if cut (a SKU, an order reference, an e-mail) are refused with an
``InvalidInput`` naming the field instead. ``CustId`` is derived from the party's match key so two
concurrent creators of one customer collide on SL's primary key instead of making two customers.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ledgerlink.connectors.dynamics_sl import schemas as S
from ledgerlink.connectors.dynamics_sl.settings import DynamicsSLSettings
from ledgerlink.model import (
    Address,
    CashReceipt,
    ExternalRef,
    FieldIssue,
    GLAccount,
    InvalidInput,
    Invoice,
    OrderStatus,
    Party,
    ReceiptKind,
    SalesOrder,
)

SYSTEM = "dynamics_sl"
CUSTID_LENGTH = 15
# Columns a mapping may fill through ``custom_fields`` (User2 holds the idempotency-key digest; SOHeader.User8
# and User10 the payment status, see userfields.py).
ORDER_CUSTOM_FIELDS = frozenset({"User1", "User3", "User4", "User7", "SlsperID", "ShipViaID", "AuthNbr"})
RECEIPT_CUSTOM_FIELDS = frozenset({"User1", "User5", "User6", "SlsperId", "ProjectID", "TaskID", "PmtMethod"})
CHAR_LENGTHS = {"User1": 30, "User3": 30, "User4": 30, "User5": 10, "User6": 10, "User7": 10, "User8": 10,
                "SlsperID": 10, "SlsperId": 10, "ShipViaID": 15, "AuthNbr": 20, "ProjectID": 16, "TaskID": 32,
                "PmtMethod": 1}


# ---- references ------------------------------------------------------------------------------------


def customer_ref(cust_id: str) -> ExternalRef:
    return ExternalRef(system=SYSTEM, kind="customer", id=cust_id)


def order_ref(ord_nbr: str) -> ExternalRef:
    return ExternalRef(system=SYSTEM, kind="salesorder", id=ord_nbr)


def ardoc_ref(doc_type: str, ref_nbr: str) -> ExternalRef:
    return ExternalRef(system=SYSTEM, kind="ardoc", id=f"{doc_type}:{ref_nbr}")


def batch_ref(module: str, bat_nbr: str) -> ExternalRef:
    return ExternalRef(system=SYSTEM, kind="batch", id=f"{module}:{bat_nbr}")


def task_ref(task_nbr: str) -> ExternalRef:
    return ExternalRef(system=SYSTEM, kind="task", id=task_nbr)


REF_FOR_TABLE = {"Customer": "customer", "SOHeader": "salesorder", "ARDoc": "ardoc", "Batch": "batch",
                 "xLLTask": "task"}


def ref_for_key_holder(holder: S.KeyHolder) -> ExternalRef:
    return ExternalRef(system=SYSTEM, kind=REF_FOR_TABLE[holder.Table], id=holder.Id)


def ord_nbr_of(ref: ExternalRef, field: str = "order") -> str:
    if ref.system != SYSTEM or ref.kind != "salesorder":
        raise InvalidInput(FieldIssue(field, f"{ref.key} is not a Dynamics SL sales order"), source="dynamics_sl")
    return ref.id


def ardoc_of(ref: ExternalRef, field: str) -> tuple[str, str]:
    doc_type, _, ref_nbr = ref.id.partition(":")
    if ref.system != SYSTEM or ref.kind != "ardoc" or len(doc_type) != 2 or not ref_nbr:
        raise InvalidInput(FieldIssue(field, f"{ref.key} is not a Dynamics SL AR document (ardoc DT:RefNbr)"),
                           source="dynamics_sl")
    return doc_type, ref_nbr


# ---- small helpers -----------------------------------------------------------------------------------


def cut(value: str | None, length: int) -> str:
    """Free text fitted to ``CHAR(length)``."""
    return (value or "").strip()[:length].rstrip()


def _code(value: str | None, length: int) -> str:
    value = (value or "").strip()
    return value if len(value) <= length else ""


def exact(value: str, length: int, field: str) -> str:
    """An identifier that must fit as is."""
    value = value.strip()
    if len(value) > length:
        raise InvalidInput(FieldIssue(field, f"{len(value)} characters; SL allows {length}"), source="dynamics_sl")
    return value


def sl_date(moment: datetime, settings: DynamicsSLSettings) -> str:
    """The SL date (server time zone, gateway date format) of an instant."""
    return _local(moment, settings.zone).strftime(settings.date_format)


def sl_period(moment: datetime, settings: DynamicsSLSettings) -> str:
    """``YYYYPP`` of an instant, assuming calendar-month fiscal periods (period 1 ends in January)."""
    local = _local(moment, settings.zone)
    return f"{local.year:04d}{local.month:02d}"


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    if moment.tzinfo is None:
        raise InvalidInput(FieldIssue("date", "a timezone-aware datetime is needed to place it in SL's day"),
                           source="dynamics_sl")
    return moment.astimezone(zone)


def _account(account: GLAccount | None, acct: str, sub: str, field: str) -> dict[str, str]:
    if account is None:
        return {}
    values = {acct: exact(account.account, 10, f"{field}.account")}
    if account.sub:
        values[sub] = exact(account.sub, 24, f"{field}.sub")
    return values


def _custom(fields: Mapping[str, str], allowed: frozenset[str], where: str) -> dict[str, str]:
    issues = []
    values = {}
    for name, value in fields.items():
        if name not in allowed:
            issues.append(FieldIssue(f"{where}.{name}", f"not a column a mapping may set (allowed: "
                                     f"{', '.join(sorted(allowed))})"))
        elif len(value) > CHAR_LENGTHS[name]:
            issues.append(FieldIssue(f"{where}.{name}", f"{len(value)} characters; SL allows {CHAR_LENGTHS[name]}"))
        else:
            values[name] = value
    if issues:
        raise InvalidInput(issues, source="dynamics_sl")
    return values


# ---- parties -------------------------------------------------------------------------------------------


def match_key(party: Party) -> str:
    """What identifies a party across systems: its e-mail, else its first external reference."""
    if party.email:
        return f"email:{party.email}"
    external = next((r for r in party.refs if r.system != SYSTEM), None)
    if external is not None:
        return f"ref:{external.key}"
    raise InvalidInput(FieldIssue("party.email", "an e-mail or an external reference is needed to derive a "
                                  "stable CustId"), source="dynamics_sl")


def customer_id(party: Party, prefix: str) -> str:
    """A deterministic ``CustId``: prefix + base32 digest of the match key, 15 characters."""
    if party.id:
        return exact(party.id, CUSTID_LENGTH, "party.id")
    sl = party.ref(SYSTEM)
    if sl is not None:
        return exact(sl.id, CUSTID_LENGTH, "party.refs")
    digest = base64.b32encode(hashlib.sha256(match_key(party).encode()).digest()).decode()
    return prefix + digest[: CUSTID_LENGTH - len(prefix)]


def external_key(party: Party) -> str | None:
    """The party's reference in another system, stored as the customer's idempotency key."""
    external = next((r for r in party.refs if r.system != SYSTEM), None)
    return None if external is None else external.key


def customer_body(party: Party, settings: DynamicsSLSettings) -> dict[str, Any]:
    email = party.email or ""
    if len(email) > 80:
        raise InvalidInput(FieldIssue("party.email", f"{len(email)} characters; SL's EMailAddr holds 80"),
                           source="dynamics_sl")
    name = cut(party.display_name, 60)
    if not name:
        raise InvalidInput(FieldIssue("party.name", "a customer needs a name or an e-mail"), source="dynamics_sl")
    body: dict[str, Any] = {"CustId": customer_id(party, settings.customer_id_prefix), "Name": name,
                            "ClassId": settings.customer_class, "Status": "A"}
    if email:
        body["EMailAddr"] = email
    if party.phone:
        body["Phone"] = cut(party.phone, 30)
    address = party.address
    if address is not None:
        body.update({k: v for k, v in {
            "Addr1": cut(address.line1, 60), "Addr2": cut(address.line2, 60), "City": cut(address.city, 30),
            # State, Zip and Country are codes: a value that does not fit is left out rather than cut.
            "State": _code(address.region, 3), "Zip": _code(address.postal_code, 10),
            "Country": _code(address.country, 3).upper(),
        }.items() if v})
    return body


def party_from_customer(customer: S.Customer, refs: tuple[ExternalRef, ...] = ()) -> Party:
    address = None
    if any((customer.Addr1, customer.City, customer.Zip, customer.Country)):
        address = Address(line1=customer.Addr1 or None, line2=customer.Addr2 or None, city=customer.City or None,
                          region=customer.State or None, postal_code=customer.Zip or None,
                          country=customer.Country or None)
    own = customer_ref(customer.CustId)
    return Party(id=customer.CustId, name=customer.Name or None, email=customer.EMailAddr or None,
                 phone=customer.Phone or None, address=address,
                 refs=(own, *(r for r in refs if r != own)))


# ---- documents -------------------------------------------------------------------------------------------


def _amount(value: Decimal, places: int, field: str) -> str:
    if value != value.quantize(Decimal(1).scaleb(-places)):
        raise InvalidInput(FieldIssue(field, f"{value} has more than {places} decimal places"), source="dynamics_sl")
    return f"{value:.{places}f}"


def sales_order_body(order: SalesOrder, settings: DynamicsSLSettings) -> dict[str, Any]:
    if order.status is OrderStatus.CANCELLED:
        raise InvalidInput(FieldIssue("order.status", "a new sales order cannot start cancelled"),
                           source="dynamics_sl")
    lines = []
    for i, line in enumerate(order.lines):
        body = {
            "InvtID": exact(line.sku or settings.default_invtid, 30, f"order.lines[{i}].sku"),
            "Descr": cut(line.description, 60),
            "QtyOrd": _amount(line.quantity, 2, f"order.lines[{i}].quantity"),
            "SlsPrice": line.unit_price.format(),
            **_account(line.revenue_account, "SlsAcct", "SlsSub", f"order.lines[{i}].revenue_account"),
        }
        lines.append({k: v for k, v in body.items() if v != ""})
    body = {
        "CustID": exact(order.customer_id, CUSTID_LENGTH, "order.customer_id"),
        "SOTypeID": settings.order_type,
        "OrdDate": sl_date(order.order_date, settings),
        "CuryID": order.currency,
        "Lines": lines,
        **_custom(order.custom_fields, ORDER_CUSTOM_FIELDS, "order.custom_fields"),
    }
    if order.order_reference:
        body["CustOrdNbr"] = exact(order.order_reference, 25, "order.order_reference")
    if order.status is OrderStatus.ON_HOLD:
        body["AdminHold"] = 1
        body["Note"] = order.hold_reason or "On hold"
    return body


def invoice_body(invoice: Invoice, settings: DynamicsSLSettings) -> tuple[str, dict[str, Any]]:
    """The order to invoice and the invoice-the-order request (its amount must equal the order total)."""
    body: dict[str, Any] = {"CuryOrigDocAmt": invoice.amount.format(),
                            "DocDate": sl_date(invoice.invoice_date, settings)}
    if invoice.description:
        body["DocDesc"] = cut(invoice.description, 30)
    return ord_nbr_of(invoice.order, "invoice.order"), body


def receipt_body(receipt: CashReceipt, settings: DynamicsSLSettings) -> dict[str, Any]:
    """A ``PA`` applied to the invoice, or a ``PP`` against the order; cash lands on ``deposit_account``."""
    amount = receipt.amount.format()
    body: dict[str, Any] = {
        "CustId": exact(receipt.customer_id, CUSTID_LENGTH, "receipt.customer_id"),
        "CuryOrigDocAmt": amount,
        "CuryId": receipt.amount.currency,
        "DocDate": sl_date(receipt.received_at, settings),
        "PerPost": sl_period(receipt.received_at, settings),
        "DocDesc": cut(receipt.description or f"{receipt.gateway_ref.system} {receipt.gateway_ref.id}", 30),
        "User1": cut(receipt.gateway_ref.id, 30),
        **_account(receipt.deposit_account, "BankAcct", "BankSub", "receipt.deposit_account"),
        **_custom(receipt.custom_fields, RECEIPT_CUSTOM_FIELDS, "receipt.custom_fields"),
    }
    if receipt.kind is ReceiptKind.APPLIED:
        assert receipt.apply_to is not None  # the model guarantees it
        doc_type, ref_nbr = ardoc_of(receipt.apply_to, "receipt.apply_to")
        body["DocType"] = "PA"
        body["Applications"] = [{"AdjdDocType": doc_type, "AdjdRefNbr": ref_nbr, "CuryAdjgAmt": amount}]
    else:
        body["DocType"] = "PP"
        if receipt.order is not None:
            body["OrdNbr"] = ord_nbr_of(receipt.order, "receipt.order")
    return body


def ref_for_document(doc: S.ARDoc) -> ExternalRef:
    return ardoc_ref(doc.DocType, doc.RefNbr)
