"""A reconciliation report as CSV (its discrepancies) and as an HTML page with charts.

The page is static: tables and inline SVG bar charts drawn here, no scripts and nothing fetched, so it
opens anywhere (mail it, archive it). Every value is escaped.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from html import escape
from typing import Any

CSV_COLUMNS = ["type", "txn", "order_ref", "kind", "currency", "line_cents", "post_cents", "line_currency",
               "post_currency", "batch", "ref"]


def report_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["day", *CSV_COLUMNS])
    for item in report.get("discrepancies", {}).get("items", []):
        writer.writerow([report.get("day", ""), *(item.get(c, "") if item.get(c) is not None else ""
                                                 for c in CSV_COLUMNS)])
    return out.getvalue()


def _bars(series: list[tuple[str, list[tuple[str, Decimal]]]], labels: list[str], *, title: str) -> str:
    """A grouped bar chart: for each label, one bar per series. A negative value (an hour that paid back more
    than it took) has no bar; its tooltip still shows it."""
    width, height, left, bottom = 760, 220, 60, 30
    values = [v for _, points in series for _, v in points]
    top = max([*values, Decimal(1)])
    group = (width - left) / max(1, len(labels))
    bar = max(2.0, group / (len(series) + 1))
    colors = ["#3b6ea5", "#e0a43a", "#8a5aa8", "#4c9a6a", "#c8553d"]
    parts = [f'<svg viewBox="0 0 {width} {height + bottom}" width="{width}" height="{height + bottom}" '
             f'role="img" aria-label="{escape(title)}">',
             f'<line x1="{left}" y1="{height}" x2="{width}" y2="{height}" stroke="#888"/>',
             f'<text x="4" y="14" font-size="11">{escape(f"{top:,.2f}")}</text>']
    for s_index, (_, points) in enumerate(series):
        lookup = dict(points)
        for l_index, label in enumerate(labels):
            value = lookup.get(label, Decimal(0))
            h = float(max(value, Decimal(0)) / top) * (height - 20)
            x = left + l_index * group + s_index * bar
            parts.append(f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{bar - 1:.1f}" height="{h:.1f}" '
                         f'fill="{colors[s_index % len(colors)]}"><title>{escape(label)}: {value:,}</title></rect>')
    for l_index, label in enumerate(labels):
        x = left + l_index * group + group / 2 - 8
        parts.append(f'<text x="{x:.1f}" y="{height + 14}" font-size="10">{escape(label)}</text>')
    legend_x = left
    for s_index, (name, _) in enumerate(series):
        parts.append(f'<rect x="{legend_x}" y="{height + 20}" width="10" height="8" '
                     f'fill="{colors[s_index % len(colors)]}"/>'
                     f'<text x="{legend_x + 14}" y="{height + 28}" font-size="10">{escape(name)}</text>')
        legend_x += 120
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def report_html(report: dict[str, Any]) -> str:
    day = report.get("day", "")
    counts = report.get("counts", {})
    charts = []
    by_currency: dict[str, list[dict[str, Any]]] = {}
    for point in report.get("hourly", []):
        by_currency.setdefault(point["currency"], []).append(point)
    hours = [f"{h:02d}" for h in range(24)]
    for currency, points in sorted(by_currency.items()):
        settled = [(f"{p['hour']:02d}", Decimal(p["settled"])) for p in points]
        posted = [(f"{p['hour']:02d}", Decimal(p["posted"])) for p in points]
        charts.append(f"<h3>Settled vs posted by hour ({escape(currency)})</h3>" + _bars(
            [("posted", posted), ("settled", settled)], hours, title=f"settled vs posted by hour {currency}"))
    by_type = report.get("discrepancies", {}).get("by_type", {})
    if by_type:
        types = sorted(by_type)
        count_series = [("count", [(t, Decimal(by_type[t]["count"])) for t in types])]
        charts.append("<h3>Discrepancies by type</h3>" + _bars(count_series, types, title="discrepancies by type"))
        currencies = sorted({c for t in types for c in by_type[t]["amount"]})
        amount_series = [(c, [(t, Decimal(by_type[t]["amount"].get(c, "0")).copy_abs()) for t in types])
                         for c in currencies]
        if amount_series:
            charts.append("<h3>Discrepancy amounts by type</h3>"
                          + _bars(amount_series, types, title="discrepancy amounts by type"))
    totals = [[cur, *[values.get(k, "") for k in ("settled_gross", "settled_refunds", "fees", "chargebacks",
                                                  "chargeback_fees", "deposit", "posted_receipts", "posted_refunds")]]
              for cur, values in sorted(report.get("totals", {}).items())]
    journals = [[j["batch_id"], j["currency"], j["debits"], j["credits"], j["deposit"], j["ref"]]
                for j in report.get("journals", [])]
    refused = [[j["batch_id"], j["currency"], j["deposit"], j["reason"]] for j in report.get("journals_refused", [])]
    items = report.get("discrepancies", {}).get("items", [])[:500]
    discrepancies = [[i.get("type"), i.get("txn") or "", i.get("order_ref") or "", i.get("kind"), i.get("currency"),
                      i.get("line_cents") if i.get("line_cents") is not None else "",
                      i.get("post_cents") if i.get("post_cents") is not None else "", i.get("ref") or ""]
                     for i in items]
    status = escape(str(report.get("status", "")))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Reconciliation {escape(day)}</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#f3f3f3}}
td:first-child,th:first-child{{text-align:left}}</style></head><body>
<h1>Settlement reconciliation, {escape(report.get("gateway", ""))}, {escape(day)}</h1>
<p>Run {escape(report.get("run_id", ""))}: <strong>{status}</strong>.</p>
<h2>Counts</h2>{_table(["measure", "value"], [[k, v] for k, v in counts.items()])}
<h2>Totals</h2>{_table(["currency", "settled gross", "settled refunds", "fees", "chargebacks", "chargeback fees",
                         "deposit", "posted receipts", "posted refunds"], totals)}
<h2>Journals posted</h2>{_table(["batch", "currency", "debits", "credits", "deposit", "back-office ref"], journals)}
{("<h2>Journals refused (a case each)</h2>" + _table(["batch", "currency", "deposit", "reason"], refused))
 if refused else ""}
<h2>Charts</h2>{"".join(charts) or "<p>Nothing to chart.</p>"}
<h2>Discrepancies ({report.get("discrepancies", {}).get("total", 0)})</h2>
{_table(["type", "transaction", "order", "kind", "currency", "settled (minor units)", "posted (minor units)",
         "back-office ref"], discrepancies)}
</body></html>
"""
