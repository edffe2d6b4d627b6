"""Which of SL's extension columns carry ledgerlink's facts, and the values they hold.

SL has no columns for "this credit memo should be refunded to the card" or "this order was charged
back", but every table has ``User1..User8`` (order tables ``User1..User10``) for exactly such site
conventions. Both sides of the wire (the connector and the API gateway) read this one module, the
way they share ``keys.py``, so a convention cannot drift between them.

``ARDoc``
  ``User1`` CHAR(30)  the gateway's id: the capture on a receipt (``PA``/``PP``), the refund on the debit
                      memo that pays a card refund out, and on a "refund to card" credit memo the refund
                      the gateway made for it (written by the refund result)
  ``User2`` CHAR(30)  the idempotency-key digest (``keys.py``)
  ``User5`` CHAR(10)  the document's card role: ``CARDRFND`` on a ``CM`` a person entered to have it
                      refunded to the card; ``RFNDPAYOUT`` on the ``DM`` that pays a card refund out
  ``User6`` CHAR(10)  on a ``CARDRFND`` credit memo, the refund outcome; blank while the request is pending
  ``User3`` FLOAT     on a ``CARDRFND`` credit memo, the amount the gateway refunded
  ``User8`` date      on a ``CARDRFND`` credit memo, the day the outcome was recorded

``SOHeader``
  ``User8`` CHAR(10)  the order's payment status after invoicing: ``PARTREFUND``, ``REFUNDED``, ``DISPUTED``,
                      or ``PAID`` when an order that had one of those is paid again (a dispute won)
  ``User10`` date     the day that status was set
"""

from __future__ import annotations

REFUND_TO_CARD = "CARDRFND"  # ARDoc.User5 on a CM: "refund this credit to the card"
REFUND_PAYOUT = "RFNDPAYOUT"  # ARDoc.User5 on a DM: this debit memo pays a card refund out
CARD_ROLE_FIELD = "User5"
GATEWAY_ID_FIELD = "User1"
REFUND_OUTCOME_FIELD = "User6"
REFUND_AMOUNT_FIELD = "User3"
REFUND_DATE_FIELD = "User8"

# ARDoc.User6 on a CARDRFND credit memo (canonical RefundOutcome value -> stored code)
REFUND_OUTCOMES = {"refunded": "REFUNDED", "declined": "DECLINED", "refused": "REFUSED"}

ORDER_PAYMENT_STATUS_FIELD = "User8"  # SOHeader
ORDER_PAYMENT_STATUS_DATE_FIELD = "User10"  # SOHeader
# canonical OrderStatus value -> SOHeader.User8 code (CHAR(10))
ORDER_PAYMENT_STATUSES = {"partially_refunded": "PARTREFUND", "refunded": "REFUNDED", "disputed": "DISPUTED"}
PAID_AGAIN = "PAID"  # SOHeader.User8 once a flagged order is paid again (set_order_status(PAID) after a dispute)
