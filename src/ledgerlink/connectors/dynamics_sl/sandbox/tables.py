"""The slice of SL's application database the sandbox keeps, column by column (spec A.2-A.10).

Column kinds follow SL's storage: ``C`` is ``CHAR(n)`` (stored right-trimmed, an
empty value as one space like SL, so comparisons behave like SQL Server's
trailing-space-insensitive CHAR), ``M`` money and ``Q`` quantity are
``FLOAT(53)`` rounded to the currency's ``DecPl`` (or the quantity places),
``F`` other floats (rates, percentages), ``S``/``I`` SMALLINT/INT, ``D``
SMALLDATETIME (``1900-01-01`` means "no date"), ``T`` free text (``Snote``).
Names keep SL's own casing (``SOHeader.CustID`` but ``ARDoc.CustId``); the API
matches names case-insensitively as SQL Server's default collation does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NO_DATE = "1900-01-01 00:00"
# Where the gateway keeps a record's business idempotency key (a fixed-width digest, see ../keys.py).
KEY_FIELD = "User2"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: str  # C M Q F S I D T
    length: int = 0  # CHAR length

    @property
    def default(self) -> object:
        if self.kind == "C":
            return " "
        if self.kind == "D":
            return NO_DATE
        if self.kind == "T":
            return ""
        return 0


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    identity: str | None = None  # an INTEGER identity column (RecordID, nID)
    indexes: tuple[tuple[str, ...], ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()
    keyed: tuple[str, ...] = ()  # partial unique index over these columns where the key field is set
    # (name, columns, WHERE): partial indexes for one dedicated query each (e.g. posted payments)
    partial: tuple[tuple[str, tuple[str, ...], str], ...] = ()
    by_name: dict[str, Column] = field(init=False, repr=False, compare=False)
    by_lower: dict[str, Column] = field(init=False, repr=False, compare=False)
    defaults: dict[str, object] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {c.name: c for c in self.columns})
        object.__setattr__(self, "by_lower", {c.name.lower(): c for c in self.columns})
        object.__setattr__(
            self, "defaults", {c.name: c.default for c in self.columns if c.name != self.identity}
        )

    def column(self, name: str) -> Column | None:
        return self.by_name.get(name) or self.by_lower.get(name.lower())

    def ddl(self) -> list[str]:
        types = {"C": "TEXT", "M": "REAL", "Q": "REAL", "F": "REAL", "S": "INTEGER", "I": "INTEGER",
                 "D": "TEXT", "T": "TEXT"}
        cols = []
        for c in self.columns:
            if c.name == self.identity:
                cols.append(f'"{c.name}" INTEGER PRIMARY KEY AUTOINCREMENT')
            else:
                cols.append(f'"{c.name}" {types[c.kind]} NOT NULL')
        if self.identity is None:
            cols.append("PRIMARY KEY (" + ", ".join(f'"{k}"' for k in self.key) + ")")
        statements = [f'CREATE TABLE "{self.name}" (' + ", ".join(cols) + ")"]
        for n, idx in enumerate(self.indexes):
            statements.append(
                f'CREATE INDEX IF NOT EXISTS "{self.name}_ix{n}" ON "{self.name}" ('
                + ", ".join(f'"{c}"' for c in idx) + ")"
            )
        for n, idx in enumerate(self.unique):
            statements.append(
                f'CREATE UNIQUE INDEX IF NOT EXISTS "{self.name}_ux{n}" ON "{self.name}" ('
                + ", ".join(f'"{c}"' for c in idx) + ")"
            )
        if self.keyed:
            statements.append(
                f'CREATE UNIQUE INDEX IF NOT EXISTS "{self.name}_key" ON "{self.name}" ('
                + ", ".join(f'"{c}"' for c in self.keyed) + f") WHERE \"{KEY_FIELD}\" <> ' '"
            )
        for name, columns, where in self.partial:
            statements.append(
                f'CREATE INDEX IF NOT EXISTS "{self.name}_{name}" ON "{self.name}" ('
                + ", ".join(f'"{c}"' for c in columns) + f") WHERE {where}"
            )
        return statements

    def column_ddl(self, column: Column) -> str:
        """``ALTER TABLE ... ADD COLUMN`` text for a column an older sandbox file lacks."""
        types = {"C": ("TEXT", "' '"), "M": ("REAL", "0"), "Q": ("REAL", "0"), "F": ("REAL", "0"),
                 "S": ("INTEGER", "0"), "I": ("INTEGER", "0"), "D": ("TEXT", f"'{NO_DATE}'"), "T": ("TEXT", "''")}
        sql_type, default = types[column.kind]
        return f'ALTER TABLE "{self.name}" ADD COLUMN "{column.name}" {sql_type} NOT NULL DEFAULT {default}'


def C(name: str, length: int) -> Column:
    return Column(name, "C", length)


def M(*names: str) -> list[Column]:
    return [Column(n, "M") for n in names]


def Q(*names: str) -> list[Column]:
    return [Column(n, "Q") for n in names]


def F(*names: str) -> list[Column]:
    return [Column(n, "F") for n in names]


def S(*names: str) -> list[Column]:
    return [Column(n, "S") for n in names]


def I(*names: str) -> list[Column]:  # noqa: E743 - SL's INT, named like the other kind helpers
    return [Column(n, "I") for n in names]


def D(*names: str) -> list[Column]:
    return [Column(n, "D") for n in names]


AUDIT = [Column("Crtd_DateTime", "D"), C("Crtd_Prog", 8), C("Crtd_User", 10),
         Column("LUpd_DateTime", "D"), C("LUpd_Prog", 8), C("LUpd_User", 10)]
# Most tables: User1/User2 CHAR(30), User3/User4 FLOAT, User5/User6 CHAR(10), User7/User8 dates.
USER8 = [C("User1", 30), C("User2", 30), *F("User3", "User4"), C("User5", 10), C("User6", 10),
         *D("User7", "User8")]
# SL's reserved columns; release uses some of them (pp_08400CreateTransRev: S4Future02/11/12 link a payment
# and the NS document that reversed it, and mark reversed ARAdjust rows).
S4FUTURE = [C("S4Future01", 30), C("S4Future02", 30), *F("S4Future03", "S4Future04", "S4Future05", "S4Future06"),
            *D("S4Future07", "S4Future08"), *I("S4Future09", "S4Future10"), C("S4Future11", 10), C("S4Future12", 10)]
# Order Management tables: User1-User4 CHAR(30), User5/User6 FLOAT, User7/User8 CHAR(10), User9/User10 dates.
USER10 = [C("User1", 30), C("User2", 30), C("User3", 30), C("User4", 30), *F("User5", "User6"),
          C("User7", 10), C("User8", 10), *D("User9", "User10")]


def _t(name: str, cols: list[Column], key: tuple[str, ...], **kw: object) -> Table:
    return Table(name, tuple(cols), key, **kw)  # type: ignore[arg-type]


GLSETUP = _t("GLSetup", [
    C("SetupId", 2), C("CpnyId", 10), C("CpnyName", 30), C("BaseCuryId", 4), C("LedgerID", 10),
    *S("NbrPer", "BegFiscalYr", "ValidateAcctSub"), C("PerNbr", 6), C("LastClosePerNbr", 6),
    *[C(f"FiscalPerEnd{n:02d}", 4) for n in range(13)],
    C("RetEarnAcct", 10), C("YtdNetIncAcct", 10), C("LastBatNbr", 10), *AUDIT,
], ("CpnyId", "SetupId"))

ARSETUP = _t("ARSetup", [
    C("SetupId", 2), C("CpnyID", 10), C("PerNbr", 6), C("CurrPerNbr", 6), *S("AutoRef"),
    C("LastRefNbr", 10), C("LastBatNbr", 10), C("PrePayAcct", 10), C("PrePaySub", 24),
    C("DiscAcct", 10), C("DiscSub", 24), C("DfltSBWOAcct", 10), C("DfltSBWOSub", 24),
    C("DfltSCWOAcct", 10), C("DfltSCWOSub", 24), *AUDIT,
], ("CpnyID", "SetupId"))

CURRNCY = _t("Currncy", [C("CuryId", 4), C("Descr", 30), *S("DecPl"), C("Symbol", 4), *AUDIT], ("CuryId",))

ACCOUNT = _t("Account", [
    C("Acct", 10), C("Descr", 30), C("AcctType", 2), *S("Active"), C("CuryId", 4), C("Acct_Cat", 10),
    C("SummPost", 1), *AUDIT, *USER8,
], ("Acct",))

SUBACCT = _t("SubAcct", [C("Sub", 24), C("Descr", 30), *S("Active"), C("ConsolSub", 24), *AUDIT, *USER8],
             ("Sub",))

TERMS = _t("Terms", [
    C("TermsId", 2), C("Descr", 30), C("DueType", 1), *S("DueIntrv"), C("DiscType", 1), *S("DiscIntrv"),
    *F("DiscPct"), *AUDIT,
], ("TermsId",))

CUSTCLASS = _t("CustClass", [
    C("ClassId", 6), C("Descr", 30), C("ArAcct", 10), C("ArSub", 24), C("PrePayAcct", 10),
    C("PrePaySub", 24), C("SlsAcct", 10), C("SlsSub", 24), C("Terms", 2), *AUDIT,
], ("ClassId",))

CUSTOMER = _t("Customer", [
    C("CustId", 15), C("Name", 60), C("Addr1", 60), C("Addr2", 60), C("City", 30), C("State", 3),
    C("Zip", 10), C("Country", 3), C("Phone", 30), C("Fax", 30), C("EMailAddr", 80), C("Attn", 30),
    C("Salut", 30), C("BillName", 60), C("BillAddr1", 60), C("BillAddr2", 60), C("BillCity", 30),
    C("BillState", 3), C("BillZip", 10), C("BillCountry", 3), C("BillPhone", 30), C("ClassId", 6),
    C("Status", 1), C("Terms", 2), C("CuryId", 4), *M("CrLmt"), C("ArAcct", 10), C("ArSub", 24),
    C("PrePayAcct", 10), C("PrePaySub", 24), C("SlsAcct", 10), C("SlsSub", 24), C("SlsperId", 10),
    C("TaxID00", 10), C("StmtCycleId", 2), *S("AutoApply"), C("PmtMethod", 1), C("CardType", 1),
    C("CardNbr", 20), C("CardHldrName", 60), *D("CardExpDate"), C("DfltShipToId", 10), C("PerNbr", 6),
    *D("SetupDate"), C("PriceClassID", 6), C("LanguageID", 4), C("DocPublishingFlag", 1), *I("NoteId"),
    *AUDIT, *USER8,
], ("CustId",), indexes=(("EMailAddr",), ("Name",), ("LUpd_DateTime", "CustId")), keyed=("User2",))

AR_BALANCES = _t("AR_Balances", [
    C("CpnyID", 10), C("CustID", 15), *M("CurrBal", "FutureBal", "AgeBal00", "AgeBal01", "AgeBal02",
                                       "AgeBal03", "AgeBal04", "TotPrePay", "TotOpenOrd", "TotShipped",
                                       "CrLmt"),
    *D("LastInvcDate", "LastActDate"), *F("AvgDayToPay"), C("PerNbr", 6), *AUDIT,
], ("CpnyID", "CustID"))

SOTYPE = _t("SOType", [
    C("CpnyID", 10), C("SOTypeID", 4), C("Descr", 30), C("Behavior", 4), *S("Active"),
    C("OrdNbrPrefix", 15), C("LastOrdNbr", 10), C("InvcNbrPrefix", 15), C("LastInvcNbr", 10),
    *S("InvcNbrAR"), *AUDIT,
], ("CpnyID", "SOTypeID"))

SOHEADER = _t("SOHeader", [
    C("CpnyID", 10), C("OrdNbr", 15), C("CustID", 15), C("SOTypeID", 4), C("Status", 1), *D("OrdDate"),
    C("CustOrdNbr", 25), C("ShiptoID", 10), C("ShipName", 60), C("ShipAddr1", 60), C("ShipAddr2", 60),
    C("ShipCity", 30), C("ShipState", 3), C("ShipZip", 10), C("ShipCountry", 3), C("BillName", 60),
    C("BillAddr1", 60), C("BillAddr2", 60), C("BillCity", 30), C("BillState", 3), C("BillZip", 10),
    C("BillCountry", 3), C("TermsID", 2), C("SlsperID", 10), C("CuryID", 4), *F("CuryRate"),
    *M("TotMerch", "TotFrt", "TotMisc", "TotTax", "TotOrd", "TotPmt", "BalDue", "UnshippedBalance",
       "CuryTotMerch", "CuryTotOrd", "CuryTotPmt", "CuryBalDue"),
    *S("PmtCntr", "LineCntr", "CreditHold", "AdminHold", "Cancelled"), *D("CancelDate", "DateCancelled"),
    C("InvcNbr", 15), *D("InvcDate"), C("ARAcct", 10), C("ARSub", 24), C("PerPost", 6), C("AuthNbr", 20),
    C("NextFunctionID", 8), C("NextFunctionClass", 4), *I("NoteId"), *AUDIT, *USER10,
], ("CpnyID", "OrdNbr"), indexes=(("CustID", "Status"), ("CustOrdNbr",)), keyed=("CpnyID", "User2"))

SOLINE = _t("SOLine", [
    C("CpnyID", 10), C("OrdNbr", 15), C("LineRef", 5), *S("LineNbr"), C("InvtID", 30), C("Descr", 60),
    *Q("QtyOrd", "QtyShip", "QtyBO", "QtyOpenShip", "QtyToInvc"), C("UnitDesc", 6),
    *M("SlsPrice", "CurySlsPrice"), *F("DiscPct"), *M("TotOrd", "CuryTotOrd"), C("SiteID", 10),
    C("TaxCat", 10), *S("Taxable"), C("Status", 1), *D("ReqDate", "PromDate"), C("SlsAcct", 10),
    C("SlsSub", 24), C("COGSAcct", 10), C("COGSSub", 24), *I("NoteId"), *AUDIT, *USER10,
], ("CpnyID", "OrdNbr", "LineRef"))

# what ``ar/posted-payments`` reads besides its key (sandbox/posted.py), carried in its index
POSTED_COLUMNS = ("Rlsed", "User5", "S4Future12", "User1", "CustId", "CuryOrigDocAmt", "CuryId", "OrdNbr", "CustOrdNbr",
                  "BatNbr", "PerPost", "Crtd_DateTime")

ARDOC = _t("ARDoc", [
    C("CpnyID", 10), C("CustId", 15), C("DocType", 2), C("RefNbr", 10), C("BatNbr", 10), *I("BatSeq"),
    *D("DocDate", "DueDate", "DiscDate"), C("DocDesc", 30),
    *M("OrigDocAmt", "DocBal", "DiscBal", "CuryOrigDocAmt", "CuryDocBal", "CuryDiscBal"), C("CuryId", 4),
    *F("CuryRate"), C("CuryMultDiv", 1), C("CuryRateType", 6), *D("CuryEffDate"), C("PerPost", 6),
    C("PerEnt", 6), C("PerClosed", 6), *S("Rlsed", "OpenDoc"), C("Status", 1), C("DocClass", 1),
    C("Terms", 2), C("SlsperId", 10), C("OrdNbr", 15), C("CustOrdNbr", 25), C("BankAcct", 10),
    C("BankSub", 24), C("BankID", 10), C("ApplBatNbr", 10), *I("ApplBatSeq"), *M("ApplAmt", "CuryApplAmt"),
    C("PmtMethod", 1), *M("RGOLAmt"), C("MasterDocNbr", 10), C("OrigDocNbr", 10), C("ProjectID", 16),
    C("TaskID", 32), *S("NoPrtStmt"), *I("LineCntr", "NoteId"),
    *S("Cycle", "NbrCycle"),  # recurring (RC) documents: months between invoices, cycles left to generate
    *AUDIT, *S4FUTURE, *USER8,
], ("CustId", "DocType", "RefNbr", "BatNbr", "BatSeq"),
    # company first: every query is scoped by CpnyID, and without statistics SQLite would otherwise
    # pick the unique (CpnyID, DocType, RefNbr) index for a BatNbr lookup and walk the whole company
    indexes=(("CpnyID", "BatNbr"), ("CpnyID", "OrdNbr"), ("CustId", "Rlsed", "DueDate"), ("CpnyID", "PerPost")),
    unique=(("CpnyID", "DocType", "RefNbr"),), keyed=("CpnyID", "User2"),
    # the two dedicated reads of money movement: documents that carry a gateway id (posted payments, paged by
    # DocDate) and credit memos flagged "refund to card" (refund requests)
    # (the first also holds every column posted payments read, so a million-row day never touches the table)
    partial=(("gateway", ("CpnyID", "DocDate", "DocType", "RefNbr", *POSTED_COLUMNS),
              "User1 <> ' ' AND DocType IN ('PA', 'PP', 'DM')"),
             ("refund", ("CpnyID", "User6", "RefNbr"), "DocType = 'CM' AND User5 = 'CARDRFND'")))

ARTRAN = _t("ARTran", [
    *I("RecordID"), C("CpnyID", 10), C("CustId", 15), C("TranType", 2), C("RefNbr", 10), *S("LineNbr"),
    C("Acct", 10), C("Sub", 24), *M("TranAmt", "CuryTranAmt"), C("DrCr", 1), *Q("Qty"),
    *M("UnitPrice", "CuryUnitPrice"), C("InvtId", 30), C("SiteId", 10), C("CostType", 8), C("TaxCat", 10),
    C("TranDesc", 30), *D("TranDate"), C("PerPost", 6), C("FiscYr", 4), C("JrnlType", 3), C("LineRef", 5),
    C("ExtRefNbr", 15), C("OrdNbr", 15), C("BatNbr", 10), *S("Rlsed", "AcctDist"), *AUDIT, *USER8,
], ("CustId", "TranType", "RefNbr", "LineNbr", "RecordID"), identity="RecordID",
    indexes=(("CpnyID", "TranType", "RefNbr"), ("CpnyID", "BatNbr")))

ARADJUST = _t("ARAdjust", [
    *I("RecordID"), C("CpnyID", 10), C("CustId", 15), C("AdjgDocType", 2), C("AdjgRefNbr", 10),
    C("AdjdDocType", 2), C("AdjdRefNbr", 10),
    *M("AdjAmt", "AdjDiscAmt", "CuryAdjgAmt", "CuryAdjdAmt", "CuryAdjdDiscAmt", "CuryAdjgDiscAmt"),
    C("CuryAdjdCuryId", 4), *F("CuryAdjdRate"), C("CuryAdjdMultDiv", 1), *M("CuryRGOLAmt"),
    C("AdjBatNbr", 10), *D("AdjgDocDate"), C("AdjgPerPost", 6), *D("DateAppl"), C("PerAppl", 6),
    C("ProjectID", 16), C("TaskID", 32), C("PC_Status", 1), *AUDIT, *S4FUTURE, *USER8,
], ("AdjdRefNbr", "RecordID"), identity="RecordID",
    indexes=(("CustId", "AdjdDocType", "AdjdRefNbr"), ("CustId", "AdjgDocType", "AdjgRefNbr"), ("AdjBatNbr",)))

BATCH = _t("Batch", [
    C("CpnyID", 10), C("Module", 2), C("BatNbr", 10), C("Status", 1), *S("Rlsed"), C("PerPost", 6),
    C("PerEnt", 6), C("JrnlType", 3), C("BatType", 1), C("EditScrnNbr", 5), C("OrigScrnNbr", 5),
    *M("CrTot", "DrTot", "CtrlTot", "CuryCrTot", "CuryDrTot", "CuryCtrlTot"), C("CuryId", 4),
    *F("CuryRate"), C("CuryMultDiv", 1), C("BaseCuryID", 4), C("LedgerID", 10), C("BalanceType", 1),
    C("Descr", 30), *D("DateEnt"), C("BankAcct", 10), C("BankSub", 24), *S("AutoRev"), C("GLPostOpt", 1),
    *I("NoteId"), *AUDIT, *USER8,
], ("CpnyID", "Module", "BatNbr"), indexes=(("Status",),), keyed=("CpnyID", "User2"))

GLTRAN = _t("GLTran", [
    C("CpnyID", 10), C("Module", 2), C("BatNbr", 10), *S("LineNbr"), *I("LineId"), C("Acct", 10),
    C("Sub", 24), *M("DrAmt", "CrAmt", "CuryDrAmt", "CuryCrAmt"), C("CuryId", 4), *F("CuryRate"),
    C("CuryMultDiv", 1), C("JrnlType", 3), C("TranType", 2), C("PerPost", 6), C("PerEnt", 6),
    C("FiscYr", 4), C("LedgerID", 10), C("BalanceType", 1), C("BaseCuryID", 4), C("Posted", 1),
    *S("Rlsed"), C("RefNbr", 10), C("ExtRefNbr", 15), C("Id", 20), *D("TranDate"), C("TranDesc", 30),
    C("OrigAcct", 10), C("OrigSub", 24), C("OrigBatNbr", 10), C("OrigCpnyID", 10), C("ProjectID", 16),
    C("TaskID", 32), *Q("Qty"), *I("NoteId"), *AUDIT, *USER8,
], ("CpnyID", "Module", "BatNbr", "LineNbr"), indexes=(("Acct", "Sub", "PerPost"),))

ACCTHIST = _t("AcctHist", [
    C("CpnyID", 10), C("Acct", 10), C("Sub", 24), C("LedgerID", 10), C("FiscYr", 4), *M("BegBal"),
    *M(*[f"PtdBal{n:02d}" for n in range(13)]), *AUDIT,
], ("CpnyID", "Acct", "Sub", "LedgerID", "FiscYr"))

# Not an SL table: the API gateway's own finance to-do list, shaped like an SL customisation table (``x``
# prefix, CpnyID, CHAR columns, audit and User columns, the body in Snote through NoteId).
XLLTASK = _t("xLLTask", [
    C("CpnyID", 10), C("TaskNbr", 10), C("Status", 1), C("Category", 20), C("Subject", 60), C("Reference", 60),
    C("CuryId", 4), *F("Amount"), *D("DueDate", "DateClosed"), *I("NoteId"), *AUDIT, *USER8,
], ("CpnyID", "TaskNbr"), indexes=(("CpnyID", "Status", "Category"), ("CpnyID", "Reference")),
    keyed=("CpnyID", "User2"))

# Not an SL table: customers' gateway tokens (the link to a gateway customer and the stored cards it refers to),
# shaped like an SL customisation table; sandbox/payment_profiles.py says why SL's own columns do not serve.
XLLCUSTTOKEN = _t("xLLCustToken", [
    C("CustId", 15), C("Gateway", 20), C("TokenKind", 2), C("TokenId", 40), C("CustToken", 40),
    C("IdentToken", 40), C("Brand", 20), C("Last4", 4), *D("ExpDate"), C("Status", 1), *S("IsDefault"),
    *AUDIT, *USER8,
], ("CustId", "Gateway", "TokenId"), indexes=(("Gateway", "CustToken"),), unique=(("Gateway", "TokenId"),))

SNOTE = _t("Snote", [
    *I("nID"), *D("dtRevisedDate"), C("sLevelName", 20), C("sTableName", 20), Column("sNoteText", "T"),
], ("nID",), identity="nID")

ALL_TABLES: tuple[Table, ...] = (
    GLSETUP, ARSETUP, CURRNCY, ACCOUNT, SUBACCT, TERMS, CUSTCLASS, CUSTOMER, AR_BALANCES, SOTYPE,
    SOHEADER, SOLINE, ARDOC, ARTRAN, ARADJUST, BATCH, GLTRAN, ACCTHIST, XLLTASK, XLLCUSTTOKEN, SNOTE,
)
TABLES: dict[str, Table] = {t.name: t for t in ALL_TABLES}
