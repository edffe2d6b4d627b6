"""Wire models of the SL API gateway: SL column names, amounts as decimal strings.

Lenient on read: unknown columns are kept (``extra="allow"``) and missing ones default, so a gateway
that returns more (or fewer) of SL's hundred-odd columns does not break the connector. Request bodies
are plain dicts built by ``translate`` with SL's exact names.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SLRecord(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class ARBalances(SLRecord):
    CustID: str = ""
    CurrBal: Decimal = Decimal(0)
    TotPrePay: Decimal = Decimal(0)
    TotOpenOrd: Decimal = Decimal(0)


class Customer(SLRecord):
    CustId: str
    Name: str = ""
    Addr1: str = ""
    Addr2: str = ""
    City: str = ""
    State: str = ""
    Zip: str = ""
    Country: str = ""
    Phone: str = ""
    EMailAddr: str = ""
    ClassId: str = ""
    Status: str = ""
    CuryId: str = ""
    Balances: ARBalances | None = None


class SOLine(SLRecord):
    LineRef: str = ""
    InvtID: str = ""
    Descr: str = ""
    QtyOrd: Decimal = Decimal(0)
    SlsPrice: Decimal = Decimal(0)
    TotOrd: Decimal = Decimal(0)
    SlsAcct: str = ""
    SlsSub: str = ""


class SOHeader(SLRecord):
    OrdNbr: str
    CustID: str = ""
    SOTypeID: str = ""
    Status: str = ""
    CustOrdNbr: str = ""
    CuryID: str = ""
    TotOrd: Decimal = Decimal(0)
    TotPmt: Decimal = Decimal(0)
    BalDue: Decimal = Decimal(0)
    AdminHold: int = 0
    Cancelled: int = 0
    InvcNbr: str = ""
    User8: str = ""  # the payment status after invoicing (userfields.py)
    Note: str | None = None
    Lines: list[SOLine] = Field(default_factory=list)


class ARAdjust(SLRecord):
    CustId: str = ""
    AdjgDocType: str = ""
    AdjgRefNbr: str = ""
    AdjdDocType: str = ""
    AdjdRefNbr: str = ""
    AdjAmt: Decimal = Decimal(0)
    CuryAdjgAmt: Decimal = Decimal(0)
    AdjBatNbr: str = ""


class ARDoc(SLRecord):
    CustId: str = ""
    DocType: str
    RefNbr: str
    BatNbr: str = ""
    DocDate: str = ""
    DocDesc: str = ""
    OrigDocAmt: Decimal = Decimal(0)
    DocBal: Decimal = Decimal(0)
    CuryOrigDocAmt: Decimal = Decimal(0)
    CuryDocBal: Decimal = Decimal(0)
    CuryId: str = ""
    PerPost: str = ""
    PerClosed: str = ""
    Rlsed: int = 0
    OpenDoc: int = 0
    OrdNbr: str = ""
    CustOrdNbr: str = ""
    User1: str = ""
    User5: str = ""
    User6: str = ""
    Note: str | None = None
    Adjustments: list[ARAdjust] = Field(default_factory=list)


class GLTran(SLRecord):
    LineNbr: int = 0
    Acct: str = ""
    Sub: str = ""
    DrAmt: Decimal = Decimal(0)
    CrAmt: Decimal = Decimal(0)
    Posted: str = ""


class Batch(SLRecord):
    Module: str
    BatNbr: str
    Status: str = ""
    Rlsed: int = 0
    CrTot: Decimal = Decimal(0)
    DrTot: Decimal = Decimal(0)
    CtrlTot: Decimal = Decimal(0)
    PerPost: str = ""
    Lines: list[GLTran] = Field(default_factory=list)


class PostResult(SLRecord):
    Posted: list[dict[str, str]] = Field(default_factory=list)
    Failed: list[dict[str, str]] = Field(default_factory=list)


class Task(SLRecord):
    """An ``xLLTask`` row (the gateway's finance to-do table) with its body."""

    TaskNbr: str
    Status: str = ""
    Category: str = ""
    Subject: str = ""
    Reference: str = ""
    CuryId: str = ""
    Amount: Decimal = Decimal(0)
    DueDate: str = ""
    Body: str | None = None


class Page(SLRecord):
    """One page of a keyset-paged list: rows as plain dicts (read straight into canonical records) and the
    cursor of the next page, if any."""

    value: list[dict[str, Any]] = Field(default_factory=list)
    NextAfter: str | None = None


class Setup(SLRecord):
    GLSetup: dict[str, Any]
    ARSetup: dict[str, Any]
    Currncy: list[dict[str, Any]] = Field(default_factory=list)
    DateFormat: str = "%m/%d/%Y"


class KeyHolder(SLRecord):
    Key: str
    Table: str
    Id: str
    Digest: str = ""


class ListOf(SLRecord):
    value: list[dict[str, Any]] = Field(default_factory=list)


class ErrorDetail(SLRecord):
    code: str = ""
    message: str = ""
    table: str | None = None
    field: str | None = None
    existing: dict[str, str] | None = None


class ErrorBody(SLRecord):
    error: ErrorDetail


class TokenResponse(SLRecord):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int = 3600


class BatchItem(BaseModel):
    """One request of a ``$batch`` (OData JSON batch style)."""

    id: str
    method: str
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None


class BatchItemResponse(SLRecord):
    id: str
    status: int
    body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)


class BatchResponse(SLRecord):
    responses: list[BatchItemResponse]
