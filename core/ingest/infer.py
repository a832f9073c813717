"""Suggesting the mapping of a file's columns to roles, from their headers and their values,
and how to read its times and numbers.

Each column is profiled on the first PROFILE_ROWS rows in one DuckDB query (uniqueness,
numbers, times, labels, scientific notation, decimal commas, words). A role's score is the
header hint (core.schema.header_hints: 1.0 exact, 0.75 contains) plus what the values say
(up to about 0.45, or a veto when they contradict the role). Roles are assigned greedily by
score; a column serves one role at most, and ties are broken by the column's name, so the
order of the columns never changes the suggestion. Values alone can suggest the transaction
id, the time, the amount and the label; the other roles need a header hint as well.

The time column is read as text dates, epoch numbers, or offsets from an origin (PaySim's
hourly `step`, IEEE's `TransactionDT` seconds). Dates with the year last (08/03/2020) are read
month-first or day-first as the whole column decides: any first field above 12 means
day-first, any second field above 12 month-first; when both occur, the reading that rejects
fewer rows wins and the counts are reported. Nothing here writes to the workspace.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import RiskdeskError
from ..store import connect
from ..schema import ROLES, check_mapping, header_hints, normalise_header
from .parse import (DEFAULT_TIME_ORIGIN, MAX_YEAR, MIN_YEAR, TIME_UNITS, YEAR_LAST_REGEX, ParseOptions, label_expr,
                    sql_literal, timestamp_expr)
from .read import SourceInfo, Stage, col, source_relation

PROFILE_ROWS = 5_000
ASSIGN_AT = 0.4            # least score that makes a suggestion
VALUE_ONLY_ROLES = ("transaction_id", "timestamp", "amount", "label")
# Header words that give an offset column's unit (normalised headers, checked in this order).
UNIT_HINTS = (("step", "h"), ("hour", "h"), ("hrs", "h"), ("minute", "m"), ("mins", "m"), ("days", "d"),
              ("day", "d"), ("millis", "ms"), ("msec", "ms"), ("sec", "s"), ("dt", "s"), ("time", "s"),
              ("elapsed", "s"), ("offset", "s"))
EPOCH_MIN, EPOCH_MAX = 1e8, 1e14          # epoch seconds .. milliseconds (parse._epoch_expr)
EXCEL_MIN, EXCEL_MAX = 20000, 80000       # Excel serial days


@dataclass
class Profile:
    """What the first PROFILE_ROWS values of a column look like."""
    column: str
    dtype: str
    values: int = 0            # non-empty values
    distinct: int = 0
    numeric: int = 0           # plain numbers (12.5, -3, 1e5)
    integral: int = 0
    positive: int = 0
    min: float | None = None
    max: float | None = None
    times: int = 0             # non-numeric values that read as a date/time
    year_last: int = 0         # dates like 08/03/2020 or 13.01.2019
    labels: int = 0            # values that read as a label
    label_ones: int = 0
    zero_one: int = 0          # exactly 0 or 1
    scientific: int = 0        # like 2.29E+15
    comma_decimal: int = 0     # like 1.234,56 or 12,5
    dot_decimal: int = 0       # like 1,234.56 or 12.5
    wordy: int = 0             # text without digits (names, words)
    spaced: int = 0            # text with a space inside (free text, names)
    plain_numbers: int = 0     # numbers exactly as DuckDB's CSV reader would type them (no spaces)
    iso_times: int = 0         # ISO timestamps DuckDB's CSV reader would type (years 1900-2200)
    examples: list = field(default_factory=list)

    def share(self, n: int) -> float:
        return n / self.values if self.values else 0.0


@dataclass
class Suggestion:
    """A suggested (or chosen) column for a role, how sure, and why: reasons are
    (code, params) pairs rendered by core.i18n ("infer.<code>")."""
    role: str
    column: str
    score: float
    reasons: list[tuple[str, dict]]
    chosen_by_user: bool = False

    @property
    def confidence(self) -> int:
        """0-99, for display."""
        return 99 if self.chosen_by_user else int(min(99, round(100 * self.score / 1.45)))

    def public(self) -> dict:
        return {"column": self.column, "confidence": self.confidence, "by_user": self.chosen_by_user,
                "reasons": [{"code": c, **p} for c, p in self.reasons]}


@dataclass
class TimeReading:
    """How the time column is read, and what the whole column says about date order."""
    column: str
    kind: str                      # text | epoch | offset | typed
    options: ParseOptions
    unit_reason: str | None = None     # header | span | user
    origin_default: bool = False
    day_first_only: int = 0        # rows with a first field above 12 (readable day-first only)
    month_first_only: int = 0      # rows with a second field above 12 (readable month-first only)
    year_last: int = 0             # rows with a year-last date

    @property
    def mixed(self) -> bool:
        return bool(self.day_first_only and self.month_first_only)

    @property
    def ambiguous(self) -> bool:
        return self.year_last > 0 and not self.day_first_only and not self.month_first_only

    def rejects_if(self, order: str) -> int:
        """Rows the reading `order` (mdy or dmy) would reject for their date order."""
        return self.month_first_only if order == "dmy" else self.day_first_only

    def public(self) -> dict:
        return {"column": self.column, "kind": self.kind, **self.options.public(),
                "origin_default": self.origin_default,
                "date_order_counts": {"day_first_only": self.day_first_only,
                                      "month_first_only": self.month_first_only, "year_last": self.year_last}}


@dataclass
class Inference:
    """The suggested mapping with its evidence, and the parse options."""
    mapping: dict[str, str]
    suggestions: dict[str, Suggestion]
    options: ParseOptions
    time: TimeReading | None
    profiles: dict[str, Profile]

    def public(self) -> dict:
        return {"mapping": self.mapping, "suggestions": {r: s.public() for r, s in self.suggestions.items()},
                "time": self.time.public() if self.time else None}


# -- profiles --------------------------------------------------------------------------------

def _values_sql(info: SourceInfo, table: str) -> str:
    """Each column once as raw text r{i}, trimmed text v{i} and a number n{i} (NULL if not one)."""
    cols = []
    for i in range(len(info.headers)):
        cols.append(f"CAST({col(i)} AS VARCHAR) AS r{i}")
        cols.append(f"NULLIF(trim(CAST({col(i)} AS VARCHAR)), '') AS v{i}")
        cols.append(f"TRY_CAST(NULLIF(trim(CAST({col(i)} AS VARCHAR)), '') AS DOUBLE) AS n{i}")
    return f"(SELECT {', '.join(cols)} FROM {table})"


def _cheap_stats(i: int) -> dict[str, str]:
    """Stats every column gets (no regular expressions, no date parsing)."""
    v, num, raw = f"v{i}", f"n{i}", f"r{i}"
    return {
        "values": f"count({v})",
        "distinct": f"count(DISTINCT {v})",
        "numeric": f"count(CASE WHEN isfinite({num}) THEN 1 END)",
        "integral": f"count(CASE WHEN {num} = floor({num}) THEN 1 END)",
        "positive": f"count(CASE WHEN {num} > 0 THEN 1 END)",
        "min": f"min(CASE WHEN isfinite({num}) THEN {num} END)",
        "max": f"max(CASE WHEN isfinite({num}) THEN {num} END)",
        "zero_one": f"count(CASE WHEN {v} IN ('0', '1', '0.0', '1.0') THEN 1 END)",
        "scientific": (f"count(CASE WHEN {num} IS NOT NULL AND (contains({v}, 'E') OR contains({v}, 'e')) AND "
                       f"regexp_full_match({v}, '[-+]?\\d(\\.\\d+)?[eE]\\+?\\d{{1,3}}') THEN 1 END)"),
        "_digit_text": f"count(CASE WHEN {num} IS NULL AND ascii({v}) BETWEEN 48 AND 57 THEN 1 END)",
        "_commas": f"count(CASE WHEN contains({v}, ',') THEN 1 END)",
        "spaced": f"count(CASE WHEN contains({v}, ' ') THEN 1 END)",
        "plain_numbers": f"count(CASE WHEN isfinite({num}) AND {raw} = {v} THEN 1 END)",
        "iso_times": (f"count(CASE WHEN {num} IS NULL AND year(TRY_CAST({raw} AS TIMESTAMP)) BETWEEN "
                      f"{MIN_YEAR} AND {MAX_YEAR} THEN 1 END)"),
        "examples": f"[min({v}), max({v})]",
    }


def _costly_stats(i: int, p: Profile, digit_text: int, commas: int) -> dict[str, str]:
    """Stats only the columns that may need them get: dates, labels, decimal commas, words."""
    v = f"v{i}"
    stats = {}
    if digit_text:
        stats["times"] = (f"count(CASE WHEN n{i} IS NULL AND ascii({v}) BETWEEN 48 AND 57 AND "
                          f"(({timestamp_expr(v, 'VARCHAR', 'mdy')}) IS NOT NULL "
                          f"OR regexp_matches({v}, {sql_literal(YEAR_LAST_REGEX)})) THEN 1 END)")
        stats["year_last"] = f"count(CASE WHEN regexp_matches({v}, {sql_literal(YEAR_LAST_REGEX)}) THEN 1 END)"
    if p.distinct <= 3:
        label = label_expr(v, "VARCHAR")
        stats["labels"] = f"count({label})"
        stats["label_ones"] = f"coalesce(sum({label}), 0)"
    if commas:
        stats["comma_decimal"] = (f"count(CASE WHEN regexp_full_match({v}, "
                                  f"'[-+]?(\\d{{1,3}}(\\.\\d{{3}})+|\\d+),\\d{{1,2}}(\\s*[^\\d\\s.,]{{1,3}})?') THEN 1 END)")
        stats["dot_decimal"] = (f"count(CASE WHEN regexp_full_match({v}, "
                                f"'[-+]?(\\d{{1,3}}(,\\d{{3}})+|\\d+)\\.\\d+(\\s*[^\\d\\s.,]{{1,3}})?') THEN 1 END)")
    if p.numeric < p.values:
        stats["wordy"] = f"count(CASE WHEN NOT regexp_matches({v}, '\\d') THEN 1 END)"
    return stats


def _run_stats(con, table: str, stats: dict[int, dict[str, str]]) -> dict[tuple[int, str], object]:
    keys = [(i, name) for i, named in stats.items() for name in named]
    if not keys:
        return {}
    sql = ", ".join(stats[i][name] for i, name in keys)
    return dict(zip(keys, con.execute(f"SELECT {sql} FROM {table}").fetchone()))


def profile_columns(info: SourceInfo, rows: int = PROFILE_ROWS) -> dict[str, Profile]:
    """Profiles of every column on the first `rows` rows: cheap stats for all columns in one
    query, then date, label and number-format stats for the columns that may need them."""
    profiles = {h: Profile(h, info.dtypes[i]) for i, h in enumerate(info.headers)}
    con = connect()
    stage = Stage(con)
    try:
        relation, params = source_relation(stage, info, limit=rows, tmp_dir=info.path.parent)
        table = stage.name("profile")
        con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM {_values_sql(info, relation)}", params)
        stage.objects.append(("TABLE", table))
        cheap = _run_stats(con, table, {i: _cheap_stats(i) for i in range(len(info.headers))})
        for (i, name), value in cheap.items():
            if not name.startswith("_"):
                setattr(profiles[info.headers[i]], name, value if value is not None or name in ("min", "max") else 0)
        costly = _run_stats(con, table, {i: _costly_stats(i, profiles[h], cheap[(i, "_digit_text")] or 0,
                                                          cheap[(i, "_commas")] or 0)
                                         for i, h in enumerate(info.headers)})
        for (i, name), value in costly.items():
            setattr(profiles[info.headers[i]], name, value or 0)
    finally:
        stage.close()
        con.close()
    for p in profiles.values():
        if p.dtype.upper().startswith(("TIMESTAMP", "DATE")):
            p.times = p.values
    return profiles


# -- scoring ---------------------------------------------------------------------------------------

def _numberish(p: Profile) -> int:
    """Values that read as numbers, counting decimal commas when they dominate."""
    return p.numeric + (p.comma_decimal if p.comma_decimal > p.dot_decimal else 0)


def _time_kind(p: Profile) -> str | None:
    """text | epoch | offset | typed for a column that can hold times, else None."""
    if p.dtype.upper().startswith(("TIMESTAMP", "DATE")):
        return "typed"
    if p.values and p.share(p.times) >= 0.5:
        return "text"
    if p.values and p.share(p.numeric) >= 0.95 and p.min is not None:
        if p.max >= EPOCH_MIN:
            return "epoch"     # seconds or milliseconds, by each value's magnitude
        if p.min >= EXCEL_MIN and p.max <= EXCEL_MAX and p.integral < p.numeric:
            return "epoch"     # Excel serial days
        return "offset"
    return None


def _value_evidence(role: str, p: Profile, hinted: bool) -> tuple[float, list[tuple[str, dict]]]:
    """What a column's values say about a role: (score, reasons). A negative score vetoes."""
    n = p.values
    if n == 0:
        return -1.0, [("empty", {})]
    uniq = p.distinct / n
    decimals = p.numeric and p.share(p.numeric - p.integral) > 0.5
    timeish = p.share(p.times) > 0.9
    if role == "transaction_id":
        if decimals or timeish or p.share(p.spaced) > 0.5:
            return -1.0, [("not_an_id", {})]
        if uniq >= 0.99:
            textual = p.share(p.numeric) < 0.5
            return (0.4 if textual else 0.25), [("unique", {"share": uniq})]
        return (-0.6 if uniq < 0.5 else 0.0), [("repeats", {"per_value": n / max(p.distinct, 1)})]
    if role in ("customer_id", "counterparty_id", "device_id"):
        if decimals or timeish:
            return -1.0, [("not_an_id", {})]
        if p.distinct < 20 and n >= 100:
            return (-0.5 if role == "customer_id" else 0.0), [("few_values", {"distinct": p.distinct})]
        if uniq <= 0.85:
            return 0.3, [("repeats", {"per_value": n / max(p.distinct, 1)})]
        return 0.0, [("unique", {"share": uniq})]
    if role == "timestamp":
        kind = _time_kind(p)
        if kind in ("text", "typed"):
            share = p.share(p.times)
            return (0.45 if share >= 0.95 else 0.2), [("time_text", {"share": share})]
        if kind in ("epoch", "offset") and hinted:
            return 0.3, [(f"time_{kind}", {"low": p.min, "high": p.max})]
        return (-1.0 if hinted else 0.0), [("not_time", {"share": p.share(p.times)})]
    if role in ("amount", "balance_before", "balance_after"):
        share = p.share(_numberish(p))
        if share < 0.5:
            return -1.0, [("not_numeric", {"share": share})]
        if share < 0.95:
            return 0.05, [("numeric", {"share": share})]
        reasons = [("numeric", {"share": share})]
        score = 0.2
        if role == "amount":
            if p.share(p.positive) >= 0.9 or p.comma_decimal > p.dot_decimal:
                score += 0.15
                reasons.append(("positive", {"share": p.share(p.positive)}))
            if p.share(p.numeric - p.integral + (p.comma_decimal if p.comma_decimal > p.dot_decimal else 0)) >= 0.1:
                score += 0.1
                reasons.append(("decimals", {}))
            if p.scientific or (p.min is not None and p.min >= EPOCH_MIN):
                score -= 0.4
        return score, reasons
    if role == "label":
        share = p.share(p.labels)
        if share >= 0.99 and p.distinct == 2:
            rate = p.label_ones / max(p.labels, 1)
            zero_one = p.share(p.zero_one) >= 0.99
            score = (0.4 if zero_one or hinted else 0.1) if rate < 0.5 else 0.1
            return score, [("binary", {"rate": rate})]
        # An exact label header with other values stays suggested: the load then says why.
        return (0.0 if hinted else -1.0), [("not_binary", {"distinct": p.distinct})]
    if role in ("channel", "transaction_type"):
        if p.distinct <= 50:
            return 0.2, [("few_values", {"distinct": p.distinct})]
        return (-0.5 if p.distinct > 200 else 0.0), [("many_values", {"distinct": p.distinct})]
    return 0.0, []


def score_roles(profiles: dict[str, Profile]) -> list[Suggestion]:
    """Every (role, column) pair worth considering, best first (ties by role order, then name)."""
    out = []
    for column, p in profiles.items():
        hints = header_hints(column)
        for role in ROLES:
            header = hints.get(role, 0.0)
            if header == 0 and role not in VALUE_ONLY_ROLES:
                continue
            exact = header > 0.9
            value, reasons = _value_evidence(role, p, hinted=header > 0)
            if value <= -1.0:
                if not exact:
                    continue
                # An exact header keeps its column even when the values disagree: the load
                # then names the rows (or the column) that cannot be read.
                value = 0.0
            total = header + value
            if total < ASSIGN_AT:
                continue
            if header:
                reasons = [("header_exact" if exact else "header_contains", {"header": column})] + reasons
            out.append(Suggestion(role, column, total, reasons))
    out.sort(key=lambda s: (-round(s.score, 6), ROLES.index(s.role), s.column))
    return out


def suggest(profiles: dict[str, Profile], fixed: dict[str, str] | None = None) -> dict[str, Suggestion]:
    """Role -> suggestion. Roles in `fixed` keep the user's column; the other roles get the
    best-scoring free column. The result does not depend on the order of the columns."""
    fixed = {r: c for r, c in (fixed or {}).items() if c}
    chosen: dict[str, Suggestion] = {}
    used = set(fixed.values())
    for role, column in fixed.items():
        chosen[role] = Suggestion(role, column, 1.45, [("chosen", {})], chosen_by_user=True)
    for s in score_roles(profiles):
        if s.role not in chosen and s.column not in used:
            chosen[s.role] = s
            used.add(s.column)
    return {r: chosen[r] for r in ROLES if r in chosen}


# -- the time column ----------------------------------------------------------------------------

def _unit_from_header(column: str) -> str | None:
    norm = normalise_header(column)
    return next((unit for word, unit in UNIT_HINTS if word in norm), None)


def _unit_from_span(p: Profile) -> str:
    """The smallest unit in which the column spans at least a day."""
    span = (p.max or 0) - (p.min or 0)
    for unit in ("s", "m", "h"):
        if span * TIME_UNITS[unit] >= 86_400_000_000:
            return unit
    return "d"


def _date_order_counts(info: SourceInfo, column: str) -> tuple[int, int, int]:
    """(day-first only, month-first only, year-last dates) over the whole column."""
    i = info.headers.index(column)
    con = connect()
    stage = Stage(con)
    try:
        relation, params = source_relation(stage, info, tmp_dir=info.path.parent)
        v = f"regexp_extract(CAST({col(i)} AS VARCHAR), {sql_literal(YEAR_LAST_REGEX)}, ['a', 'b'])"
        return tuple(int(x or 0) for x in con.execute(
            f"SELECT count(*) FILTER (WHERE TRY_CAST(d.a AS INTEGER) > 12), "
            f"count(*) FILTER (WHERE TRY_CAST(d.b AS INTEGER) > 12), count(*) FILTER (WHERE d.a <> '') "
            f"FROM (SELECT {v} AS d FROM {relation})", params).fetchone())
    finally:
        stage.close()
        con.close()


def read_time(info: SourceInfo, column: str, profile: Profile, unit: str | None = None,
              origin: str | None = None, date_order: str | None = None) -> TimeReading:
    """How to read the time column: the user's unit/origin/date order where given, else what
    the header and the values say. Raises where the user's choice cannot apply."""
    kind = _time_kind(profile)
    if unit and kind in ("text", "typed"):
        raise RiskdeskError(f"{info.name}: column {column!r} holds dates, not numbers; --time-unit applies "
                            "to offset times (a number of seconds, minutes, hours or days from an origin)")
    if origin and not unit and kind != "offset":
        raise RiskdeskError(f"{info.name}: --time-origin applies to offset times, and column {column!r} is not one; "
                            "give --time-unit too if it is")
    if unit and not origin:
        raise RiskdeskError(f"{info.name}: --time-unit {unit} needs --time-origin, the date and time that offset 0 "
                            f"of column {column!r} stands for (e.g. --time-origin \"{DEFAULT_TIME_ORIGIN}\")")
    if unit or kind == "offset":
        reason = "user" if unit else ("header" if _unit_from_header(column) else "span")
        unit = unit or _unit_from_header(column) or _unit_from_span(profile)
        options = ParseOptions(time_unit=unit, time_origin=origin or DEFAULT_TIME_ORIGIN)
        return TimeReading(column, "offset", options, reason, origin_default=not origin)
    reading = TimeReading(column, kind or "text", ParseOptions())
    if kind == "text" and profile.year_last:
        first, second, total = _date_order_counts(info, column)
        reading.day_first_only, reading.month_first_only, reading.year_last = first, second, total
        if date_order is None:
            if first or second:
                date_order = "dmy" if first > second else "mdy"
            else:
                dotted = any(re.match(r"^\s*\d{1,2}\.\d{1,2}\.\d{4}", str(e)) for e in profile.examples or [])
                date_order = "dmy" if dotted else "mdy"
    reading.options = ParseOptions(date_order=date_order or "mdy")
    return reading


# -- the whole inference -----------------------------------------------------------------------------

def decimal_comma_roles(mapping: dict[str, str], profiles: dict[str, Profile]) -> tuple[str, ...]:
    """Number roles whose column writes decimals with a comma (and never with a point)."""
    return tuple(r for r in ("amount", "balance_before", "balance_after")
                 if r in mapping and profiles[mapping[r]].comma_decimal > 0 and profiles[mapping[r]].dot_decimal == 0
                 and profiles[mapping[r]].comma_decimal >= profiles[mapping[r]].numeric - profiles[mapping[r]].integral)


def infer(info: SourceInfo, mapping: dict[str, str] | None = None, time_unit: str | None = None,
          time_origin: str | None = None, date_order: str | None = None,
          profiles: dict[str, Profile] | None = None, complete: bool = True) -> Inference:
    """The mapping (the user's roles kept, the rest suggested unless `complete` is False),
    validated, with the options for reading times and numbers. Raises with a one-line reason
    when the time or the amount cannot be found or read."""
    check_mapping(mapping or {}, info.headers, info.name, complete=False)
    profiles = profiles or profile_columns(info)
    suggestions = suggest(profiles, mapping) if complete else suggest({}, mapping)
    final = {r: s.column for r, s in suggestions.items()}
    if "timestamp" not in final:
        raise RiskdeskError(_no_time_message(info, profiles))
    check_mapping(final, info.headers, info.name)
    reading = read_time(info, final["timestamp"], profiles[final["timestamp"]], time_unit, time_origin, date_order)
    options = ParseOptions(time_unit=reading.options.time_unit, time_origin=reading.options.time_origin,
                           date_order=reading.options.date_order,
                           decimal_comma=decimal_comma_roles(final, profiles))
    reading.options = options
    return Inference(final, suggestions, options, reading, profiles)


def _no_time_message(info: SourceInfo, profiles: dict[str, Profile]) -> str:
    hinted = sorted((-header_hints(c).get("timestamp", 0), c) for c in profiles if header_hints(c).get("timestamp"))
    if hinted:
        p = profiles[hinted[0][1]]
        example = next((str(e) for e in (p.examples or [])), "")
        return (f"{info.name}: column {p.column!r} looks like the time but {p.times:,} of {p.values:,} values "
                f"read as a date/time (e.g. {example!r}); map the time with --map timestamp=COLUMN, or give "
                "--time-unit and --time-origin if it holds offsets")
    return (f"{info.name}: no column reads as a date/time; map the time with --map timestamp=COLUMN "
            "(or --time-unit and --time-origin for offsets)")
