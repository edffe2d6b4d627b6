"""The wire shapes of a stored transaction: PTS 201 answers (spec §4.3) and TSS details (§4.8).

Kept apart from the rules in ``payments.py`` so the state machine reads as
rules and these read as documents. Values a real sandbox answers with
(approval code ``888888``, response code ``100``, terminal ``111111``) are copied.

One addition of the sandbox's own: every follow-on (capture, refund, reversal,
void) links the transaction it acts on as ``_links.parentTransaction``, in its
201 answer and in TSS details, so a refund read back (or pushed in a
full-detail webhook) says which capture or sale it refunded. Real TSS only has
the unordered ``relatedTransactions`` list.
"""

from __future__ import annotations

from typing import Any

from ledgerlink.connectors.cybersource.sandbox.store import Txn
from ledgerlink.connectors.cybersource.sandbox.wire import format_amount

NETWORK_TRANSACTION_ID = "123456789619999"
APPROVED_STATUSES = frozenset({"AUTHORIZED", "PARTIAL_AUTHORIZED", "AUTHORIZED_PENDING_REVIEW",
                               "AUTHORIZED_RISK_DECLINED"})
# ISO 8583 response codes a processor gives for the decline reasons the sandbox triggers.
DECLINE_RESPONSE_CODES = {"INSUFFICIENT_FUND": "51", "STOLEN_LOST_CARD": "43", "EXPIRED_CARD": "54"}
_APPLICATIONS = {
    "auth": ("ics_auth",),
    "sale": ("ics_auth", "ics_bill"),
    "capture": ("ics_bill",),
    "refund": ("ics_credit",),
    "reversal": ("ics_auth_reversal",),
    "void": ("ics_void",),
}


def _money(txn: Txn, value: Any) -> str:
    return format_amount(value, txn.currency)


def _reference(txn: Txn) -> dict[str, Any]:
    reference: dict[str, Any] = {"code": txn.code} if txn.code else {}
    if txn.client_transaction_id:
        reference["transactionId"] = txn.client_transaction_id
    return reference


def _parent_link(txn: Txn) -> dict[str, Any]:
    return {"href": f"/tss/v2/transactions/{txn.parent_id}", "method": "GET"}


def _processor(txn: Txn) -> dict[str, Any]:
    if txn.error is not None and txn.status == "DECLINED":
        return {"transactionId": NETWORK_TRANSACTION_ID,
                "responseCode": DECLINE_RESPONSE_CODES.get(txn.error[0], "05")}
    return {"approvalCode": "888888", "networkTransactionId": NETWORK_TRANSACTION_ID,
            "transactionId": NETWORK_TRANSACTION_ID, "responseCode": "100",
            "avs": {"code": "X", "codeRaw": "I1"}, "cardVerification": {"resultCode": "M"}}


def _token_refs(txn: Txn) -> dict[str, Any]:
    tokens = txn.tokens
    if tokens is None:
        return {}
    refs: dict[str, Any] = {}
    if tokens.customer_id:
        refs["customer"] = {"id": tokens.customer_id}
    if tokens.payment_instrument_id:
        refs["paymentInstrument"] = {"id": tokens.payment_instrument_id}
    if tokens.instrument_identifier_id:
        refs["instrumentIdentifier"] = {"id": tokens.instrument_identifier_id, "state": "ACTIVE"}
    return refs


def payment_created(txn: Txn, token_information: dict[str, Any] | None = None) -> dict[str, Any]:
    """201 of POST /pts/v2/payments, for approvals and declines alike."""
    base = f"/pts/v2/payments/{txn.id}"
    links: dict[str, Any] = {"self": {"method": "GET", "href": base}}
    approved = txn.status in APPROVED_STATUSES
    if approved and not txn.captured:  # an auth, or a sale held for review: still to capture or reverse
        links["authReversal"] = {"method": "POST", "href": f"{base}/reversals"}
        links["capture"] = {"method": "POST", "href": f"{base}/captures"}
    elif approved:
        links["void"] = {"method": "POST", "href": f"{base}/voids"}
        links["refund"] = {"method": "POST", "href": f"{base}/refunds"}
    amounts: dict[str, str] = {"currency": txn.currency}
    if approved:
        amounts["authorizedAmount"] = _money(txn, txn.authorized)
    if txn.status == "PARTIAL_AUTHORIZED" or not approved:
        amounts["totalAmount"] = _money(txn, txn.amount)
    body: dict[str, Any] = {
        "_links": links,
        "clientReferenceInformation": _reference(txn),
        "id": txn.id,
        "orderInformation": {"amountDetails": amounts},
        "processorInformation": _processor(txn),
        "reconciliationId": txn.reconciliation_id,
        "status": txn.status,
        "submitTimeUtc": txn.submitted,
    }
    if txn.card is not None:
        card = {"type": txn.card.type, "suffix": txn.card.last4}
        body["paymentAccountInformation"] = {"card": {"type": txn.card.type}}
        body["paymentInformation"] = {"tokenizedCard": {"type": txn.card.type}, "card": card, **_token_refs(txn)}
        body["pointOfSaleInformation"] = {"terminalId": "111111"}
    if token_information:
        body["tokenInformation"] = token_information
    if txn.risk is not None:
        body["riskInformation"] = txn.risk
    if txn.error is not None:
        body["errorInformation"] = {"reason": txn.error[0], "message": txn.error[1]}
    return body


def follow_on_created(txn: Txn, parent: Txn) -> dict[str, Any]:
    """201 of a capture, refund, reversal or void (each has its own amount block)."""
    amount = _money(txn, txn.amount)
    body: dict[str, Any] = {
        "id": txn.id,
        "clientReferenceInformation": _reference(txn),
        "reconciliationId": txn.reconciliation_id,
        "status": txn.status,
        "submitTimeUtc": txn.submitted,
    }
    if txn.error is not None:
        body["errorInformation"] = {"reason": txn.error[0], "message": txn.error[1]}
    if txn.kind == "capture":
        base = f"/pts/v2/captures/{txn.id}"
        body["_links"] = {"self": {"method": "GET", "href": base},
                          "void": {"method": "POST", "href": f"{base}/voids"},
                          "refund": {"method": "POST", "href": f"{base}/refunds"}}
        body["orderInformation"] = {"amountDetails": {"totalAmount": amount, "currency": txn.currency}}
    elif txn.kind == "refund":
        base = f"/pts/v2/refunds/{txn.id}"
        declined = txn.status == "DECLINED"
        body["_links"] = {"self": {"method": "GET", "href": base}}
        if not declined:
            body["_links"]["void"] = {"method": "POST", "href": f"{base}/voids"}
        body["refundAmountDetails"] = {"refundAmount": amount, "currency": txn.currency}
        body["processorInformation"] = {"responseCode": "05" if declined else "100"}
        body["orderInformation"] = {"amountDetails": {"currency": txn.currency}}
    elif txn.kind == "reversal":
        body["_links"] = {"self": {"method": "GET", "href": f"/pts/v2/reversals/{txn.id}"}}
        body["reversalAmountDetails"] = {"reversedAmount": amount, "currency": txn.currency,
                                         "originalTransactionAmount": _money(txn, parent.amount)}
        body["processorInformation"] = {"responseCode": "100"}
        body["authorizationInformation"] = {"approvalCode": "888888", "reasonCode": "100",
                                            "reversalSubmitted": "Y"}
    else:  # void
        body["_links"] = {"self": {"method": "GET", "href": f"/pts/v2/voids/{txn.id}"}}
        body["voidAmountDetails"] = {"voidAmount": amount, "currency": txn.currency,
                                     "originalTransactionAmount": _money(txn, parent.amount)}
    body["_links"]["parentTransaction"] = _parent_link(txn)
    return body


def transaction_details(txn: Txn) -> dict[str, Any]:
    """GET /tss/v2/transactions/{id}; also the ``payload.data`` of a full-detail notification."""
    approved = txn.error is None or txn.status in APPROVED_STATUSES
    r_code = "1" if approved else "0"
    r_flag = "SOK" if approved else "DECLINE"
    apps = [{"name": name, "status": "TRANSMITTED" if txn.settled else "PENDING", "reasonCode": txn.reason_code,
             "rCode": r_code, "rFlag": r_flag, "reconciliationId": txn.reconciliation_id,
             "rMessage": "Request was processed successfully." if approved else (txn.error or ("", ""))[1]}
            for name in _APPLICATIONS[txn.kind]]
    if txn.kind == "sale" and txn.captured == 0:
        apps = apps[:1]  # a sale held for review or declined was never captured
    amounts: dict[str, str] = {"totalAmount": _money(txn, txn.amount), "currency": txn.currency}
    if txn.kind in ("auth", "sale") and txn.authorized:
        amounts["authorizedAmount"] = _money(txn, txn.authorized)
    order: dict[str, Any] = {"amountDetails": amounts}
    if txn.bill_to:
        order["billTo"] = txn.bill_to
    if txn.line_items:
        order["lineItems"] = txn.line_items
    details: dict[str, Any] = {
        "id": txn.id,
        "rootId": txn.root_id,
        "reconciliationId": txn.reconciliation_id,
        "merchantId": txn.merchant_id,
        "submitTimeUTC": txn.submitted,
        "status": txn.status,
        "applicationInformation": {"status": txn.status, "reasonCode": txn.reason_code, "rCode": r_code,
                                   "rFlag": r_flag, "applications": apps},
        "clientReferenceInformation": _reference(txn),
        "orderInformation": order,
        "processorInformation": _processor(txn),
        "_links": {"self": {"href": f"/tss/v2/transactions/{txn.id}", "method": "GET"}},
    }
    related = ([txn.parent_id] if txn.parent_id else []) + txn.children
    if related:
        details["_links"]["relatedTransactions"] = [
            {"href": f"/tss/v2/transactions/{i}", "method": "GET"} for i in related
        ]
    if txn.parent_id:
        details["_links"]["parentTransaction"] = _parent_link(txn)
    if txn.card is not None:
        card = {"suffix": txn.card.last4, "type": txn.card.type}
        if txn.card.expiration_month:
            card["expirationMonth"] = txn.card.expiration_month
            card["expirationYear"] = txn.card.expiration_year or ""
        payment: dict[str, Any] = {"card": card}
        refs = _token_refs(txn)
        if "customer" in refs:
            payment["customer"] = refs["customer"]
        details["paymentInformation"] = payment
        if refs:
            details["tokenInformation"] = refs
    if txn.merchant_defined:
        details["merchantDefinedInformation"] = txn.merchant_defined
    if txn.risk is not None:
        details["riskInformation"] = txn.risk
    if txn.error is not None:
        details["errorInformation"] = {"reason": txn.error[0], "message": txn.error[1]}
    return details


def id_only(txn: Txn) -> dict[str, Any]:
    """The minimal notification payload: the flow fetches the rest through TSS."""
    return {"id": txn.id, "_links": {"self": {"href": f"/tss/v2/transactions/{txn.id}", "method": "GET"}}}
