"""The canonical model: immutable records every connector translates to and from.

Nothing here does I/O or imports another ledgerlink package.
"""

from ledgerlink.model.cardnumbers import find_card_numbers, redact_card_numbers
from ledgerlink.model.cases import Case, CaseStatus, CaseType, Task
from ledgerlink.model.documents import (
    CashReceipt,
    CreditMemo,
    DebitMemo,
    DocumentKind,
    GLAccount,
    Invoice,
    MemoLine,
    OrderLine,
    ReceiptKind,
    ReceiptReversal,
    RefundOutcome,
    RefundRequest,
    RefundResult,
    SalesOrder,
)
from ledgerlink.model.errors import FieldIssue, InvalidInput
from ledgerlink.model.ledger import JournalEntry, Posting, Side, UnbalancedEntry
from ledgerlink.model.money import Money, MoneyError, currency_exponent
from ledgerlink.model.party import Address, Party, PaymentToken
from ledgerlink.model.payment import (
    AuthorizationRequest,
    Dispute,
    DisputeStage,
    EventType,
    LineItem,
    Payment,
    PaymentEvent,
    PaymentKind,
    RiskAssessment,
)
from ledgerlink.model.refs import ExternalRef
from ledgerlink.model.settlement import (
    PostedKind,
    PostedPayment,
    Settlement,
    SettlementBatch,
    SettlementLine,
    SettlementLineKind,
)
from ledgerlink.model.status import OrderStatus, PaymentStatus, StaleTransition, advance, can_move

__all__ = [
    "Address",
    "AuthorizationRequest",
    "Case",
    "CaseStatus",
    "CaseType",
    "CashReceipt",
    "CreditMemo",
    "DebitMemo",
    "Dispute",
    "DisputeStage",
    "DocumentKind",
    "EventType",
    "ExternalRef",
    "FieldIssue",
    "GLAccount",
    "InvalidInput",
    "Invoice",
    "JournalEntry",
    "LineItem",
    "MemoLine",
    "Money",
    "MoneyError",
    "OrderLine",
    "OrderStatus",
    "Party",
    "Payment",
    "PaymentEvent",
    "PaymentKind",
    "PaymentStatus",
    "PaymentToken",
    "PostedKind",
    "PostedPayment",
    "Posting",
    "ReceiptKind",
    "ReceiptReversal",
    "RefundOutcome",
    "RefundRequest",
    "RefundResult",
    "RiskAssessment",
    "SalesOrder",
    "Settlement",
    "SettlementBatch",
    "SettlementLine",
    "SettlementLineKind",
    "Side",
    "StaleTransition",
    "Task",
    "UnbalancedEntry",
    "advance",
    "can_move",
    "currency_exponent",
    "find_card_numbers",
    "redact_card_numbers",
]
