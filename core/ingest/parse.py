"""Parsing values inside DuckDB: SQL expressions that turn raw column values into canonical
types, the options that steer them, and the one SELECT that parses a staged file into roles,
extras and reject reasons.

Every builder takes an already-quoted column expression and its DuckDB type and returns an
SQL expression that yields the parsed value or NULL when the value cannot be read. The same
expressions serve the ingest and the mapping preview, so what the preview shows is what loads.

Options (ParseOptions, stored with the dataset): a time column may be an offset (a number of
seconds, minutes, hours or days from an origin); text dates like 08/03/2020 are read month-first
or day-first as the column's own values decide; amounts may use a decimal comma (1.234,56).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..errors import RiskdeskError
from ..schema import NUMBER_ROLES, ROLES, TEXT_ROLES, VALUE_REQUIRED_ROLES
from ..store import connect, quote_ident
from .read import SourceInfo, Stage, col, newline_count_expr, source_relation, stage_source

# Microseconds per unit of an offset time column.
TIME_UNITS = {"s": 1_000_000, "ms": 1_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
# Offset 0 of an offset time column unless the user gives an origin: a Monday at midnight, so
# hour of day and day of week follow the offsets as they would from the start of a week.
DEFAULT_TIME_ORIGIN = "2024-01-01 00:00:00"
DATE_ORDERS = ("mdy", "dmy")


@dataclass(frozen=True)
class ParseOptions:
    """How values are read, beyond what each value says for itself."""
    time_unit: str | None = None          # the time column is an offset in this unit ...
    time_origin: str | None = None        # ... from this moment (DEFAULT_TIME_ORIGIN if None)
    date_order: str = "mdy"               # text dates like 08/03/2020: month-first or day-first
    decimal_comma: tuple[str, ...] = ()   # number roles written with a decimal comma (1.234,56)

    def __post_init__(self):
        if self.time_unit is not None and self.time_unit not in TIME_UNITS:
            raise RiskdeskError(f"time unit {self.time_unit!r} is not one of {', '.join(TIME_UNITS)}")
        if self.time_origin is not None:
            try:
                datetime.fromisoformat(self.time_origin.strip())
            except ValueError:
                raise RiskdeskError(f"time origin {self.time_origin!r} is not like \"2024-01-01 00:00:00\"") from None
        if self.date_order not in DATE_ORDERS:
            raise RiskdeskError(f"date order {self.date_order!r} is not one of {', '.join(DATE_ORDERS)}")

    @property
    def origin(self) -> str:
        return str(datetime.fromisoformat((self.time_origin or DEFAULT_TIME_ORIGIN).strip()))

    def public(self) -> dict:
        out = dataclasses.asdict(self)
        out["decimal_comma"] = list(self.decimal_comma)
        if self.time_unit:
            out["time_origin"] = self.origin
        return out

    @classmethod
    def from_public(cls, data: dict | str | None) -> "ParseOptions":
        data = json.loads(data) if isinstance(data, str) else (data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["decimal_comma"] = tuple(values.get("decimal_comma") or ())
        return cls(**values)

NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "REAL")

# Currency symbols or codes, optional sign, digits with optional thousands separators
# (comma, full-width comma, apostrophe or space), optional decimals; "(12.50)" is negative.
AMOUNT_REGEX = (
    r"\(?[-+]?\s*(?:[¥￥$€£]|RMB|CNY|USD|EUR|HKD)?\s*[-+]?\s*"
    r"(?:(?:\d{1,3}(?:[,，' ]\d{3})+|\d+)(?:\.\d+)?|\.\d+)"
    r"\s*(?:元|[¥￥$€£]|RMB|CNY|USD|EUR|HKD)?\)?"
)

YMD_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M", "%Y-%m-%d"]
# Dates with the year last, after '/' and '.' became '-': month-first or day-first.
YEAR_LAST_FORMATS = {"mdy": ["%m-%d-%Y %H:%M:%S", "%m-%d-%Y %H:%M", "%m-%d-%Y"],
                     "dmy": ["%d-%m-%Y %H:%M:%S", "%d-%m-%Y %H:%M", "%d-%m-%Y"]}
TIMESTAMP_FORMATS = YMD_FORMATS + YEAR_LAST_FORMATS["mdy"]
# A date with the year last ("8/3/2020 6:18", "13.01.2019"): groups day-or-month, day-or-month.
YEAR_LAST_REGEX = r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})\b"
TRUE_WORDS = ("1", "1.0", "true", "t", "yes", "y", "是", "fraud", "欺诈", "risk", "风险", "oui", "ja", "sí", "si")
FALSE_WORDS = ("0", "0.0", "false", "f", "no", "n", "否", "normal", "正常", "legit",
               "legitimate", "genuine", "non", "nein")

# Epoch magnitudes: below 1e11 is seconds (1973..5138), up to 1e14 milliseconds.
_EXCEL_MIN, _EXCEL_MAX = 20000, 80000   # Excel serial days: 1954-10-03 .. 2119-01-10
_EXCEL_EPOCH_OFFSET = 25569             # serial of 1970-01-01


def sql_literal(text: str) -> str:
    """An SQL string literal (single quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def _sql_list(words) -> str:
    return ", ".join(sql_literal(w) for w in words)


def is_numeric_type(dtype: str) -> bool:
    return dtype.upper().startswith(NUMERIC_TYPES) or dtype.upper().startswith("DECIMAL")


def text_expr(col: str, dtype: str = "VARCHAR") -> str:
    """Trimmed text; empty becomes NULL. Integral floats from typed files lose their '.0'."""
    if dtype.upper() in ("FLOAT", "DOUBLE", "REAL"):
        return (f"CASE WHEN {col} = trunc({col}) AND abs({col}) < 1e18 "
                f"THEN CAST(CAST({col} AS BIGINT) AS VARCHAR) ELSE CAST({col} AS VARCHAR) END")
    if dtype.upper() == "VARCHAR":
        return f"NULLIF(trim({col}), '')"
    return f"NULLIF(trim(CAST({col} AS VARCHAR)), '')"


def number_expr(col: str, dtype: str = "VARCHAR", decimal_comma: bool = False) -> str:
    """A finite DOUBLE, or NULL when the value is not a number. With `decimal_comma`, '.' and
    spaces group thousands and ',' marks the decimals (1.234,56)."""
    if is_numeric_type(dtype):
        return f"CASE WHEN isfinite(CAST({col} AS DOUBLE)) THEN CAST({col} AS DOUBLE) END"
    s = f"trim(CAST({col} AS VARCHAR))"
    if decimal_comma:
        s = f"replace(replace({s}, '.', ''), ',', '.')"
    fast = f"TRY_CAST({s} AS DOUBLE)"
    cleaned = (f"TRY_CAST(regexp_replace(replace({s}, '(', '-'), '[^0-9.\\-]', '', 'g') AS DOUBLE)")
    return (f"CASE WHEN isfinite({fast}) THEN {fast} "
            f"WHEN regexp_full_match({s}, {sql_literal(AMOUNT_REGEX)}) AND isfinite({cleaned}) THEN {cleaned} END")


def _epoch_expr(v: str) -> str:
    return (f"CASE WHEN {v} BETWEEN {_EXCEL_MIN} AND {_EXCEL_MAX} "
            f"THEN make_timestamp(CAST(round(({v} - {_EXCEL_EPOCH_OFFSET}) * 86400000000) AS BIGINT)) "
            f"WHEN {v} >= 1e8 AND {v} < 1e11 THEN make_timestamp(CAST(round({v} * 1000000) AS BIGINT)) "
            f"WHEN {v} >= 1e11 AND {v} < 1e14 THEN make_timestamp(CAST(round({v} * 1000) AS BIGINT)) END")


def offset_expr(col: str, dtype: str, unit: str, origin: str) -> str:
    """origin + value x unit, for a time column of offsets; NULL if not a number (or beyond
    about 3,000 years, which the year check then rejects anyway)."""
    v = number_expr(col, dtype)
    factor = TIME_UNITS[unit]
    return (f"CASE WHEN abs({v}) * {factor} < 1e17 THEN CAST({sql_literal(origin)} AS TIMESTAMP) + "
            f"to_microseconds(CAST(round({v} * {factor}) AS BIGINT)) END")


def timestamp_expr(col: str, dtype: str = "VARCHAR", date_order: str = "mdy") -> str:
    """A naive TIMESTAMP, or NULL. Accepts ISO, 2024/01/05 13:22:01, 2024年1月5日, compact
    20240105[132201], 08/03/2020 18:05 (month-first, or day-first with date_order="dmy"),
    epoch seconds/milliseconds by magnitude and Excel serial days."""
    d = dtype.upper()
    if d.startswith("TIMESTAMP WITH TIME ZONE") or d == "TIMESTAMPTZ":
        return f"CAST(timezone('UTC', {col}) AS TIMESTAMP)"
    if d.startswith("TIMESTAMP") or d == "DATE":
        return f"CAST({col} AS TIMESTAMP)"
    if is_numeric_type(d):
        return _epoch_expr(f"CAST({col} AS DOUBLE)")
    s = f"trim(CAST({col} AS VARCHAR))"
    # Zone suffixes are dropped (timestamps are naive wall-clock times).
    unzoned = f"regexp_replace({s}, '(\\d:\\d\\d(?::\\d\\d(?:\\.\\d+)?)?)\\s*(?:Z|UTC|[+-]\\d\\d:?\\d\\d)$', '\\1')"
    normalised = (f"trim(regexp_replace(regexp_replace({unzoned}, '[/.年月]', '-', 'g'), "
                  f"'[日T]', ' ', 'g'))")
    formats = "[" + _sql_list(YMD_FORMATS + YEAR_LAST_FORMATS[date_order]) + "]"
    # DuckDB's own cast takes ISO forms (and drops a zone offset, keeping the wall clock).
    return (
        f"CASE WHEN TRY_CAST({col} AS TIMESTAMP) IS NOT NULL THEN TRY_CAST({col} AS TIMESTAMP) "
        f"WHEN {s} IS NULL OR {s} = '' THEN NULL "
        f"WHEN regexp_full_match({s}, '\\d{{14}}') THEN try_strptime({s}, '%Y%m%d%H%M%S') "
        f"WHEN regexp_full_match({s}, '\\d{{8}}') THEN try_strptime({s}, '%Y%m%d') "
        f"WHEN TRY_CAST({s} AS DOUBLE) IS NOT NULL THEN {_epoch_expr(f'TRY_CAST({s} AS DOUBLE)')} "
        f"ELSE COALESCE(TRY_CAST({unzoned} AS TIMESTAMP), try_strptime({normalised}, {formats})) END"
    )


def label_expr(col: str, dtype: str = "VARCHAR") -> str:
    """1 (fraud), 0 (normal) or NULL (unlabelled or not understood)."""
    d = dtype.upper()
    if d == "BOOLEAN":
        return f"CAST({col} AS INTEGER)"
    if is_numeric_type(d):
        return f"CASE WHEN {col} = 1 THEN 1 WHEN {col} = 0 THEN 0 END"
    s = f"lower(trim(CAST({col} AS VARCHAR)))"
    return (f"CASE WHEN {s} IN ({_sql_list(TRUE_WORDS)}) THEN 1 "
            f"WHEN {s} IN ({_sql_list(FALSE_WORDS)}) THEN 0 END")


def role_expr(role: str, col: str, dtype: str, options: ParseOptions | None = None) -> str:
    """The parse expression for a role."""
    options = options or ParseOptions()
    if role == "timestamp":
        if options.time_unit:
            return offset_expr(col, dtype, options.time_unit, options.origin)
        return timestamp_expr(col, dtype, options.date_order)
    if role in NUMBER_ROLES:
        return number_expr(col, dtype, role in options.decimal_comma)
    if role == "label":
        return label_expr(col, dtype)
    return text_expr(col, dtype)


def role_sql_type(role: str) -> str:
    if role == "timestamp":
        return "TIMESTAMP"
    if role in ("amount", "balance_before", "balance_after"):
        return "DOUBLE"
    if role == "label":
        return "INTEGER"
    return "VARCHAR"


# Timestamps outside this range are rejected as implausible.
MIN_YEAR, MAX_YEAR = 1900, 2200


# -- the parse of a staged file ------------------------------------------------------------

def parse_sql(info: SourceInfo, mapping: dict[str, str], relation: str, options: ParseOptions | None = None,
              with_nl: bool = False, keep_raw: bool = False) -> str:
    """SELECT over `relation` giving source_row, every role (parsed, NULL if unmapped), the
    extras x_k, and _reason/_reason_role/_raw_value for rows that cannot load.

    Each value is parsed once in an inner query; the reasons are judged on those results."""
    index = {h: i for i, h in enumerate(info.headers)}
    inner = ["_row"] + (["_nl"] if with_nl else [])
    checks = []   # (condition on inner columns, reason, role), in order of precedence
    raw = {}      # each role's raw text, as an expression on inner columns
    for role in ROLES:
        if role not in mapping:
            continue
        i = index[mapping[role]]
        column, dtype = col(i), info.dtypes[i]
        inner.append(f"{role_expr(role, column, dtype, options)} AS r_{role}")
        typed = _never_empty_text(dtype)
        if role in TEXT_ROLES and dtype == "VARCHAR":
            inner.append(f"r_{role} AS raw_{role}")  # the parsed text is the raw text
        elif typed:
            # A number or a time is never empty text or a formula: its text is made only for
            # the rows that show it (casting every value costs seconds per 10M rows).
            inner.append(f"{column} AS n_{role}")
        else:
            inner.append(f"{text_expr(column, 'VARCHAR' if dtype == 'VARCHAR' else 'ANY')} AS raw_{role}")
        raw[role] = text_expr(f"n_{role}", "ANY") if typed else f"raw_{role}"
        present = f"n_{role} IS NOT NULL" if typed else f"raw_{role} IS NOT NULL"
        if role in VALUE_REQUIRED_ROLES:
            checks.append((f"NOT {present}", "missing_value", role))
        if role in NUMBER_ROLES or role in ("timestamp", "label"):
            bad = "not_a_number" if role in NUMBER_ROLES else (
                "not_a_timestamp" if role == "timestamp" else "not_a_label")
            if not typed:
                checks.append((f"{present} AND r_{role} IS NULL AND raw_{role} LIKE '=%'", "formula", role))
            checks.append((f"{present} AND r_{role} IS NULL", bad, role))
        if role == "timestamp":
            checks.append((f"NOT (year(r_timestamp) BETWEEN {MIN_YEAR} AND {MAX_YEAR})",
                           "timestamp_out_of_range", role))
    extras = [h for h in info.headers if h not in mapping.values()]
    for k, h in enumerate(extras):
        i = index[h]
        expr = f"NULLIF(trim({col(i)}), '')" if info.dtypes[i] == "VARCHAR" else col(i)
        inner.append(f"{expr} AS x_{k}")
    if keep_raw:
        inner += [col(i) for i in range(len(info.headers))]
    outer = ["_row AS source_row"]
    for role in ROLES:
        outer.append(f"r_{role} AS {role}" if role in mapping
                     else f"CAST(NULL AS {role_sql_type(role)}) AS {role}")
    outer += [f"x_{k}" for k in range(len(extras))]
    outer += (["_nl"] if with_nl else []) + ([col(i) for i in range(len(info.headers))] if keep_raw else [])
    outer.append("CASE " + " ".join(f"WHEN {c} THEN '{r}'" for c, r, _ in checks) + " END AS _reason")
    outer.append("CASE " + " ".join(f"WHEN {c} THEN '{ro}'" for c, _, ro in checks) + " END AS _reason_role")
    outer.append("CASE " + " ".join(f"WHEN {c} THEN {raw[ro]}" for c, _, ro in checks) + " END AS _raw_value")
    return f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM {relation})"


def _never_empty_text(dtype: str) -> bool:
    """Whether every value of this type is non-empty text that cannot start with '='."""
    d = dtype.upper()
    return is_numeric_type(d) or d.startswith(("TIMESTAMP", "DATE", "TIME", "BOOLEAN"))


def preview_mapping(info: SourceInfo, mapping: dict[str, str], rows: int = 20, options: ParseOptions | None = None):
    """The first rows: raw value and parsed value for each mapped role, plus the reject
    reason a row would get. Returns a pandas DataFrame."""
    mapping = {r: c for r, c in mapping.items() if c}
    for role, column in mapping.items():
        if column not in info.headers:
            raise RiskdeskError(f"{info.name} has no column {column!r} for role {role}")
    con = connect()
    stage = Stage(con)
    try:
        table, _ = stage_source(stage, info, limit=max(rows, 1), tmp_dir=Path(info.path).parent)
        if not mapping:
            return con.execute(f"SELECT _row AS row FROM {table} ORDER BY _row").df()
        index = {h: i for i, h in enumerate(info.headers)}
        raw_cols = ", ".join(f"{col(index[c])} AS {quote_ident(r + ' (raw)')}" for r, c in mapping.items())
        parsed = ", ".join(quote_ident(r) for r in mapping)
        return con.execute(
            f"SELECT source_row AS row, {raw_cols}, {parsed}, _reason AS reason FROM "
            f"({parse_sql(info, mapping, table, options, keep_raw=True)}) ORDER BY source_row").df()
    finally:
        stage.close()
        con.close()


def native_types(info: SourceInfo, mapping: dict[str, str], options: ParseOptions, profiles: dict) -> SourceInfo:
    """A copy of a CSV's info in which role columns whose profiled rows (core.ingest.infer) are
    all plain numbers or ISO timestamps are read natively typed by DuckDB's reader (much
    faster than parsing text). Values that then fail the reader's cast are re-parsed as text,
    row by row (recover_cast_rejects)."""
    if info.kind != "csv":
        return info
    dtypes = list(info.dtypes)
    for role in ("timestamp", *NUMBER_ROLES):
        if role not in mapping or role in options.decimal_comma:
            continue
        p = profiles[mapping[role]]
        if not p.values:
            continue
        if role == "timestamp" and not options.time_unit:
            if p.iso_times == p.values:
                dtypes[info.headers.index(mapping[role])] = "TIMESTAMP"
        elif p.plain_numbers == p.values:
            dtypes[info.headers.index(mapping[role])] = "DOUBLE"
    return dataclasses.replace(info, dtypes=dtypes)


def recover_cast_rejects(stage: Stage, info: SourceInfo, mapping: dict, options: ParseOptions, table: str,
                         cast: list, with_nl: bool, tmp_dir: Path) -> None:
    """Re-read the lines whose natively typed values failed the reader's cast as text, parse
    them with the full parsers and add them (loaded or with a reason) at their record number."""
    if not cast:
        return
    import csv as _csv
    retry = tmp_dir / f"retry_{stage.name('f')}.csv"
    stage.files.append(retry)
    with open(retry, "w", encoding="utf-8", newline="") as fh:
        _csv.writer(fh, delimiter=info.delimiter, lineterminator="\n").writerow(info.headers)
        for _, raw in cast:
            fh.write(raw.rstrip("\r\n") + "\n")
    text_info = dataclasses.replace(info, path=retry, encoding="utf-8", dtypes=["VARCHAR"] * len(info.headers))
    relation, params = source_relation(stage, text_info)
    if with_nl:
        relation = f"(SELECT *, {newline_count_expr(text_info)} AS _nl FROM {relation})"
    numbers = stage.name(f"castlines{len(stage.objects)}")
    stage.cur.execute(f"CREATE TEMP TABLE {numbers} (k BIGINT, line BIGINT)")
    stage.objects.append(("TABLE", numbers))
    stage.cur.executemany(f"INSERT INTO {numbers} VALUES (?, ?)", [[k + 2, line] for k, (line, _) in enumerate(cast)])
    parsed = parse_sql(text_info, mapping, relation, options, with_nl)
    stage.cur.execute(f"INSERT INTO {table} SELECT p.* REPLACE (n.line AS source_row) FROM ({parsed}) p "
                      f"JOIN {numbers} n ON n.k = p.source_row", params)
