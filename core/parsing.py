"""SQL expressions that parse raw column values into canonical types, inside DuckDB.

Every builder takes an already-quoted column expression and its DuckDB type and returns an
SQL expression that yields the parsed value or NULL when the value cannot be read. The same
expressions serve the ingest and the mapping preview, so what the preview shows is what loads.
"""
from __future__ import annotations

NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "REAL")

# Currency symbols or codes, optional sign, digits with optional thousands separators
# (comma, full-width comma, apostrophe or space), optional decimals; "(12.50)" is negative.
AMOUNT_REGEX = (
    r"\(?[-+]?\s*(?:[¥￥$€£]|RMB|CNY|USD|EUR|HKD)?\s*[-+]?\s*"
    r"(?:(?:\d{1,3}(?:[,，' ]\d{3})+|\d+)(?:\.\d+)?|\.\d+)"
    r"\s*(?:元|RMB|CNY|USD|EUR|HKD)?\)?"
)

TIMESTAMP_FORMATS = [
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M", "%Y-%m-%d",
    "%m-%d-%Y %H:%M:%S", "%m-%d-%Y %H:%M", "%m-%d-%Y",
]
TRUE_WORDS = ("1", "1.0", "true", "t", "yes", "y", "是", "fraud", "欺诈", "risk", "风险")
FALSE_WORDS = ("0", "0.0", "false", "f", "no", "n", "否", "normal", "正常", "legit",
               "legitimate", "genuine")

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


def number_expr(col: str, dtype: str = "VARCHAR") -> str:
    """A finite DOUBLE, or NULL when the value is not a number."""
    if is_numeric_type(dtype):
        return f"CASE WHEN isfinite(CAST({col} AS DOUBLE)) THEN CAST({col} AS DOUBLE) END"
    s = f"trim(CAST({col} AS VARCHAR))"
    fast = f"TRY_CAST({s} AS DOUBLE)"
    cleaned = (f"TRY_CAST(regexp_replace(replace({s}, '(', '-'), '[^0-9.\\-]', '', 'g') AS DOUBLE)")
    return (f"CASE WHEN isfinite({fast}) THEN {fast} "
            f"WHEN regexp_full_match({s}, {sql_literal(AMOUNT_REGEX)}) AND isfinite({cleaned}) THEN {cleaned} END")


def _epoch_expr(v: str) -> str:
    return (f"CASE WHEN {v} BETWEEN {_EXCEL_MIN} AND {_EXCEL_MAX} "
            f"THEN make_timestamp(CAST(round(({v} - {_EXCEL_EPOCH_OFFSET}) * 86400000000) AS BIGINT)) "
            f"WHEN {v} >= 1e8 AND {v} < 1e11 THEN make_timestamp(CAST(round({v} * 1000000) AS BIGINT)) "
            f"WHEN {v} >= 1e11 AND {v} < 1e14 THEN make_timestamp(CAST(round({v} * 1000) AS BIGINT)) END")


def timestamp_expr(col: str, dtype: str = "VARCHAR") -> str:
    """A naive TIMESTAMP, or NULL. Accepts ISO, 2024/01/05 13:22:01, 2024年1月5日, compact
    20240105[132201], epoch seconds/milliseconds by magnitude and Excel serial days."""
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
    formats = "[" + _sql_list(TIMESTAMP_FORMATS) + "]"
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


def role_expr(role: str, col: str, dtype: str) -> str:
    """The parse expression for a role."""
    if role == "timestamp":
        return timestamp_expr(col, dtype)
    if role in ("amount", "balance_before", "balance_after"):
        return number_expr(col, dtype)
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
