"""Decision Manager case management (spec §8): a reviewer's decision on a payment held for review.

- ``POST /risk/v1/decisions/{id}/actions`` (signed): ``decisionInformation.decision`` ACCEPT or
  REJECT, optional ``comments``, optional ``processingInformation.actionList``: ``[CAPTURE]`` with
  ACCEPT captures what is authorised, ``[REVERSE]`` with REJECT reverses it. 201 with the decision
  and, under ``_embedded``, the capture or reversal made (each in its own 201 shape).
- ``POST /__sandbox/risk/cases/{id}/decision`` (unsigned, test-only): a reviewer deciding in the
  Business Center's case management, ``{"decision", "reviewer", "comments", "settle": true}``.

Either way the transaction leaves review (accepted: ``AUTHORIZED``; rejected: ``REVERSED`` when
reversed, else ``AUTHORIZED_RISK_DECLINED``), and a ``risk.casemanagement.decision.accept|reject``
notification goes out, signed like every other, with ``payload.data``: ``id``,
``clientReferenceInformation``, ``notes[{addedBy, comment, date}]`` and the ``_embedded`` capture or
reversal. The capture or reversal also publishes its own ``payments.*`` event. A case that is not in
review (never was, or already decided) is refused: 400 ``NOT_SUPPORTED`` naming its status; nothing
changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledgerlink.connectors.cybersource.sandbox.store import Store, Txn, utc_now_text
from ledgerlink.connectors.cybersource.sandbox.views import follow_on_created
from ledgerlink.connectors.cybersource.sandbox.wire import (
    Problem,
    Reader,
    control_error,
    json_response,
    not_found,
    pts_error,
    read_object,
)

if TYPE_CHECKING:
    from ledgerlink.connectors.cybersource.sandbox.app import Sandbox
    from ledgerlink.connectors.cybersource.sandbox.notifications import WebhookHub
    from ledgerlink.connectors.cybersource.sandbox.payments import Payments

RISK = "decisionManager"
IN_REVIEW = frozenset({"AUTHORIZED_PENDING_REVIEW", "PENDING_REVIEW"})
ACTIONS = {"ACCEPT": "CAPTURE", "REJECT": "REVERSE"}


class DecisionManager:
    def __init__(self, store: Store, payments: Payments, hub: WebhookHub) -> None:
        self._store = store
        self._payments = payments
        self._hub = hub
        self.decisions: dict[str, dict[str, Any]] = {}  # transaction id -> what was decided

    def action(self, doc: dict[str, Any], merchant_id: str, transaction_id: str) -> dict[str, Any]:
        """The signed case action."""
        reader = Reader(doc)
        decision = reader.text("decisionInformation.decision", required=True)
        comments = reader.text("decisionInformation.comments")
        if decision is not None and decision not in ACTIONS:
            reader.invalid.append("decisionInformation.decision")
        actions = reader.get("processingInformation.actionList")
        if actions is not None and (not isinstance(actions, list) or
                                    any(a not in ACTIONS.values() for a in actions)):
            reader.invalid.append("processingInformation.actionList")
            actions = None
        reader.refuse_if_any()
        assert decision is not None
        if actions and any(a != ACTIONS[decision] for a in actions):
            raise pts_error("INVALID_DATA", f"{decision} goes with actionList [{ACTIONS[decision]}]",
                            [{"field": "processingInformation.actionList", "reason": "INVALID_DATA"}])
        txn = self._payments_txn(transaction_id, merchant_id)
        return self.decide(txn, decision, settle=bool(actions), reviewer=None, comments=comments)

    def decide(self, txn: Txn, decision: str, *, settle: bool, reviewer: str | None,
               comments: str | None) -> dict[str, Any]:
        if txn.status not in IN_REVIEW:
            raise pts_error("NOT_SUPPORTED", f"The transaction has no open Decision Manager case (its status is "
                                             f"{txn.status})")
        follow: dict[str, Any] | None = None
        if decision == "ACCEPT":
            txn.status = "AUTHORIZED"
            if settle:
                follow = self._capture(txn)
        elif settle:
            follow = self._reverse(txn)
        else:
            txn.status = "AUTHORIZED_RISK_DECLINED"
        decided = {"decision": decision, "reviewer": reviewer, "comments": comments, "at": utc_now_text(),
                   "followOn": follow["id"] if follow else None}
        self.decisions[txn.id] = decided
        self._notify(txn, decided, follow)
        body: dict[str, Any] = {"id": txn.id, "submitTimeUtc": decided["at"],
                                "status": "ACCEPTED" if decision == "ACCEPT" else "REJECTED",
                                "clientReferenceInformation": {"code": txn.code} if txn.code else {},
                                "decisionInformation": {"decision": decision}}
        if follow is not None:
            body["_embedded"] = {"capture" if decision == "ACCEPT" else "reversal": follow}
        return body

    def _payments_txn(self, transaction_id: str, merchant_id: str) -> Txn:
        txn = self._store.transactions.get(transaction_id)
        if txn is None or txn.merchant_id != merchant_id:
            raise not_found("pts")
        return txn

    def _capture(self, txn: Txn) -> dict[str, Any]:
        amount = txn.authorized - txn.captured
        if txn.kind == "sale":  # a sale held for review is captured in itself once accepted
            txn.captured = txn.authorized
            self._hub.publish("payments.payments.accept", "cardProcessing", txn)
            return {"id": txn.id, "_links": {"self": {"method": "GET", "href": f"/pts/v2/payments/{txn.id}"}}}
        return self._payments.capture(
            {"clientReferenceInformation": {"code": txn.code},
             "orderInformation": {"amountDetails": {"totalAmount": str(amount), "currency": txn.currency}}},
            txn.merchant_id, txn.id)

    def _reverse(self, txn: Txn) -> dict[str, Any]:
        amount = txn.authorized - txn.captured
        if txn.kind == "sale":
            txn.authorized -= amount
            txn.status = "REVERSED"
            child = self._payments._child(txn, "reversal", "REVERSED", amount, txn.code)
            self._hub.publish("payments.reversals.accept", "cardProcessing", child)
            return follow_on_created(child, txn)
        return self._payments.reverse(
            {"clientReferenceInformation": {"code": txn.code},
             "reversalInformation": {"amountDetails": {"totalAmount": str(amount), "currency": txn.currency},
                                     "reason": "Decision Manager reject"}},
            txn.merchant_id, txn.id)

    def _notify(self, txn: Txn, decided: dict[str, Any], follow: dict[str, Any] | None) -> None:
        data: dict[str, Any] = {
            "id": txn.id,
            "clientReferenceInformation": {"code": txn.code} if txn.code else {},
            "notes": [{"addedBy": decided["reviewer"] or "case-management", "comment": decided["comments"] or
                       f"Order {decided['decision'].lower()}ed", "date": decided["at"]}],
            "_links": {"self": {"href": f"/tss/v2/transactions/{txn.id}", "method": "GET"}},
        }
        if follow is not None:
            name = "capture" if decided["decision"] == "ACCEPT" else "reversal"
            data["_embedded"] = {name: {"id": follow["id"], "_links": follow.get("_links", {})}}
        event = "risk.casemanagement.decision." + ("accept" if decided["decision"] == "ACCEPT" else "reject")
        self._hub.publish(event, RISK, txn, data=data)


def risk_control_routes(sandbox: Sandbox) -> list[Route]:
    """``POST /__sandbox/risk/cases/{id}/decision``: a reviewer decides in the gateway's own case management."""
    manager: DecisionManager = sandbox.decisions

    async def decide(request: Request) -> Response:
        try:
            doc = await read_object(request)
            decision = doc.get("decision")
            if decision not in ACTIONS:
                raise control_error("decision", "must be ACCEPT or REJECT")
            settle = doc.get("settle", True)
            if not isinstance(settle, bool):
                raise control_error("settle", "must be true or false")
            txn = sandbox.store.transactions.get(request.path_params["id"])
            if txn is None:
                raise control_error("id", "no such transaction", status=404)
            body = manager.decide(txn, decision, settle=settle, reviewer=doc.get("reviewer") or None,
                                  comments=doc.get("comments") or None)
        except Problem as problem:
            return problem.response()
        return json_response(201, body, "application/json")

    return [Route("/__sandbox/risk/cases/{id}/decision", decide, methods=["POST"])]
