"""Case reports for audit: one transaction's explanation, rules, decision history and lineage
as JSON, self-contained HTML (works offline) and PDF (charts drawn with matplotlib's
object-oriented API, no browser), and batches of cases as a ZIP with a CSV summary.

Every report carries the SHA-256 of its content: the case record as canonical JSON (sorted
keys, UTF-8, no spaces) without the `content_sha256` field. The JSON export is that record, so
an auditor can recompute the hash printed on the PDF or HTML from the JSON of the same case.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import date, datetime
from pathlib import Path

import numpy as np

from . import cases, explain, plots
from .errors import RiskdeskError
from .export import escape, safe_csv_bytes
from .i18n import t

FORMATS = ("pdf", "html", "json")
CJK_FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
HISTORY_ROWS = 50


def _jsonable(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def content_hash(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "content_sha256"}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def case_record(store, model_id: str, transaction_id: str, dataset: str | None = None, lang: str = "en") -> dict:
    """The case as one JSON-ready dict (design.md fields first), with its content hash."""
    e = explain.explain(store, model_id, transaction_id, dataset, lang)
    history = e.pop("history")
    record = {
        "transaction_id": e["transaction_id"], "model_id": model_id, "score": e["score"], "margin": e["margin"],
        "base_value": e["base_value"], "contributions": e["contributions"], "reasons": e["reasons"],
        "rules_fired": e["rules_fired"], "decision": e["decision"], "thresholds": e["thresholds"],
        "transaction": e["transaction"],
        "model": {"model_id": model_id, "kind": e["model_kind"], "test_metrics": e["model_test_metrics"],
                  "dataset": e["dataset"], "dataset_id": e["dataset_id"], "source_sha256": e["source_sha256"],
                  "feature_version": e["feature_version"]},
        "history": history.drop(columns=["is_this"]).tail(HISTORY_ROWS).to_dict("records"),
        "review_decisions": cases.history(store, e["dataset_id"], transaction_id),
        "language": lang, "generated_at": datetime.now().isoformat(sep=" ", timespec="seconds"),
    }
    record = _jsonable(record)
    record["content_sha256"] = content_hash(record)
    return record


def to_json(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False, indent=1, sort_keys=False).encode("utf-8")


# -- HTML ------------------------------------------------------------------------------------------

def _history_frame(record: dict):
    import pandas as pd
    frame = pd.DataFrame(record["history"])
    if frame.empty:
        return frame
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    frame["is_this"] = frame["transaction_id"].astype(str) == record["transaction_id"]
    return frame


def _figure_html(fig, include_js) -> str:
    # Plotly writes "<" in the figure's JSON as \u003c, so text from the data cannot end the script.
    return fig.to_html(full_html=False, include_plotlyjs=include_js, config={"displaylogo": False})


def to_html(record: dict, plotly_js: str | bool = True) -> bytes:
    """A self-contained HTML report (plotly.js inline by default, so it works offline; pass
    'directory' for batches that ship one plotly.min.js beside the files)."""
    lang = record["language"]
    tr = lambda key, **kw: escape(t(key, lang, **kw))  # noqa: E731
    figures = []
    if record["contributions"]:
        figures.append(_figure_html(plots.waterfall(record, lang), plotly_js))
        plotly_js = False
    history = _history_frame(record)
    if not history.empty:
        figures.append(_figure_html(plots.customer_history(history, lang), plotly_js))
    tx_rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(explain.format_value(v) if isinstance(v, float) else v)}</td></tr>"
                      for k, v in record["transaction"].items())
    reasons = "".join(f"<li>{escape(r)}</li>" for r in record["reasons"])
    rules = "".join(f"<tr><td>{escape(r['rule_id'])} v{escape(r['version'])}</td><td>{escape(r['name'])}</td>"
                    f"<td><code>{escape(r['expression'])}</code></td><td>{escape(t('band.' + r['action'], lang))}</td>"
                    f"<td>{escape(r['score'])}</td></tr>" for r in record["rules_fired"]) \
        or f"<tr><td colspan=5>{tr('case.no_rules')}</td></tr>"
    decisions = "".join(f"<tr><td>{escape(d['decided_at'])}</td><td>{escape(t('decision.' + d['decision'], lang))}</td>"
                        f"<td>{escape(d['reviewer'])}</td><td>{escape(d['note'])}</td><td>{escape(d['model_id'])}</td></tr>"
                        for d in record["review_decisions"]) or f"<tr><td colspan=5>{tr('case.no_decisions')}</td></tr>"
    contribs = "".join(f"<tr><td>{escape(c['feature'])}</td><td>{escape(explain.format_value(c['value']))}</td>"
                       f"<td>{c['shap']:+.4f}</td></tr>" for c in record["contributions"][:25])
    m = record["model"]
    metrics = m["test_metrics"]
    page = f"""<!DOCTYPE html>
<html lang="{'zh-CN' if lang == 'zh' else 'en'}"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'self' file: 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data:; font-src data:">
<title>{tr('case.title')} {escape(record['transaction_id'])}</title>
<style>body{{font-family:system-ui,"Noto Sans CJK SC",sans-serif;margin:2em;max-width:1100px;color:#222}}
table{{border-collapse:collapse;margin:0.5em 0 1.5em}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}
th{{background:#f4f4f4}}.band{{font-weight:bold;font-size:1.3em}}.hash{{font-family:monospace;font-size:0.85em;color:#555}}</style>
</head><body>
<h1>{tr('case.title')}: {escape(record['transaction_id'])}</h1>
<p class="band">{tr('case.decision')}: {escape(t('band.' + record['decision'], lang))} · {tr('case.score')} {record['score']:.4f}
 · {tr('case.margin')} {record['margin']:.3f} · {tr('case.base')} {record['base_value']:.3f}</p>
<h2>{tr('case.reasons')}</h2><ul>{reasons}</ul>
{''.join(figures)}
<h2>{tr('case.rules')}</h2><table><tr><th>{tr('rules.col.id')}</th><th>{tr('rules.col.name')}</th><th>{tr('rules.col.expression')}</th><th>{tr('rules.col.action')}</th><th>{tr('rules.col.score')}</th></tr>{rules}</table>
<h2>{tr('case.transaction')}</h2><table>{tx_rows}</table>
<h2>{tr('case.contributions')}</h2><table><tr><th>{tr('case.feature')}</th><th>{tr('case.value')}</th><th>SHAP</th></tr>{contribs}</table>
<h2>{tr('case.decisions')}</h2><table><tr><th>{tr('case.time')}</th><th>{tr('case.decision')}</th><th>{tr('case.reviewer')}</th><th>{tr('case.note')}</th><th>{tr('case.model')}</th></tr>{decisions}</table>
<h2>{tr('case.lineage')}</h2><table>
<tr><th>{tr('case.model')}</th><td>{escape(m['model_id'])} ({escape(t('kind.' + m['kind'], lang))})</td></tr>
<tr><th>{tr('case.test_metrics')}</th><td>AUC {_num(metrics.get('auc'))} · AP {_num(metrics.get('average_precision'))} · KS {_num(metrics.get('ks'))}</td></tr>
<tr><th>{tr('case.dataset')}</th><td>{escape(m['dataset'])} (id {escape(m['dataset_id'])})</td></tr>
<tr><th>{tr('case.source_sha')}</th><td class="hash">{escape(m['source_sha256'])}</td></tr>
<tr><th>{tr('case.feature_version')}</th><td>{escape(m['feature_version'])}</td></tr>
<tr><th>{tr('case.generated')}</th><td>{escape(record['generated_at'])}</td></tr>
<tr><th>{tr('case.content_sha')}</th><td class="hash">{escape(record['content_sha256'])}</td></tr></table>
<p class="hash">{tr('case.hash_help')}</p>
</body></html>"""
    return page.encode("utf-8")


def _num(value) -> str:
    return "—" if value is None else f"{value:.3f}"


# -- PDF ---------------------------------------------------------------------------------------------

# Punctuation the core PDF fonts lack, as Latin-1; other text outside Latin-1 needs the CJK font.
_LATIN = str.maketrans({"–": "-", "—": "-", "…": "...", "▲": "+", "▼": "-", "‘": "'", "’": "'", "“": '"', "”": '"',
                        "≥": ">=", "≤": "<=", "→": "->"})


def _needs_cjk(record: dict) -> bool:
    text = json.dumps(record, ensure_ascii=False).translate(_LATIN)
    return any(ord(ch) > 0xFF for ch in text)


def _png(fig) -> io.BytesIO:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)   # fixed margins: a "tight" bbox costs a second draw
    buf.seek(0)
    return buf


def _mpl_fonts():
    import matplotlib
    matplotlib.rcParams["font.family"] = ["DejaVu Sans", "Noto Sans CJK SC", "sans-serif"]
    matplotlib.rcParams["axes.unicode_minus"] = False


def waterfall_png(record: dict) -> io.BytesIO:
    """The waterfall drawn with matplotlib's object-oriented API (no pyplot state)."""
    from matplotlib.figure import Figure
    _mpl_fonts()
    items = plots.waterfall_items(record, record["language"])
    fig = Figure(figsize=(7.5, 0.32 * len(items) + 1.2))
    ax = fig.add_subplot()
    running = 0.0
    for i, (label, value, measure) in enumerate(items):
        y = len(items) - 1 - i
        if measure == "absolute":
            left, width, colour, running = 0.0, value, "#777777", value
        elif measure == "total":
            left, width, colour = 0.0, running, "#555555"
        else:
            left, width, colour = running, value, plots.FRAUD if value > 0 else plots.NORMAL
            running += value
        ax.barh(y, width, left=left, color=colour)
        ax.text(left + width, y, f" {value:+.2f}" if measure == "relative" else f" {value:.2f}", va="center", fontsize=7)
    ax.set_yticks(range(len(items)), [i[0] for i in items][::-1], fontsize=7)
    ax.axvline(0, color="#999", linewidth=0.8)
    ax.set_xlabel(t("plot.log_odds", record["language"]), fontsize=8)
    ax.set_title(t("plot.waterfall_title", record["language"], score=f"{record['score']:.4f}",
                   margin=f"{record['margin']:.2f}"), fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    height = fig.get_figheight()
    fig.subplots_adjust(left=0.36, right=0.93, top=1 - 0.45 / height, bottom=0.55 / height)
    return _png(fig)


def history_png(record: dict) -> io.BytesIO | None:
    import pandas as pd
    from matplotlib.figure import Figure
    frame = _history_frame(record)
    if frame.empty:
        return None
    _mpl_fonts()
    fig = Figure(figsize=(7.5, 2.6))
    ax = fig.add_subplot()
    channel = frame["channel"].fillna("—") if "channel" in frame else None
    for name, part in (frame.groupby(channel) if channel is not None else [("", frame)]):
        ax.scatter(part["timestamp"], part["amount"], s=14, label=str(name))
    this = frame[frame["is_this"]]
    ax.scatter(this["timestamp"], this["amount"], s=120, marker="*", color=plots.FRAUD, edgecolors="black",
               label=t("plot.this_transaction", record["language"]))
    ax.set_yscale("log")
    ax.set_title(t("plot.history_title", record["language"]), fontsize=9)
    ax.set_ylabel(t("plot.amount", record["language"]), fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="upper left", ncol=4)
    if frame["timestamp"].max() - frame["timestamp"].min() >= pd.Timedelta(days=1):
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
        locator = AutoDateLocator(maxticks=6)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    fig.subplots_adjust(left=0.1, right=0.98, top=0.88, bottom=0.16)
    return _png(fig)


def to_pdf(record: dict) -> bytes:
    """The case as PDF (fpdf2), the content SHA-256 printed on every page's footer."""
    from fpdf import FPDF
    lang = record["language"]
    cjk = _needs_cjk(record) and CJK_FONT.exists()

    class Report(FPDF):
        def footer(self):
            self.set_y(-12)
            self.set_font(family, size=7)
            self.cell(0, 5, f"{t('case.content_sha', lang)}: {record['content_sha256']}   -   {self.page_no()}",
                      align="C")

    pdf = Report(format="A4")
    if cjk:
        pdf.add_font("cjk", fname=str(CJK_FONT), collection_font_number=2)   # Noto Sans CJK SC
        family = "cjk"
    else:
        family = "helvetica"
    pdf.set_auto_page_break(True, margin=16)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    def text(s: str) -> str:
        return s if cjk else s.translate(_LATIN).encode("latin-1", "replace").decode("latin-1")

    def heading(s: str, size: int = 12):
        pdf.set_font(family, size=size, style="" if cjk else "B")
        pdf.ln(2)
        pdf.multi_cell(width, 7, text(s), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(family, size=9)

    def line(s: str):
        pdf.multi_cell(width, 5, text(s), new_x="LMARGIN", new_y="NEXT")

    heading(f"{t('case.title', lang)}: {record['transaction_id']}", 15)
    line(f"{t('case.decision', lang)}: {t('band.' + record['decision'], lang)}   {t('case.score', lang)} "
         f"{record['score']:.4f}   {t('case.margin', lang)} {record['margin']:.3f}   {t('case.base', lang)} "
         f"{record['base_value']:.3f}")
    line(f"{t('case.generated', lang)}: {record['generated_at']}")
    heading(t("case.reasons", lang))
    for r in record["reasons"]:
        line(r)
    if record["contributions"]:
        pdf.image(waterfall_png(record), x=pdf.l_margin, w=width * 0.95)
    picture = history_png(record)
    if picture is not None:
        pdf.image(picture, x=pdf.l_margin, w=width * 0.95)
    heading(t("case.rules", lang))
    for r in record["rules_fired"] or []:
        line(f"{r['rule_id']} v{r['version']} [{t('band.' + r['action'], lang)}, {r['score']:g}] {r['name']}: {r['expression']}")
    if not record["rules_fired"]:
        line(t("case.no_rules", lang))
    heading(t("case.transaction", lang))
    for k, v in record["transaction"].items():
        line(f"{k}: {explain.format_value(v) if isinstance(v, float) else v}")
    heading(t("case.decisions", lang))
    for d in record["review_decisions"]:
        line(f"{d['decided_at']}  {t('decision.' + d['decision'], lang)}  {d['reviewer']}  ({d['model_id']}): {d['note']}")
    if not record["review_decisions"]:
        line(t("case.no_decisions", lang))
    heading(t("case.lineage", lang))
    m = record["model"]
    metrics = m["test_metrics"]
    line(f"{t('case.model', lang)}: {m['model_id']} ({t('kind.' + m['kind'], lang)})")
    line(f"{t('case.test_metrics', lang)}: AUC {_num(metrics.get('auc'))}  AP {_num(metrics.get('average_precision'))}  "
         f"KS {_num(metrics.get('ks'))}  ({metrics.get('rows')} / {metrics.get('frauds')})")
    line(f"{t('case.dataset', lang)}: {m['dataset']} (id {m['dataset_id']})")
    line(f"{t('case.source_sha', lang)}: {m['source_sha256']}")
    line(f"{t('case.feature_version', lang)}: {m['feature_version']}")
    line(f"{t('case.content_sha', lang)}: {record['content_sha256']}")
    line(t("case.hash_help", lang))
    return bytes(pdf.output())


def render(record: dict, fmt: str, plotly_js: str | bool = True) -> bytes:
    if fmt == "json":
        return to_json(record)
    if fmt == "html":
        return to_html(record, plotly_js)
    if fmt == "pdf":
        return to_pdf(record)
    raise RiskdeskError(f"format must be one of {', '.join(FORMATS)} (got {fmt!r})")


def write_case(store, model_id: str, transaction_id: str, out, fmt: str | None = None, dataset: str | None = None,
               lang: str = "en") -> dict:
    """Export one case to a file; the format comes from --format or the file's extension."""
    out = Path(out)
    fmt = (fmt or out.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise RiskdeskError(f"{out.name}: give --format pdf|html|json or an --out ending in .pdf, .html or .json")
    record = case_record(store, model_id, transaction_id, dataset, lang)
    data = render(record, fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return {"out": str(out), "format": fmt, "bytes": len(data), "transaction_id": record["transaction_id"],
            "model_id": model_id, "score": record["score"], "decision": record["decision"],
            "content_sha256": record["content_sha256"]}


def batch_zip(store, model_id: str, transaction_ids: list[str], formats=FORMATS, lang: str = "en",
              progress=None) -> bytes:
    """Selected cases as a ZIP: per case the chosen formats, a shared plotly.min.js for the
    HTML files, and summary.csv (spreadsheet formulas neutralised)."""
    import pandas as pd
    if not transaction_ids:
        raise RiskdeskError("select at least one transaction to export")
    buf = io.BytesIO()
    summary = []
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if "html" in formats:
            from plotly.offline import get_plotlyjs
            zf.writestr("plotly.min.js", get_plotlyjs())
        for i, txid in enumerate(transaction_ids):
            record = case_record(store, model_id, txid, lang=lang)
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(txid))[:80]
            for fmt in formats:
                zf.writestr(f"case_{safe}.{fmt}", render(record, fmt, plotly_js="directory"))
            latest = record["review_decisions"][-1] if record["review_decisions"] else {}
            summary.append({"transaction_id": record["transaction_id"], "score": record["score"],
                            "decision": record["decision"], "amount": record["transaction"].get("amount"),
                            "customer_id": record["transaction"].get("customer_id"),
                            "rules_fired": " ".join(r["rule_id"] for r in record["rules_fired"]),
                            "top_reason": record["reasons"][0] if record["reasons"] else "",
                            "review": latest.get("decision", ""), "reviewer": latest.get("reviewer", ""),
                            "note": latest.get("note", ""), "content_sha256": record["content_sha256"]})
            if progress:
                progress((i + 1) / len(transaction_ids), f"{i + 1}/{len(transaction_ids)}")
        zf.writestr("summary.csv", safe_csv_bytes(pd.DataFrame(summary)))
    return buf.getvalue()
