"""Decision Manager (spec §8): reason codes in plain words, case actions, case-decision notifications.

- ``describe``: the codes a payment's ``riskInformation`` carries (legacy reason codes, score
  factor codes, info codes) as ``RiskReason``s a reviewer can read. Unknown codes keep their code
  and say so, rather than being dropped.
- ``case_action``: the body of ``POST /risk/v1/decisions/{id}/actions`` (a reviewer's ACCEPT with
  ``actionList: [CAPTURE]``, or REJECT with ``[REVERSE]``).
- ``read_action_response`` / ``verdict_from_payload``: the decision and the capture or reversal
  made with it, from the action's answer or from a ``risk.casemanagement.decision.*``
  notification's ``payload.data`` (``_embedded.capture`` / ``_embedded.reversal``, each an id or
  a ``_links.self.href``; the reviewer and comments from ``notes[]``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ledgerlink.model import ReviewDecision, ReviewVerdict, RiskReason

DECISION_EVENTS = {
    "risk.casemanagement.decision.accept": ReviewDecision.ACCEPT,
    "risk.casemanagement.decision.reject": ReviewDecision.REJECT,
}
ACTIONS = {ReviewDecision.ACCEPT: ("ACCEPT", "CAPTURE"), ReviewDecision.REJECT: ("REJECT", "REVERSE")}

# Legacy reason codes (spec §4.7, §8).
_REASON_CODES = {
    "100": "Decision Manager accepted the order",
    "400": "The fraud score exceeds the merchant's threshold",
    "480": "Decision Manager marked the order for review",
    "481": "Decision Manager rejected the order",
}
# Score factor codes (one letter).
_FACTORS = {
    "A": "Excessive address changes: the customer changed the billing address several times recently",
    "B": "The card's BIN or the authorisation result carries risk",
    "C": "Many card numbers: the customer used more than six cards recently",
    "D": "The email address is risky (a known fraud domain or an unusual pattern)",
    "E": "On the merchant's positive list",
    "F": "On the merchant's negative list (card, address, email or IP)",
    "G": "Geolocation inconsistencies between email domain, phone, addresses and IP",
    "H": "Excessive name changes for this customer",
    "I": "Internet inconsistencies: IP address and email domain do not fit the billing address",
    "N": "Nonsensical input in the name or address fields",
    "O": "Obscenities in the customer's input",
    "P": "Identity morphing: one identity element is linked to many values of another",
    "Q": "Phone inconsistencies",
    "R": "Risky order: several high-risk correlations between customer and order",
    "T": "Time hedge: the purchase was made outside the customer's usual hours",
    "U": "Unverifiable address",
    "V": "Velocity: the card was used many times in a short period",
    "W": "Marked as suspect: the address resembles one previously marked suspect",
    "Y": "The billing and shipping addresses do not correlate (street, city, state or country)",
    "Z": "Invalid value: a default was substituted for an unexpected value in the request",
}
# Info codes by exact value.
_INFO = {
    "COR-BA": "The billing address could be corrected (it was not exactly right)",
    "COR-SA": "The shipping address could be corrected (it was not exactly right)",
    "INTL-BA": "The billing country is outside the merchant's country",
    "INTL-SA": "The shipping country is outside the merchant's country",
    "MIL-USA": "A US military address",
    "MM-A": "The billing and shipping addresses are in different countries",
    "MM-BIN": "The card's BIN country differs from the billing country",
    "MM-C": "The billing and shipping addresses are in different cities",
    "MM-CO": "The billing and shipping addresses are in different countries",
    "MM-ST": "The billing and shipping addresses are in different states",
    "MM-Z": "The billing and shipping addresses have different postal codes",
    "UNV-ADDR": "The address could not be verified",
    "VEL-ADDR": "Different billing or shipping states or countries used with this card",
    "VEL-CC": "Different card numbers used with the same identity",
    "VEL-NAME": "Different names used with this card",
    "VELS-CC": "The card was used repeatedly in a short time",
    "VELI-CC": "The card was used repeatedly in a medium time window",
    "VELL-CC": "The card was used repeatedly in a long time window",
    "NEG-AFCB": "The card has chargebacks on the merchant's negative list",
    "NEG-BA": "The billing address is on the negative list",
    "NEG-CC": "The card number is on the negative list",
    "NEG-EM": "The email address is on the negative list",
    "NEG-IP": "The IP address is on the negative list",
    "NEG-SA": "The shipping address is on the negative list",
    "FREE-EM": "The email address is from a free email provider",
    "INV-EM": "The email address is invalid",
    "RISK-EM": "The email domain is associated with higher risk",
    "MM-EMBCO": "The email domain's country differs from the billing country",
    "MM-IPBC": "The IP address's city differs from the billing city",
    "MM-IPBCO": "The IP address's country differs from the billing country",
    "MM-IPBST": "The IP address's state differs from the billing state",
    "INTL-IPCO": "The IP address is outside the merchant's country",
    "UNV-NID": "The IP address is an anonymous proxy",
    "UNV-RISK": "The IP address comes from a risky source",
    "BAD-FP": "The device fingerprint is suspicious",
    "RISK-TB": "The billing address and the card together look high-risk",
    "RISK-AVS": "The combined address verification result is high-risk",
    "RISK-BIN": "The card's BIN has a high fraud rate",
}
# Info code families, for codes not listed one by one.
_FAMILIES = (("VEL", "Velocity: this card or identity was used unusually often"),
             ("NEG-", "A match on the merchant's negative list"), ("MM-", "Mismatched order details"),
             ("RISK-", "A high-risk indicator"), ("UNV-", "Unverifiable customer data"),
             ("COR-", "A corrected address"), ("INTL-", "An international order"))


def describe(codes: Iterable[str]) -> tuple[RiskReason, ...]:
    """Each code once, in order, with its meaning (unknown codes say they are unknown)."""
    reasons = []
    for code in dict.fromkeys(c.strip() for c in codes if c and c.strip()):
        upper = code.upper()
        text = _REASON_CODES.get(code) or _FACTORS.get(upper) or _INFO.get(upper)
        if text is None:
            text = next((f"{meaning} ({code})" for prefix, meaning in _FAMILIES if upper.startswith(prefix)),
                        f"Decision Manager code {code} (no description known)")
        reasons.append(RiskReason(code=code, description=text))
    return tuple(reasons)


def case_action(decision: ReviewDecision, *, comments: str | None = None, reviewer: str | None = None,
                settle: bool = True) -> dict[str, Any]:
    """The ``/risk/v1/decisions/{id}/actions`` body for a reviewer's decision."""
    verdict, action = ACTIONS[decision]
    text = " ".join(p for p in ((f"[{reviewer}]" if reviewer else None), comments) if p)
    body: dict[str, Any] = {"decisionInformation": {"decision": verdict}}
    if text:
        body["decisionInformation"]["comments"] = text[:1000]
    if settle:
        body["processingInformation"] = {"actionList": [action]}
    return body


def _id_of(block: Any) -> str | None:
    if not isinstance(block, Mapping):
        return None
    if isinstance(block.get("id"), str) and block["id"]:
        return str(block["id"])
    link = block.get("_links", {}).get("self") if isinstance(block.get("_links"), Mapping) else None
    href = link.get("href") if isinstance(link, Mapping) else None
    if isinstance(href, str) and href.strip("/"):
        return href.rstrip("/").rsplit("/", 1)[-1] or None
    return None


def follow_on_id(doc: Mapping[str, Any]) -> str | None:
    """The capture or reversal a decision made, from ``_embedded``."""
    embedded = doc.get("_embedded")
    if not isinstance(embedded, Mapping):
        return None
    for name in ("capture", "reversal", "authReversal"):
        found = _id_of(embedded.get(name))
        if found:
            return found
    return None


def verdict_from_payload(decision: ReviewDecision, data: Mapping[str, Any]) -> ReviewVerdict:
    """A ``risk.casemanagement.decision.*`` notification's ``payload.data`` as a verdict."""
    notes = data.get("notes")
    reviewer, comments = None, []
    if isinstance(notes, list):
        for note in notes:
            if not isinstance(note, Mapping):
                continue
            if isinstance(note.get("addedBy"), str) and note["addedBy"].strip():
                reviewer = note["addedBy"].strip()
            if isinstance(note.get("comment"), str) and note["comment"].strip():
                comments.append(note["comment"].strip())
    return ReviewVerdict(decision=decision, reviewer=reviewer, comments=" / ".join(comments) or None,
                         follow_on_id=follow_on_id(data))


def read_action_response(decision: ReviewDecision, doc: Any) -> ReviewVerdict:
    """The answer to a case action as a verdict (the decision we sent, the capture or reversal it made)."""
    return ReviewVerdict(decision=decision, follow_on_id=follow_on_id(doc) if isinstance(doc, Mapping) else None)
