"""Data health at load: warnings about what a file's columns and values mean for the analysis,
each saying what riskdesk did about it.

A warning is {"code", "column", "message", "params"}; the message is the English text of
core.i18n's "health.<code>" (the app shows it in the user's language from the same params).
Checks that look at the file before loading (`before_load`) come from the inference; the
rest (`after_load`) run as DuckDB aggregates over the new table inside the load's
transaction, and decide which extra columns are left out of the features (`use`: false):
personal free text, constant columns, row identifiers, very high-cardinality text and columns
that alone separate the label almost perfectly (likely leakage).
"""
from __future__ import annotations

from ..i18n import role_name, t
from ..schema import ID_ROLES, missing_families, normalise_header
from .infer import Inference
from .read import ENCODING_NAMES, SourceInfo

LEAK_AUC = 0.99
MAX_EXTRA_CATEGORIES = 100        # text extras with more distinct values are left out
LEAK_SAMPLE_ROWS = 200_000
GAP_DAYS = 7                      # a stretch without transactions this long is reported
# Header words of personal data kept out of features (normalised headers).
PERSONAL_WORDS = ("firstname", "lastname", "fullname", "surname", "street", "address", "job", "occupation",
                  "dob", "birth", "phone", "mobile", "ssn", "passport", "姓名", "名字", "地址", "住址",
                  "电话", "手机", "身份证", "证件", "职业", "生日", "出生")
PERSONAL_EXACT = ("first", "last", "name", "job", "dob", "city", "姓名")


def warning(code: str, column: str | None = None, variant: str | None = None, **params) -> dict:
    """One warning in the ingest JSON shape (English message) with what the UI needs to say
    it in another language: the params and the text's variant ("health.<code>_<variant>")."""
    w = {"code": code, "column": column, "params": params, "variant": variant}
    w["message"] = render(w, "en")
    return w


def render(w: dict, lang: str) -> str:
    """A stored warning in the UI's language (lists of families and roles named in it too)."""
    key = f"health.{w['code']}" + (f"_{w['variant']}" if w.get("variant") else "")
    params = dict(w.get("params") or {})
    if isinstance(params.get("families"), list):
        params["families"] = ", ".join(t(f"family.{f}", lang) for f in params["families"])
    if isinstance(params.get("roles"), list):
        params["roles"] = ", ".join(role_name(r, lang) for r in params["roles"])
    if "unit" in params:
        params["unit"] = t(f"data.time.unit.{params['unit']}", lang)
    return t(key, lang, column=w.get("column") or "", **params)


# -- before loading: what the inference found --------------------------------------------------

def before_load(info: SourceInfo, inference: Inference) -> list[dict]:
    """Warnings from the file and its inferred reading: encoding, time offsets and date order,
    scientific-notation ids, generated transaction ids, feature families left out."""
    out = []
    mapping, profiles = inference.mapping, inference.profiles
    if info.encoding_detected:
        out.append(warning("encoding_detected", None, encoding=ENCODING_NAMES.get(info.encoding, info.encoding)))
    reading = inference.time
    if reading and reading.kind == "offset":
        out.append(warning("time_offset", reading.column, "default" if reading.origin_default else None,
                           unit=reading.options.time_unit, origin=reading.options.origin))
    if reading and reading.mixed:
        order = reading.options.date_order
        out.append(warning("mixed_date_order", reading.column, order, day_first=reading.day_first_only,
                           month_first=reading.month_first_only, rejected=reading.rejects_if(order)))
    elif reading and reading.ambiguous:
        out.append(warning("ambiguous_date_order", reading.column, reading.options.date_order,
                           rows=reading.year_last))
    for role in ID_ROLES:
        p = profiles.get(mapping.get(role, ""))
        if p is not None and p.scientific:
            out.append(warning("scientific_ids", p.column, role=role, rows=p.scientific, sample=p.values,
                               example=next((e for e in p.examples or [] if "e" in str(e).lower()), "")))
    if inference.options.decimal_comma:
        for role in inference.options.decimal_comma:
            out.append(warning("decimal_comma", mapping[role], role=role))
    if "transaction_id" not in mapping:
        out.append(warning("generated_ids"))
    lacking = missing_families(mapping)
    if lacking:
        out.append(warning("families_unavailable", None, families=[f["family"] for f in lacking],
                           roles=sorted({r for f in lacking for r in f["needs"]})))
    if "label" not in mapping:
        out.append(warning("no_label"))
    return out


# -- after loading: the stored rows ---------------------------------------------------------------

def after_load(cur, table: str, mapping: dict[str, str], extras: list[dict], rows: int) -> list[dict]:
    """Warnings from the loaded rows; marks extras left out of features (`use`, `why`)."""
    out = []
    out += _extras_health(cur, table, mapping, extras, rows)
    out += _amounts_and_balances(cur, table, mapping, rows)
    out += _time_gaps(cur, table)
    if "label" in mapping:
        out += _label_coverage(cur, table, mapping["label"])
    return out


def _is_personal(source: str) -> bool:
    norm = normalise_header(source)
    return norm in PERSONAL_EXACT or any(w in norm for w in PERSONAL_WORDS)


def _extras_health(cur, table: str, mapping: dict, extras: list[dict], rows: int) -> list[dict]:
    out = []
    if not extras:
        return out
    def aggregates(e: dict) -> str:
        c = e["column"]
        integral = f"bool_and({c} = floor({c}))" if e["type"] == "DOUBLE" else "NULL"
        # only text can hold e-mail addresses (a number's text costs a cast per row)
        emails = f"count(CASE WHEN contains({c}, '@') THEN 1 END)" if e["type"] == "VARCHAR" else "0"
        return (f"approx_count_distinct({c}), count({c}), {emails}, {integral}, "
                f"CAST(any_value({c}) AS VARCHAR)")

    # one scan of the table for every extra column, however wide the file
    stats = cur.execute("SELECT " + ", ".join(aggregates(e) for e in extras) + f" FROM {table}").fetchone()
    for k, e in enumerate(extras):
        distinct, present, emails, whole, example = stats[5 * k:5 * k + 5]
        e["distinct"] = int(distinct or 0)
        text = e["type"] == "VARCHAR"
        integral = e["type"] in ("BIGINT", "INTEGER", "HUGEINT") or bool(whole)
        why = None
        if present == 0 or distinct <= 1:
            why = "constant_column"
            out.append(warning(why, e["source"], value="" if example is None else example[:40]))
        elif text and (_is_personal(e["source"]) or emails > 0.5 * present):
            why = "personal_text"
            out.append(warning(why, e["source"]))
        elif text and distinct > MAX_EXTRA_CATEGORIES:
            why = "high_cardinality_text"
            out.append(warning(why, e["source"], distinct=int(distinct), limit=MAX_EXTRA_CATEGORIES))
        elif not text and integral and rows >= 100 and distinct >= 0.95 * present:
            why = "row_identifier"
            out.append(warning(why, e["source"]))
        e["use"] = why is None
        if why:
            e["why"] = why
    if "label" in mapping:
        for e in extras:
            if not e["use"]:
                continue
            auc = _separation(cur, table, e)
            if auc is not None and auc >= LEAK_AUC:
                e["use"], e["why"] = False, "label_leak"
                out.append(warning("label_leak", e["source"], auc=round(auc, 4)))
    return out


def _separation(cur, table: str, extra: dict) -> float | None:
    """How well the column alone ranks fraud above normal: max(AUC, 1 - AUC), ties counted
    half; text columns are ranked by their values' fraud rates. Missing values form their own
    group. On at most LEAK_SAMPLE_ROWS rows."""
    c = extra["column"]
    text = extra["type"] == "VARCHAR"
    key = f"coalesce(CAST({c} AS VARCHAR), chr(0))" if text else c
    order = "avg(label)" if text else "k"
    rows = cur.execute(f"""
        WITH s AS (SELECT {key} AS k, label FROM {table} WHERE label IS NOT NULL USING SAMPLE reservoir({LEAK_SAMPLE_ROWS} ROWS) REPEATABLE (42)),
        g AS (SELECT k, {order} AS o, count(*) FILTER (WHERE label = 1) AS pos,
                     count(*) FILTER (WHERE label = 0) AS neg FROM s GROUP BY k),
        r AS (SELECT pos, neg, coalesce(sum(neg) OVER (ORDER BY o NULLS FIRST ROWS BETWEEN UNBOUNDED PRECEDING
                                                        AND 1 PRECEDING), 0) AS below FROM g)
        SELECT sum(pos * (below + 0.5 * neg)), sum(pos), sum(neg) FROM r""").fetchone()
    above, pos, neg = rows
    if not pos or not neg:
        return None
    auc = float(above) / (float(pos) * float(neg))
    return max(auc, 1 - auc)


def _amounts_and_balances(cur, table: str, mapping: dict, rows: int) -> list[dict]:
    out = []
    non_positive = cur.execute(f"SELECT count(*) FILTER (WHERE amount <= 0) FROM {table}").fetchone()[0]
    if non_positive:
        out.append(warning("non_positive_amounts", mapping["amount"], rows=int(non_positive),
                           share=non_positive / max(rows, 1)))
    if "balance_before" in mapping and "balance_after" in mapping:
        off, both = cur.execute(f"""
            SELECT count(*) FILTER (WHERE least(abs(balance_before - amount - balance_after),
                                                abs(balance_before + amount - balance_after)) > 0.01),
                   count(*) FILTER (WHERE balance_before IS NOT NULL AND balance_after IS NOT NULL)
            FROM {table}""").fetchone()
        if both and off / both > 0.01:
            out.append(warning("balance_mismatch", mapping["balance_after"], rows=int(off), share=off / both))
    return out


def _time_gaps(cur, table: str) -> list[dict]:
    gap = cur.execute(f"""
        SELECT d, next_d, datediff('day', d, next_d) AS days FROM (
            SELECT d, lead(d) OVER (ORDER BY d) AS next_d FROM (SELECT DISTINCT CAST(timestamp AS DATE) AS d FROM {table}))
        WHERE next_d IS NOT NULL ORDER BY days DESC LIMIT 1""").fetchone()
    if gap and gap[2] > GAP_DAYS:
        return [warning("time_gap", None, start=str(gap[0]), end=str(gap[1]), days=int(gap[2]) - 1)]
    return []


def _label_coverage(cur, table: str, column: str) -> list[dict]:
    start, end, first, last, labelled, total = cur.execute(f"""
        SELECT min(timestamp), max(timestamp), min(timestamp) FILTER (WHERE label IS NOT NULL),
               max(timestamp) FILTER (WHERE label IS NOT NULL), count(label), count(*) FROM {table}""").fetchone()
    if labelled == 0:
        return [warning("no_labels", column)]
    span = (end - start).total_seconds() or 1
    covered = (last - first).total_seconds() / span
    if covered < 0.9 or labelled < 0.9 * total:
        return [warning("partial_labels", column, start=str(first.date()), end=str(last.date()),
                        share=labelled / total)]
    return []


def used_extras(extras: list[dict]) -> list[dict]:
    """The extras that features may use (older datasets have no `use` flag: all of them)."""
    return [e for e in extras if e.get("use", True)]

