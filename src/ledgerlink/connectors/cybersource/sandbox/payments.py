"""The Payments API's rules (spec §4): authorise, capture, refund, reverse, void, and what each may follow.

Every operation validates the whole request first and only then writes, so a
refused request leaves nothing behind (not even a token for its card). Each
accepted change is published as a notification event (spec §6.2).

Outcomes come from the amount: the last two digits of the amount in minor
units pick an entry of ``outcome_by_cents`` ("STATUS[:REASON]"); anything else
is approved. Refunds have their own table, ``refund_outcome_by_cents`` (empty by
default: every refund within the captured amount is accepted). Follow-ons are looked up by id whatever path they arrive on
(``/payments/{id}/voids`` voids a capture id too), which is lenient where the
real service's behaviour is not documented.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal
from typing import Any

from ledgerlink.connectors.cybersource.sandbox.declines import RENEWAL_REASONS, InstrumentOutcomes
from ledgerlink.connectors.cybersource.sandbox.store import (
    CardInfo,
    InstrumentIdentifier,
    Store,
    Tokens,
    Txn,
)
from ledgerlink.connectors.cybersource.sandbox.tms import TokenVault, bill_to_of
from ledgerlink.connectors.cybersource.sandbox.views import (
    follow_on_created,
    payment_created,
    transaction_details,
)
from ledgerlink.connectors.cybersource.sandbox.wire import Reader, minor_units, not_found, pts_error
from ledgerlink.model import currency_exponent

Publish = Callable[[str, str, Txn], None]  # (event type, product id, transaction)

CARD = "cardProcessing"
RISK = "decisionManager"

# reason → (legacy reason code, message) for the outcomes the sandbox can produce.
REASONS: dict[str, tuple[str, str]] = {
    "INSUFFICIENT_FUND": ("204", "Decline - Insufficient funds in the account."),
    "STOLEN_LOST_CARD": ("205", "Decline - Stolen or lost card."),
    "EXPIRED_CARD": ("202", "Decline - Expired card. You might also receive this if the expiration date you "
                            "provided does not match the date the issuing bank has on file."),
    "DECISION_PROFILE_REJECT": ("481", "Decision Profile Reject"),
    "DECISION_PROFILE_REVIEW": ("480", "Decision Profile Review"),
    "SCORE_EXCEEDS_THRESHOLD": ("400", "Score exceeds threshold"),
    "PROCESSOR_DECLINED": ("233", "Decline - General decline by the processor."),
    **RENEWAL_REASONS,
}
_REVIEW = frozenset({"AUTHORIZED_PENDING_REVIEW", "PENDING_REVIEW"})
_RISK_RULES = {
    "review": ("Velocity - 3 orders from one card in 1 hour", "REVIEW", "87",
               {"velocity": ["VEL-CC", "VEL-ADDR"], "address": ["COR-BA"]}),
    "reject": ("Negative list - email", "REJECT", "95", {"customerList": ["NEG-EM"], "suspicious": ["RISK-TB"]}),
}


def risk_information(decision: str) -> dict[str, Any]:
    rule, verdict, score, info_codes = _RISK_RULES[decision]
    return {
        "profile": {"name": "Standard profile", "selectorRule": "Default Active Profile", "decision": verdict},
        "rules": [{"name": rule, "decision": verdict}],
        "infoCodes": info_codes,
        "score": {"result": score, "factorCodes": ["V", "B"], "modelUsed": "default"},
        "casePriority": 3,
    }


class Payments:
    def __init__(self, store: Store, vault: TokenVault, outcomes: dict[str, str], rng: random.Random,
                 publish: Publish, refund_outcomes: dict[str, str] | None = None) -> None:
        self._store = store
        self._vault = vault
        self._outcomes = outcomes
        self._refund_outcomes = refund_outcomes or {}
        self._rng = rng
        self._publish = publish
        self.instrument_outcomes = InstrumentOutcomes()  # declines by card (renewals), see declines.py

    # --- helpers ----------------------------------------------------------------------------

    def _reconciliation_id(self) -> str:
        return "".join(self._rng.choices("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ", k=16))

    def _get(self, transaction_id: str, merchant_id: str) -> Txn:
        txn = self._store.transactions.get(transaction_id)
        if txn is None or txn.merchant_id != merchant_id:
            raise not_found("pts")
        return txn

    def _outcome(self, amount: Decimal, currency: str, table: dict[str, str] | None = None,
                 default: str = "AUTHORIZED") -> tuple[str, str | None]:
        outcomes = self._outcomes if table is None else table
        outcome = outcomes.get(f"{minor_units(amount, currency) % 100:02d}", default)
        status, _, reason = outcome.partition(":")
        return status, reason or None

    def _instrument(self, reader: Reader) -> tuple[CardInfo, Tokens, dict[str, str], InstrumentIdentifier | None] | None:
        """The card a payment uses, from a raw card (tokenised, not kept) or from TMS tokens."""
        number = reader.get("paymentInformation.card.number")
        month = reader.text("paymentInformation.card.expirationMonth")
        year = reader.text("paymentInformation.card.expirationYear")
        if number is not None:
            if not isinstance(number, str):
                reader.invalid.append("paymentInformation.card.number")
                return None
            for path, value in (("expirationMonth", month), ("expirationYear", year)):
                if value is None:
                    reader.missing.append(f"paymentInformation.card.{path}")
            identifier = self._vault.identify(number, card_type=reader.text("paymentInformation.card.type"))
            card = CardInfo(identifier.card_type, identifier.last4, month, year)
            return card, Tokens(instrument_identifier_id=identifier.id), {}, identifier
        instrument_id = reader.text("paymentInformation.paymentInstrument.id")
        customer_id = reader.text("paymentInformation.customer.id")
        identifier_id = reader.text("paymentInformation.instrumentIdentifier.id")
        instrument = None
        if instrument_id:
            instrument = self._store.payment_instruments.get(instrument_id)
            if instrument is None or (customer_id and instrument.customer_id != customer_id):
                reader.invalid.append("paymentInformation.paymentInstrument.id")
                return None
        elif customer_id:
            customer = self._store.customers.get(customer_id)
            instrument = self._store.payment_instruments.get(customer.default_payment_instrument_id or "") \
                if customer else None
            if instrument is None:
                reader.invalid.append("paymentInformation.customer.id")
                return None
        if instrument is not None:
            card = CardInfo(instrument.card.type, instrument.card.last4, month or instrument.card.expiration_month,
                            year or instrument.card.expiration_year)
            tokens = Tokens(instrument.customer_id, instrument.id, instrument.instrument_identifier_id)
            return card, tokens, instrument.bill_to, None
        if identifier_id:
            known = self._store.instrument_identifiers.get(identifier_id)
            if known is None:
                reader.invalid.append("paymentInformation.instrumentIdentifier.id")
                return None
            if month is None or year is None:
                reader.missing.append("paymentInformation.card.expirationMonth")
            return CardInfo(known.card_type, known.last4, month, year), Tokens(instrument_identifier_id=known.id), {}, None
        reader.missing.append("paymentInformation.card.number")
        return None

    @staticmethod
    def _merchant_defined(reader: Reader) -> list[dict[str, Any]]:
        fields = reader.get("merchantDefinedInformation")
        if fields is None:
            return []
        if not isinstance(fields, list):
            reader.invalid.append("merchantDefinedInformation")
            return []
        result = []
        for index, item in enumerate(fields):
            key = item.get("key") if isinstance(item, dict) else None
            if not isinstance(key, str) or not key.isdigit() or not 0 <= int(key) <= 100:
                reader.invalid.append(f"merchantDefinedInformation[{index}].key")
                continue
            result.append({"key": key, "value": str(item.get("value", ""))})
        return result

    @staticmethod
    def _line_items(reader: Reader, currency: str | None) -> list[dict[str, Any]]:
        items = reader.get("orderInformation.lineItems")
        if not isinstance(items, list):
            return []
        result = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                reader.invalid.append(f"orderInformation.lineItems[{index}]")
                continue
            sub = Reader(item)
            price = sub.amount("unitPrice", currency, required=False, positive=False)
            reader.invalid.extend(f"orderInformation.lineItems[{index}].{p}" for p in sub.invalid)
            kept = {"productSku": item.get("productSku") or item.get("productSKU"),
                    "productName": item.get("productName"), "quantity": item.get("quantity", 1)}
            if price is not None and currency is not None:
                kept["unitPrice"] = item["unitPrice"]
            result.append({k: v for k, v in kept.items() if v is not None})
        return result

    def _child(self, parent: Txn, kind: str, status: str, amount: Decimal, code: str | None,
               client_transaction_id: str | None = None) -> Txn:
        txn = Txn(
            id=self._store.new_transaction_id(), kind=kind, status=status, amount=amount, currency=parent.currency,
            merchant_id=parent.merchant_id, submitted=self._store.clock.text(),
            reconciliation_id=self._reconciliation_id(), root_id=parent.root_id, parent_id=parent.id,
            code=code or parent.code, client_transaction_id=client_transaction_id, bill_to=parent.bill_to,
            card=parent.card, tokens=parent.tokens, merchant_defined=parent.merchant_defined,
        )
        self._store.add_transaction(txn)
        parent.children.append(txn.id)
        return txn

    def _follow_on_amount(self, doc: dict[str, Any], parent: Txn, amount_path: str,
                          currency_path: str) -> tuple[Decimal, str | None, str | None]:
        reader = Reader(doc)
        currency = reader.currency(currency_path, required=False) or parent.currency
        amount = reader.amount(amount_path, currency)
        code = reader.text("clientReferenceInformation.code")
        client_transaction_id = reader.text("clientReferenceInformation.transactionId")
        reader.refuse_if_any()
        if currency != parent.currency:
            raise pts_error("INVALID_DATA", "Currency differs from the original transaction's",
                            [{"field": currency_path, "reason": "INVALID_DATA"}])
        assert amount is not None
        return amount, code, client_transaction_id

    # --- operations --------------------------------------------------------------------------

    def authorize(self, doc: dict[str, Any], merchant_id: str) -> dict[str, Any]:
        reader = Reader(doc)
        currency = reader.currency("orderInformation.amountDetails.currency")
        amount = reader.amount("orderInformation.amountDetails.totalAmount", currency, positive=False)
        code = reader.text("clientReferenceInformation.code", required=True)
        client_transaction_id = reader.text("clientReferenceInformation.transactionId")
        capture = reader.get("processingInformation.capture")
        if capture is not None and not isinstance(capture, bool):
            reader.invalid.append("processingInformation.capture")
        instrument = self._instrument(reader)
        merchant_defined = self._merchant_defined(reader)
        line_items = self._line_items(reader, currency)
        reader.refuse_if_any()
        assert amount is not None and currency is not None and instrument is not None
        card, tokens, token_bill_to, new_identifier = instrument

        token_information = None
        if new_identifier is not None:
            is_new = self._vault.save_identifier(new_identifier, merchant_id)
            token_information = self._create_tokens(doc, reader, new_identifier, card, is_new, merchant_id, tokens)

        status, reason = self.instrument_outcomes.outcome(tokens, card, self._store.clock.today()) \
            or self._outcome(amount, currency)
        sale = capture is True
        txn = Txn(
            id=self._store.new_transaction_id(), kind="sale" if sale else "auth", status=status, amount=amount,
            currency=currency, merchant_id=merchant_id, submitted=self._store.clock.text(),
            reconciliation_id=self._reconciliation_id(), root_id="", code=code,
            client_transaction_id=client_transaction_id,
            bill_to=bill_to_of(reader.get("orderInformation.billTo")) or dict(token_bill_to) or None,
            card=card, tokens=tokens, merchant_defined=merchant_defined, line_items=line_items,
        )
        txn.root_id = txn.id
        if reason is not None:
            txn.reason_code, message = REASONS.get(reason, ("203", "Decline - General decline of the card."))
            txn.error = (reason, message)
        if status in ("AUTHORIZED", "AUTHORIZED_PENDING_REVIEW", "AUTHORIZED_RISK_DECLINED"):
            txn.authorized = amount
        elif status == "PARTIAL_AUTHORIZED":
            txn.authorized = (amount / 2).quantize(Decimal(1).scaleb(-currency_exponent(currency)), rounding=ROUND_DOWN)
            txn.reason_code = "110"
        if sale and status in ("AUTHORIZED", "PARTIAL_AUTHORIZED"):
            txn.captured = txn.authorized
        if status in _REVIEW:
            txn.risk = risk_information("review")
        elif status == "AUTHORIZED_RISK_DECLINED":
            txn.risk = risk_information("reject")
        self._store.add_transaction(txn)

        if status in _REVIEW:
            self._publish("payments.payments.review", CARD, txn)
            self._publish("risk.profile.decision.review", RISK, txn)
        elif status in ("DECLINED", "AUTHORIZED_RISK_DECLINED"):
            self._publish("payments.payments.reject", CARD, txn)
            if status == "AUTHORIZED_RISK_DECLINED":
                self._publish("risk.profile.decision.reject", RISK, txn)
        elif status == "PARTIAL_AUTHORIZED":
            self._publish("payments.payments.partial.approval", CARD, txn)
        else:
            self._publish("payments.payments.accept", CARD, txn)
        return payment_created(txn, token_information)

    def _create_tokens(self, doc: dict[str, Any], reader: Reader, identifier: InstrumentIdentifier, card: CardInfo,
                       is_new: bool, merchant_id: str, tokens: Tokens) -> dict[str, Any] | None:
        """``actionList: [TOKEN_CREATE]``: keep the card as TMS tokens and say which were made."""
        actions = reader.get("processingInformation.actionList") or []
        if "TOKEN_CREATE" not in actions:
            return None
        kinds = reader.get("processingInformation.actionTokenTypes") or ["customer", "paymentInstrument"]
        info: dict[str, Any] = {"instrumentidentifierNew": is_new,
                                "instrumentIdentifier": {"id": identifier.id, "state": "ACTIVE"}}
        customer = self._vault.create_customer(merchant_id, {"buyerInformation": doc.get("buyerInformation") or {}}) \
            if "customer" in kinds else None
        if "paymentInstrument" in kinds or customer is not None:
            instrument = self._vault.create_instrument(
                customer, identifier, card, bill_to_of(reader.get("orderInformation.billTo")), merchant_id,
                default=True,
            )
            info["paymentInstrument"] = {"id": instrument.id}
            tokens.payment_instrument_id = instrument.id
        if customer is not None:
            info["customer"] = {"id": customer.id}
            tokens.customer_id = customer.id
        return info

    def capture(self, doc: dict[str, Any], merchant_id: str, payment_id: str) -> dict[str, Any]:
        parent = self._get(payment_id, merchant_id)
        amount, code, client_id = self._follow_on_amount(doc, parent, "orderInformation.amountDetails.totalAmount",
                                                         "orderInformation.amountDetails.currency")
        if parent.kind not in ("auth", "sale"):
            raise pts_error("MISSING_AUTH", "There is no authorization with this id to capture")
        if parent.status == "REVERSED":
            raise pts_error("AUTH_ALREADY_REVERSED", "The authorization has been reversed")
        if parent.status == "VOIDED":
            raise pts_error("TRANSACTION_ALREADY_REVERSED_OR_SETTLED", "The transaction has been voided")
        if parent.authorized == 0:
            raise pts_error("MISSING_AUTH", "The authorization was not approved")
        if parent.captured + amount > parent.authorized:
            raise pts_error("EXCEEDS_AUTH_AMOUNT", "The capture amount exceeds the authorized amount remaining",
                            [{"field": "orderInformation.amountDetails.totalAmount", "reason": "INVALID_DATA"}])
        parent.captured += amount
        txn = self._child(parent, "capture", "PENDING", amount, code, client_id)
        self._publish("payments.captures.accept", CARD, txn)
        return follow_on_created(txn, parent)

    def refund(self, doc: dict[str, Any], merchant_id: str, target_id: str) -> dict[str, Any]:
        target = self._get(target_id, merchant_id)
        amount, code, client_id = self._follow_on_amount(doc, target, "orderInformation.amountDetails.totalAmount",
                                                         "orderInformation.amountDetails.currency")
        if target.kind == "auth" and target.captured > 0:
            raise pts_error("NOT_SUPPORTED", "This authorization was captured separately: refund the capture "
                                             "(POST /pts/v2/captures/{id}/refunds)")
        if target.status == "VOIDED":
            raise pts_error("CAPTURE_ALREADY_VOIDED", "The capture has been voided")
        captured = target.amount if target.kind == "capture" else (target.captured if target.kind == "sale" else 0)
        if not captured:
            raise pts_error("NOT_SUPPORTED", "Nothing has been captured on this transaction to refund")
        if target.refunded + amount > captured:
            raise pts_error("INVALID_AMOUNT", "The refund exceeds the captured amount not yet refunded",
                            [{"field": "orderInformation.amountDetails.totalAmount", "reason": "INVALID_DATA"}])
        status, reason = self._outcome(amount, target.currency, self._refund_outcomes, "PENDING")
        if status == "DECLINED":
            txn = self._child(target, "refund", "DECLINED", amount, code, client_id)
            txn.reason_code, message = REASONS.get(reason or "", REASONS["PROCESSOR_DECLINED"])
            txn.error = (reason or "PROCESSOR_DECLINED", message)
            self._publish("payments.refunds.reject", CARD, txn)
            return follow_on_created(txn, target)
        target.refunded += amount
        txn = self._child(target, "refund", "PENDING", amount, code, client_id)
        self._publish("payments.refunds.accept", CARD, txn)
        return follow_on_created(txn, target)

    def reverse(self, doc: dict[str, Any], merchant_id: str, payment_id: str) -> dict[str, Any]:
        target = self._get(payment_id, merchant_id)
        amount, code, client_id = self._follow_on_amount(doc, target,
                                                         "reversalInformation.amountDetails.totalAmount",
                                                         "reversalInformation.amountDetails.currency")
        if target.kind != "auth":
            raise pts_error("MISSING_AUTH", "Only an authorization that has not been captured can be reversed")
        if target.status == "REVERSED":
            raise pts_error("AUTH_ALREADY_REVERSED", "The authorization has already been reversed")
        if target.authorized == 0:
            raise pts_error("MISSING_AUTH", "The authorization was not approved")
        uncaptured = target.authorized - target.captured
        if target.captured > 0 and amount > uncaptured:
            # After a partial capture only the uncaptured rest may be reversed (a partial authorization reversal).
            raise pts_error("TRANSACTION_ALREADY_SETTLED", f"The authorization has been captured; "
                                                           f"{uncaptured} remains to reverse")
        if amount > uncaptured:
            raise pts_error("INVALID_AMOUNT", "The reversal exceeds the authorized amount",
                            [{"field": "reversalInformation.amountDetails.totalAmount", "reason": "INVALID_DATA"}])
        target.authorized -= amount
        if target.authorized == 0:
            target.status = "REVERSED"
        txn = self._child(target, "reversal", "REVERSED", amount, code, client_id)
        self._publish("payments.reversals.accept", CARD, txn)
        return follow_on_created(txn, target)

    def void(self, doc: dict[str, Any], merchant_id: str, target_id: str) -> dict[str, Any]:
        target = self._get(target_id, merchant_id)
        reader = Reader(doc)
        code = reader.text("clientReferenceInformation.code")
        client_id = reader.text("clientReferenceInformation.transactionId")
        reader.refuse_if_any()
        if target.kind == "auth":
            raise pts_error("NOT_VOIDABLE", "An authorization is not voidable: reverse it")
        if target.kind in ("reversal", "void") or target.status in ("VOIDED", "DECLINED"):
            raise pts_error("NOT_VOIDABLE", "The transaction is not voidable (already voided, or not a "
                                            "capture, sale or refund)")
        if target.settled:
            raise pts_error("NOT_VOIDABLE", "The transaction has been settled: refund it instead")
        if target.refunded > 0:
            raise pts_error("NOT_VOIDABLE", "The transaction has refunds")
        amount = target.captured if target.kind == "sale" else target.amount
        if not amount:
            raise pts_error("NOT_VOIDABLE", "Nothing was captured on this sale: reverse it")
        target.status = "VOIDED"
        parent = self._store.transactions.get(target.parent_id or "")
        if parent is not None and target.kind == "capture":
            parent.captured -= amount
        elif parent is not None and target.kind == "refund":
            parent.refunded -= amount
        txn = self._child(target, "void", "VOIDED", amount, code, client_id)
        self._publish("payments.voids.accept", CARD, txn)
        return follow_on_created(txn, target)

    def details(self, merchant_id: str, transaction_id: str) -> dict[str, Any]:
        return transaction_details(self._get(transaction_id, merchant_id))
