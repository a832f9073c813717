"""Loading transaction files (CSV, Parquet, Excel) into the workspace.

The work happens in DuckDB: the file is read by DuckDB's own readers into a staging table,
parsed with the SQL expressions of :mod:`core.parsing`, split into loaded rows and rejects
(each with its source row, raw values and reason), and committed in one transaction. Any
failure leaves the database exactly as it was.

Row numbers count like a spreadsheet or text editor: for CSV the file line (the header is
line 1), for Excel the sheet row, for Parquet the record number (first record is row 1).
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from . import parsing
from .errors import RiskdeskError
from .schema import (NUMBER_ROLES, REQUIRED_ROLES, ROLES, TEXT_ROLES, check_dataset_name, check_mapping,
                     suggest_mapping)
from .store import Store, quote_ident

MAX_COLUMNS = 2000
MAX_LINE_BYTES = 2_000_000
CHUNK = 4 << 20
PREVIEW_ROWS = 200
Progress = Callable[[float, str], None]

REASON_TEXT = {
    "missing_value": "{role} is empty",
    "not_a_number": "{role} {raw!r} is not a number",
    "not_a_timestamp": "{role} {raw!r} is not a date/time",
    "timestamp_out_of_range": "{role} {raw!r} is outside the years 1900-2200",
    "not_a_label": "{role} {raw!r} is not a label (use 1/0, true/false, yes/no, 是/否, fraud/normal)",
    "formula": "{role} {raw!r} is a spreadsheet formula, not a value",
    "duplicate_transaction_id": "transaction id {raw!r} appeared earlier in the file",
    "malformed_row": "the row does not fit the header: {raw}",
    "line_too_long": "the line is longer than 2 MB",
}


def describe_reason(reason: str, role: str | None, raw: str | None = None) -> str:
    """English text for a reject reason; without `raw`, the value is left out."""
    template = REASON_TEXT.get(reason, reason)
    if not isinstance(raw, str):
        template = template.replace(" {raw!r}", "").replace(": {raw}", "")
        raw = ""
    raw_short = raw if len(raw) <= 60 else raw[:57] + "..."
    return template.format(role=role or "", raw=raw_short)


@dataclass
class SourceInfo:
    """What a file is, as far as loading it is concerned."""
    path: Path
    name: str
    kind: str                       # csv | parquet | excel
    sha256: str
    size: int
    headers: list[str]
    dtypes: list[str]
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    sheets: list[str] = field(default_factory=list)
    newlines: int = 0
    quoted: bool = False
    suggested: dict[str, str] = field(default_factory=dict)


# -- file type and encoding ----------------------------------------------------------------

def _sniff_kind(path: Path, name: str) -> str:
    with open(path, "rb") as fh:
        head = fh.read(8)
        fh.seek(0, 2)
        size = fh.tell()
        if size >= 4:
            fh.seek(-4, 2)
            tail = fh.read(4)
        else:
            tail = b""
    if size == 0:
        raise RiskdeskError(f"{name} is empty")
    if head.startswith(b"PAR1"):
        if tail != b"PAR1":
            raise RiskdeskError(f"{name} is a truncated or damaged Parquet file (no Parquet footer)")
        return "parquet"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
        except zipfile.BadZipFile:
            raise RiskdeskError(f"{name} is a damaged ZIP/Excel file") from None
        if "xl/workbook.xml" in names:
            return "excel"
        raise RiskdeskError(f"{name} is a ZIP archive, not a CSV, Parquet or Excel file; unzip it first")
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise RiskdeskError(f"{name} is an old Excel .xls file; save it as .xlsx or CSV")
    return "csv"


def _utf8_multibyte(line: bytes) -> bool:
    try:
        line.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _scan_text(path: Path, name: str, encoding: str | None) -> tuple[str, str, int, bool]:
    """Hash the file, count lines and work out its encoding in one streaming pass.

    Returns (encoding, sha256, newline count, has a double quote). Raises on binary content or
    mixed encodings.
    """
    sha = hashlib.sha256()
    newlines = 0
    quoted = False
    with open(path, "rb") as fh:
        first = fh.read(CHUNK)
        fh.seek(0)
        if first.startswith(codecs.BOM_UTF16_LE) or first.startswith(codecs.BOM_UTF16_BE):
            detected = "utf-16"
        elif first.startswith(codecs.BOM_UTF8):
            detected = "utf-8-sig"
        else:
            detected = None
        if detected is None and b"\x00" in first:
            at = first.index(b"\x00")
            raise RiskdeskError(f"{name} is not a text file (binary content at byte {at})")
        stripped = first.lstrip()
        if stripped[:1] in (b"{", b"[") and encoding is None:
            raise RiskdeskError(f"{name} looks like JSON, not CSV; export the data as CSV, Parquet or Excel")
        want = (encoding or detected or "utf-8").lower()
        decoder = codecs.getincrementaldecoder(want)("strict")
        offset = 0
        utf8_failed_at = None
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            sha.update(chunk)
            newlines += chunk.count(b"\n")
            quoted = quoted or b'"' in chunk
            if utf8_failed_at is None:
                try:
                    decoder.decode(chunk, final=False)
                except UnicodeDecodeError as exc:
                    utf8_failed_at = offset + exc.start
                except LookupError:
                    raise RiskdeskError(f"unknown encoding {encoding!r}") from None
            offset += len(chunk)
        if utf8_failed_at is None:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8_failed_at = offset
    if utf8_failed_at is None:
        return want, sha.hexdigest(), newlines, quoted
    if encoding is not None or detected:
        line = _line_of_offset(path, utf8_failed_at)
        raise RiskdeskError(f"{name} line {line} is not valid {want} text")
    # Not UTF-8: GB18030 (a superset of GBK/GB2312), unless the file mixes encodings.
    _check_gb18030(path, name)
    return "gb18030", sha.hexdigest(), newlines, quoted


def _line_of_offset(path: Path, offset: int) -> int:
    count = 1
    with open(path, "rb") as fh:
        remaining = offset
        while remaining > 0:
            chunk = fh.read(min(CHUNK, remaining))
            if not chunk:
                break
            count += chunk.count(b"\n")
            remaining -= len(chunk)
    return count


def _check_gb18030(path: Path, name: str) -> None:
    """Raise if the file is not GB18030 text or mixes UTF-8 lines with GBK lines."""
    decoder = codecs.getincrementaldecoder("gb18030")("strict")
    first_utf8 = first_other = None
    line_no = 1
    carry = b""
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            try:
                decoder.decode(chunk, final=False)
            except UnicodeDecodeError:
                raise RiskdeskError(f"{name} is neither UTF-8 nor GBK/GB18030 text; "
                                    "save it as UTF-8 CSV") from None
            lines = (carry + chunk).split(b"\n")
            carry = lines.pop()
            for line in lines:
                if first_utf8 is None or first_other is None:
                    if max(line, default=0) >= 0x80:
                        if _utf8_multibyte(line):
                            first_utf8 = first_utf8 or line_no
                        else:
                            first_other = first_other or line_no
                line_no += 1
            if first_utf8 and first_other:
                break
        if carry and max(carry, default=0) >= 0x80:
            if _utf8_multibyte(carry):
                first_utf8 = first_utf8 or line_no
            else:
                first_other = first_other or line_no
    if first_utf8 and first_other:
        raise RiskdeskError(
            f"{name} mixes encodings: line {first_utf8} is UTF-8 but line {first_other} is not; "
            "save the whole file in one encoding")


def _transcode(path: Path, encoding: str, target: Path, max_chars: int | None = None) -> Path:
    """Re-encode a text file as UTF-8 (all of it, or whole lines up to max_chars for previews)."""
    with open(path, "rb") as src, open(target, "w", encoding="utf-8", newline="") as dst:
        reader = codecs.getreader(encoding)(src, errors="strict")
        if max_chars:
            text = reader.read(max_chars)
            dst.write(text[: text.rfind("\n") + 1] if len(text) == max_chars and "\n" in text else text)
            return target
        while True:
            text = reader.read(CHUNK)
            if not text:
                break
            dst.write(text)
    return target


def _sniff_delimiter(sample: str) -> str:
    lines = [ln for ln in sample.splitlines()[:50] if ln.strip()]
    best, best_score = ",", (-1, -1)
    for delim in (",", ";", "\t", "|"):
        try:
            counts = [len(row) for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=delim)]
        except csv.Error:
            continue
        if not counts or counts[0] < 2:
            continue
        agree = sum(1 for c in counts if c == counts[0]) / len(counts)
        score = (round(agree, 2), counts[0])
        if score > best_score:
            best, best_score = delim, score
    return best


def _unique_headers(raw: list) -> list[str]:
    headers: list[str] = []
    seen: dict[str, int] = {}
    for i, h in enumerate(raw):
        name = "" if h is None else str(h).strip()
        name = name or f"column_{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        seen.setdefault(name, 1)
        headers.append(name)
    return headers


def _check_width(name: str, headers: list[str]) -> None:
    if len(headers) > MAX_COLUMNS:
        raise RiskdeskError(f"{name} has {len(headers):,} columns; riskdesk reads at most {MAX_COLUMNS:,}")


# -- inspecting a file -----------------------------------------------------------------------

def inspect_source(path: str | Path, name: str | None = None, encoding: str | None = None,
                   sheet: str | None = None) -> SourceInfo:
    """Identify a file's kind, encoding, delimiter, sheets and headers; suggest a mapping."""
    path = Path(path)
    name = name or path.name
    if not path.is_file():
        raise RiskdeskError(f"{name}: no such file")
    kind = _sniff_kind(path, name)
    if kind == "csv":
        info = _inspect_csv(path, name, encoding)
    elif kind == "parquet":
        info = _inspect_parquet(path, name)
    else:
        info = _inspect_excel(path, name, sheet)
    _check_width(name, info.headers)
    info.suggested = suggest_mapping(info.headers)
    return info


def _file_sha(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            sha.update(chunk)
    return sha.hexdigest()


def _inspect_csv(path: Path, name: str, encoding: str | None) -> SourceInfo:
    enc, sha, newlines, quoted = _scan_text(path, name, encoding)
    with open(path, "r", encoding=enc, newline="") as fh:
        sample = fh.read(256 * 1024)
    first_line_end = sample.find("\n")
    if first_line_end == -1 and len(sample.encode("utf-8", "replace")) >= MAX_LINE_BYTES:
        raise RiskdeskError(f"{name}: the header line is longer than 2 MB")
    delim = _sniff_delimiter(sample)
    try:
        header = next(csv.reader(io.StringIO(sample), delimiter=delim), None)
    except csv.Error as exc:
        raise RiskdeskError(f"{name}: cannot read the header line ({exc})") from None
    if not header or all(not h.strip() for h in header):
        raise RiskdeskError(f"{name} has no header line")
    headers = _unique_headers(header)
    _check_width(name, headers)
    rest = sample[first_line_end + 1:] if first_line_end >= 0 else ""
    if not rest.strip():
        raise RiskdeskError(f"{name} has a header but no data rows")
    return SourceInfo(path=path, name=name, kind="csv", sha256=sha, size=path.stat().st_size,
                      headers=headers, dtypes=["VARCHAR"] * len(headers), encoding=enc,
                      delimiter=delim, newlines=newlines, quoted=quoted)


def _inspect_parquet(path: Path, name: str) -> SourceInfo:
    import duckdb
    con = duckdb.connect()
    try:
        desc = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
        rows = con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchone()[0]
    except duckdb.Error as exc:
        raise RiskdeskError(f"{name} is not a readable Parquet file ({str(exc).splitlines()[0][:120]})") from None
    finally:
        con.close()
    if rows == 0:
        raise RiskdeskError(f"{name} has columns but no data rows")
    return SourceInfo(path=path, name=name, kind="parquet", sha256=_file_sha(path),
                      size=path.stat().st_size, headers=[d[0] for d in desc],
                      dtypes=[str(d[1]) for d in desc])


def _excel_cell(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(value)
    return text if text.strip() else None


def _open_sheet(path: Path, name: str, sheet: str | None):
    import openpyxl
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises many kinds on damaged files
        raise RiskdeskError(f"{name} is not a readable Excel file ({type(exc).__name__})") from None
    sheets = list(wb.sheetnames)
    chosen = sheet or sheets[0]
    if chosen not in sheets:
        wb.close()
        raise RiskdeskError(f"{name} has no sheet {chosen!r} (sheets: {', '.join(sheets)})")
    return wb, wb[chosen], chosen, sheets


def _excel_rows(ws):
    """Yield (sheet row number, values) for non-empty rows."""
    for number, values in enumerate(ws.iter_rows(values_only=True), start=1):
        if values and any(v is not None and str(v).strip() != "" for v in values):
            yield number, values


def _inspect_excel(path: Path, name: str, sheet: str | None) -> SourceInfo:
    wb, ws, chosen, sheets = _open_sheet(path, name, sheet)
    try:
        rows = _excel_rows(ws)
        first = next(rows, None)
        if first is None:
            raise RiskdeskError(f"{name}: sheet {chosen!r} is empty")
        headers = _unique_headers(list(first[1]))
        _check_width(name, headers)
        if next(rows, None) is None:
            raise RiskdeskError(f"{name}: sheet {chosen!r} has a header but no data rows")
    finally:
        wb.close()
    return SourceInfo(path=path, name=name, kind="excel", sha256=_file_sha(path),
                      size=path.stat().st_size, headers=headers, dtypes=["VARCHAR"] * len(headers),
                      sheet=chosen, sheets=sheets)


# -- staging: the file as a relation of columns c0..cN plus _row ----------------------------

def _col(i: int) -> str:
    return f"c{i}"


class _Stage:
    """Temporary objects for one load or preview, on one cursor; dropped on close."""

    def __init__(self, cur):
        self.cur = cur
        self.token = uuid.uuid4().hex[:12]
        self.objects: list[tuple[str, str]] = []
        self.files: list[Path] = []
        self.csv_rejects: str | None = None
        self.excel_view: str | None = None

    def name(self, prefix: str) -> str:
        return f"{prefix}_{self.token}"

    def close(self) -> None:
        for kind, obj in reversed(self.objects):
            try:
                self.cur.execute(f"DROP {kind} IF EXISTS {obj}")
            except Exception:
                pass
        for f in self.files:
            f.unlink(missing_ok=True)


def _source_relation(stage: _Stage, info: SourceInfo, limit: int | None = None,
                     tmp_dir: Path | None = None, numbered: bool = True) -> tuple[str, list]:
    """SQL for the file as a relation: columns c0..cN plus _row (for CSV, the record number
    + 1, which equals the file line until malformed rows or quoted line breaks shift it).

    numbered=False leaves _row NULL: numbering with a window function makes DuckDB read the
    file on one thread, so a full load numbers rows afterwards from the table's rowid."""
    limit_sql = f" LIMIT {int(limit)}" if limit else ""
    row_number = "CAST(row_number() OVER () AS BIGINT)" if numbered else "CAST(NULL AS BIGINT)"
    if info.kind == "csv":
        file_path = info.path
        if info.encoding not in ("utf-8", "utf-8-sig"):
            target = (tmp_dir or info.path.parent) / f"transcoded_{stage.name('f')}.csv"
            stage.files.append(target)
            file_path = _transcode(info.path, info.encoding, target, max_chars=(1 << 20) if limit else None)
        columns = "{" + ", ".join(f"'{_col(i)}': '{info.dtypes[i]}'" for i in range(len(info.headers))) + "}"
        rejects, scans = stage.name(f"csvrej{len(stage.objects)}"), stage.name(f"csvscan{len(stage.objects)}")
        stage.objects += [("TABLE", rejects), ("TABLE", scans)]
        stage.csv_rejects = rejects
        return (f"(SELECT *, {row_number} + 1 AS _row FROM (SELECT * FROM read_csv(?, "
                f"delim=?, quote='\"', escape='\"', header=true, auto_detect=false, columns={columns}, "
                f"store_rejects=true, rejects_table='{rejects}', rejects_scan='{scans}', "
                f"max_line_size={MAX_LINE_BYTES}, null_padding=false, strict_mode=true){limit_sql}))",
                [str(file_path), info.delimiter])
    if info.kind == "parquet":
        select = ", ".join(f"{quote_ident(h)} AS {_col(i)}" for i, h in enumerate(info.headers))
        return (f"(SELECT *, {row_number} AS _row FROM "
                f"(SELECT {select} FROM read_parquet(?){limit_sql}))", [str(info.path)])
    if stage.excel_view is None:
        stage.excel_view = _register_excel(stage, info, limit)
    return f"(SELECT * FROM {stage.excel_view}{limit_sql})", []


def _register_excel(stage: _Stage, info: SourceInfo, limit: int | None) -> str:
    """Stream the sheet with openpyxl into an Arrow table of strings, registered as a view."""
    import pyarrow as pa
    wb, ws, _, _ = _open_sheet(info.path, info.name, info.sheet)
    width = len(info.headers)
    columns: list[list] = [[] for _ in range(width)]
    numbers: list[int] = []
    try:
        rows = _excel_rows(ws)
        next(rows, None)  # header
        for number, values in rows:
            numbers.append(number)
            for i in range(width):
                columns[i].append(_excel_cell(values[i]) if i < len(values) else None)
            if limit and len(numbers) >= limit:
                break
    finally:
        wb.close()
    arrow = pa.table({**{_col(i): pa.array(columns[i], pa.string()) for i in range(width)},
                      "_row": pa.array(numbers, pa.int64())})
    view = stage.name("arrow")
    stage.cur.register(view, arrow)
    stage.objects.append(("VIEW", view))
    return view


def _newline_count_expr(info: SourceInfo) -> str:
    """Line breaks inside a record's text fields."""
    return " + ".join([f"coalesce(length({_col(i)}) - length(replace({_col(i)}, chr(10), '')), 0)"
                       for i, dtype in enumerate(info.dtypes) if dtype == "VARCHAR"] or ["0"])


def _stage_source(stage: _Stage, info: SourceInfo, limit: int | None = None,
                  tmp_dir: Path | None = None) -> tuple[str, list[tuple]]:
    """The source as a temp table (c0..cN, _row with final row numbers). Returns (table,
    rows the CSV reader rejected as (line, error type, raw line))."""
    relation, params = _source_relation(stage, info, limit, tmp_dir)
    table = stage.name(f"src{len(stage.objects)}")
    nl = f", {_newline_count_expr(info)} AS _nl" if info.quoted and not limit else ""
    stage.cur.execute(f"CREATE TEMP TABLE {table} AS SELECT *{nl} FROM {relation}", params)
    stage.objects.append(("TABLE", table))
    if info.kind != "csv" or limit:
        return table, []
    structural, _ = _reader_rejects(stage)
    _shift_past_rejects(stage, table, "_row", [line for line, _, _ in structural])
    return table, _apply_line_breaks(stage, info, table, "_row", structural, bool(nl))


def _reader_rejects(stage: _Stage) -> tuple[list[tuple], list[tuple]]:
    """Rows DuckDB's CSV reader set aside: (structural [(line, error type, raw line)], cast
    failures of natively typed columns [(line, raw line)]). Lines count records (header = 1)."""
    rows = stage.cur.execute(
        f"SELECT line, bool_and(error_type = 'CAST'), min(error_type) FILTER (WHERE error_type <> 'CAST'), "
        f"min(csv_line) FROM {stage.csv_rejects} GROUP BY line ORDER BY line").fetchall()
    structural = [(line, etype, raw) for line, only_cast, etype, raw in rows if not only_cast]
    cast = [(line, raw) for line, only_cast, _, raw in rows if only_cast]
    return structural, cast


def _shift_past_rejects(stage: _Stage, table: str, row_col: str, reject_lines: list[int]) -> None:
    """Loaded records are numbered among themselves; move each past the rejected records
    before it so that it carries its record number in the file."""
    if not reject_lines:
        return
    adj = stage.name(f"adj{len(stage.objects)}")
    stage.cur.execute(f"CREATE TEMP TABLE {adj} (a BIGINT)")
    stage.objects.append(("TABLE", adj))
    stage.cur.executemany(f"INSERT INTO {adj} VALUES (?)",
                          [[line - k] for k, line in enumerate(sorted(set(reject_lines)))])
    stage.cur.execute(f"UPDATE {table} SET {row_col} = {row_col} + "
                      f"(SELECT count(*) FROM {adj} WHERE a <= {table}.{row_col})")


def _apply_line_breaks(stage: _Stage, info: SourceInfo, table: str, row_col: str, structural: list,
                       has_nl: bool) -> list[tuple]:
    """Turn record numbers into file lines where fields hold quoted line breaks (column _nl):
    each record moves down by the breaks of the records before it. Returns `structural`
    with its lines converted the same way."""
    if not has_nl:
        return structural
    records = stage.cur.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    if info.newlines <= records + len(structural) + 1:
        return structural
    cur = stage.cur
    lines = stage.name(f"lines{len(stage.objects)}")
    breaks = stage.name(f"breaks{len(stage.objects)}")
    cur.execute(f"CREATE TEMP TABLE {breaks} (rec BIGINT, nl BIGINT)")
    stage.objects += [("TABLE", breaks), ("TABLE", lines)]
    if structural:
        cur.executemany(f"INSERT INTO {breaks} VALUES (?, ?)",
                        [[line, (raw or "").count("\n")] for line, _, raw in structural])
    cur.execute(f"""CREATE TEMP TABLE {lines} AS
        SELECT rec, rec + coalesce(sum(nl) OVER (ORDER BY rec ROWS BETWEEN UNBOUNDED PRECEDING
                                                  AND 1 PRECEDING), 0) AS line
        FROM (SELECT {row_col} AS rec, _nl AS nl FROM {table} UNION ALL SELECT rec, nl FROM {breaks})""")
    cur.execute(f"UPDATE {table} SET {row_col} = l.line FROM {lines} l WHERE {table}.{row_col} = l.rec")
    moved = dict(cur.execute(f"SELECT rec, line FROM {lines} WHERE rec IN (SELECT rec FROM {breaks})").fetchall())
    return [(moved.get(line, line), etype, raw) for line, etype, raw in structural]


def _native_types(info: SourceInfo, mapping: dict[str, str], tmp_dir: Path) -> SourceInfo:
    """A copy of a CSV's info in which role columns whose first rows are all plain numbers or
    ISO timestamps are read natively typed by DuckDB's reader (much faster than parsing
    text). Values that then fail the reader's cast are re-parsed as text, row by row."""
    import dataclasses
    import duckdb
    candidates = {r: mapping[r] for r in ("timestamp", *NUMBER_ROLES) if r in mapping}
    if info.kind != "csv" or not candidates:
        return info
    index = {h: i for i, h in enumerate(info.headers)}
    con = duckdb.connect()
    stage = _Stage(con)
    try:
        table, _ = _stage_source(stage, info, limit=5000, tmp_dir=tmp_dir)
        checks = []
        for role, column in candidates.items():
            c = _col(index[column])
            if role == "timestamp":
                checks.append(f"count({c}) > 0 AND count({c}) = count(CASE WHEN year(TRY_CAST({c} AS TIMESTAMP)) "
                              f"BETWEEN {parsing.MIN_YEAR} AND {parsing.MAX_YEAR} THEN 1 END)")
            else:
                checks.append(f"count({c}) > 0 AND count({c}) = count(CASE WHEN isfinite(TRY_CAST({c} AS DOUBLE)) "
                              f"AND {c} = trim({c}) THEN 1 END)")
        flags = con.execute(f"SELECT {', '.join(checks)} FROM {table}").fetchone()
    finally:
        stage.close()
        con.close()
    dtypes = list(info.dtypes)
    for (role, column), native in zip(candidates.items(), flags):
        if native:
            dtypes[index[column]] = "TIMESTAMP" if role == "timestamp" else "DOUBLE"
    return dataclasses.replace(info, dtypes=dtypes)


def _recover_cast_rejects(stage: _Stage, info: SourceInfo, mapping: dict, table: str, cast: list,
                          with_nl: bool, tmp_dir: Path) -> None:
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
    import dataclasses
    text_info = dataclasses.replace(info, path=retry, encoding="utf-8", dtypes=["VARCHAR"] * len(info.headers))
    relation, params = _source_relation(stage, text_info)
    if with_nl:
        relation = f"(SELECT *, {_newline_count_expr(text_info)} AS _nl FROM {relation})"
    numbers = stage.name(f"castlines{len(stage.objects)}")
    stage.cur.execute(f"CREATE TEMP TABLE {numbers} (k BIGINT, line BIGINT)")
    stage.objects.append(("TABLE", numbers))
    stage.cur.executemany(f"INSERT INTO {numbers} VALUES (?, ?)", [[k + 2, line] for k, (line, _) in enumerate(cast)])
    parsed = _parse_sql(text_info, mapping, relation, with_nl)
    stage.cur.execute(f"INSERT INTO {table} SELECT p.* REPLACE (n.line AS source_row) FROM ({parsed}) p "
                      f"JOIN {numbers} n ON n.k = p.source_row", params)


# -- parsing ---------------------------------------------------------------------------------

def _parse_sql(info: SourceInfo, mapping: dict[str, str], relation: str, with_nl: bool = False,
               keep_raw: bool = False) -> str:
    """SELECT over `relation` giving source_row, every role (parsed, NULL if unmapped), the
    extras x_k, and _reason/_reason_role/_raw_value for rows that cannot load.

    Each value is parsed once in an inner query; the reasons are judged on those results."""
    index = {h: i for i, h in enumerate(info.headers)}
    inner = ["_row"] + (["_nl"] if with_nl else [])
    checks = []   # (condition on inner columns, reason, role), in order of precedence
    for role in ROLES:
        if role not in mapping:
            continue
        i = index[mapping[role]]
        col, dtype = _col(i), info.dtypes[i]
        inner.append(f"{parsing.role_expr(role, col, dtype)} AS r_{role}")
        if role in TEXT_ROLES and dtype == "VARCHAR":
            inner.append(f"r_{role} AS raw_{role}")  # the parsed text is the raw text
        elif role in REQUIRED_ROLES or role in NUMBER_ROLES or role in ("timestamp", "label"):
            inner.append(f"{parsing.text_expr(col, 'VARCHAR' if dtype == 'VARCHAR' else 'ANY')} AS raw_{role}")
        if role in REQUIRED_ROLES:
            checks.append((f"raw_{role} IS NULL", "missing_value", role))
        if role in NUMBER_ROLES or role in ("timestamp", "label"):
            bad = "not_a_number" if role in NUMBER_ROLES else (
                "not_a_timestamp" if role == "timestamp" else "not_a_label")
            checks.append((f"raw_{role} IS NOT NULL AND r_{role} IS NULL AND raw_{role} LIKE '=%'", "formula", role))
            checks.append((f"raw_{role} IS NOT NULL AND r_{role} IS NULL", bad, role))
        if role == "timestamp":
            checks.append((f"NOT (year(r_timestamp) BETWEEN {parsing.MIN_YEAR} AND {parsing.MAX_YEAR})",
                           "timestamp_out_of_range", role))
    extras = [h for h in info.headers if h not in mapping.values()]
    for k, h in enumerate(extras):
        i = index[h]
        expr = f"NULLIF(trim({_col(i)}), '')" if info.dtypes[i] == "VARCHAR" else _col(i)
        inner.append(f"{expr} AS x_{k}")
    if keep_raw:
        inner += [_col(i) for i in range(len(info.headers))]
    outer = ["_row AS source_row"]
    for role in ROLES:
        outer.append(f"r_{role} AS {role}" if role in mapping
                     else f"CAST(NULL AS {parsing.role_sql_type(role)}) AS {role}")
    outer += [f"x_{k}" for k in range(len(extras))]
    outer += (["_nl"] if with_nl else []) + ([_col(i) for i in range(len(info.headers))] if keep_raw else [])
    outer.append("CASE " + " ".join(f"WHEN {c} THEN '{r}'" for c, r, _ in checks) + " END AS _reason")
    outer.append("CASE " + " ".join(f"WHEN {c} THEN '{ro}'" for c, _, ro in checks) + " END AS _reason_role")
    outer.append("CASE " + " ".join(f"WHEN {c} THEN raw_{ro}" for c, _, ro in checks) + " END AS _raw_value")
    return f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM {relation})"


def preview_mapping(info: SourceInfo, mapping: dict[str, str], rows: int = 20):
    """The first rows: raw value and parsed value for each mapped role, plus the reject
    reason a row would get. Returns a pandas DataFrame."""
    import duckdb
    mapping = {r: c for r, c in mapping.items() if c}
    for role, column in mapping.items():
        if column not in info.headers:
            raise RiskdeskError(f"{info.name} has no column {column!r} for role {role}")
    con = duckdb.connect()
    stage = _Stage(con)
    try:
        table, _ = _stage_source(stage, info, limit=max(rows, 1), tmp_dir=Path(info.path).parent)
        if not mapping:
            return con.execute(f"SELECT _row AS row FROM {table} ORDER BY _row").df()
        index = {h: i for i, h in enumerate(info.headers)}
        raw_cols = ", ".join(f"{_col(index[c])} AS {quote_ident(r + ' (raw)')}" for r, c in mapping.items())
        parsed = ", ".join(quote_ident(r) for r in mapping)
        return con.execute(
            f"SELECT source_row AS row, {raw_cols}, {parsed}, _reason AS reason FROM "
            f"({_parse_sql(info, mapping, table, keep_raw=True)}) ORDER BY source_row").df()
    finally:
        stage.close()
        con.close()


def sample_rows(info: SourceInfo, rows: int = 20):
    """The first rows of a file with its own headers (all values as text)."""
    import duckdb
    con = duckdb.connect()
    stage = _Stage(con)
    try:
        table, _ = _stage_source(stage, info, limit=rows, tmp_dir=Path(info.path).parent)
        cols = ", ".join(f"{_col(i)} AS {quote_ident(h)}" for i, h in enumerate(info.headers))
        return con.execute(f"SELECT _row AS row, {cols} FROM {table} ORDER BY _row").df()
    finally:
        stage.close()
        con.close()


# -- the load --------------------------------------------------------------------------------

def find_by_sha(store: Store, sha256: str) -> list[dict]:
    return store.dicts("SELECT id, name, created_at FROM datasets WHERE source_sha256 = ? ORDER BY id",
                       [sha256])


def _resolve_mapping(info: SourceInfo, mapping: dict[str, str] | None) -> dict[str, str]:
    """The user's mapping completed with suggestions for roles (and columns) it leaves free."""
    if mapping:
        used = set(mapping.values())
        full = {r: c for r, c in info.suggested.items() if c not in used and r not in mapping}
        full.update(mapping)
    else:
        full = dict(info.suggested)
    return check_mapping({r: full[r] for r in ROLES if r in full}, info.headers, info.name)


def ingest(store: Store, path: str | Path, dataset: str, mapping: dict[str, str] | None = None,
           encoding: str | None = None, sheet: str | None = None, replace: bool = False,
           source_name: str | None = None, progress: Progress | None = None,
           actor: str = "cli", info: SourceInfo | None = None) -> dict:
    """Load a file as dataset NAME. Returns the summary in the command-line JSON shape plus
    the dataset id and a reject summary. Nothing is stored unless at least one row loads.

    The file is read straight into the new table inside one transaction; only the final
    catalogue step takes the write lock, so a long load does not hold up other writers."""
    report = progress or (lambda f, m: None)
    dataset = check_dataset_name(dataset)
    report(0.02, "inspecting")
    if info is None:
        info = inspect_source(path, source_name, encoding, sheet)
    mapping = _resolve_mapping(info, mapping)
    existing = store.dicts("SELECT id, table_name FROM datasets WHERE name = ?", [dataset])
    if existing and not replace:
        raise RiskdeskError(f"dataset {dataset!r} already exists; choose another name or replace it")
    same_file = [d for d in find_by_sha(store, info.sha256) if d["name"] != dataset]
    if same_file and not replace:
        raise RiskdeskError(f"{info.name} was already loaded as dataset {same_file[0]['name']!r} "
                            "(same SHA-256); replace it or skip")

    cur = store.cursor()
    stage = _Stage(cur)
    table = None
    try:
        new_id = cur.execute("SELECT nextval('dataset_id_seq')").fetchall()[0][0]
        table = f"tx_{int(new_id)}"
        report(0.1, "reading and parsing")
        tmp_dir = store.home / "tmp"
        fast = _native_types(info, mapping, tmp_dir)
        relation, params = _source_relation(stage, fast, tmp_dir=tmp_dir, numbered=info.kind == "excel")
        with_nl = info.kind == "csv" and info.quoted
        if with_nl:
            relation = f"(SELECT *, {_newline_count_expr(fast)} AS _nl FROM {relation})"
        # The new table is committed on its own (no catalogue entry yet, so nobody sees it):
        # work on committed rows is much cheaper than on a transaction's local storage. Any
        # failure below drops it again; a crash in between leaves an orphan that
        # Store() removes at the next start.
        cur.execute(f"CREATE TABLE {table} AS {_parse_sql(fast, mapping, relation, with_nl)}", params)
        cur.begin()
        if info.kind != "excel":
            cur.execute(f"UPDATE {table} SET source_row = rowid + {2 if info.kind == 'csv' else 1}")
        structural = []
        if info.kind == "csv":
            structural, cast = _reader_rejects(stage)
            _shift_past_rejects(stage, table, "source_row", [line for line, *_ in structural + cast])
            _recover_cast_rejects(stage, info, mapping, table, cast, with_nl, tmp_dir)
            structural = _apply_line_breaks(stage, info, table, "source_row", structural, with_nl)
        report(0.6, "checking duplicates")
        _mark_duplicates(cur, table)
        loaded, bad = cur.execute(f"SELECT count(*) FILTER (WHERE _reason IS NULL), "
                                  f"count(*) FILTER (WHERE _reason IS NOT NULL) FROM {table}").fetchone()
        rejected = bad + len(structural)
        if loaded == 0:
            raise RiskdeskError(f"no row of {info.name} could be loaded: {rejected:,} rows rejected, e.g. "
                                f"{'line' if info.kind == 'csv' else 'row'} {_first_reject(cur, table, structural)}")
        report(0.75, "recording rejects")
        _store_rejects(stage, info, new_id, table, structural, bad, tmp_dir)
        if bad:
            cur.execute(f"DELETE FROM {table} WHERE _reason IS NOT NULL")
        for column in ("_reason", "_reason_role", "_raw_value") + (("_nl",) if with_nl else ()):
            cur.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        extras = _type_extras(cur, table, info, mapping)
        stats = cur.execute(f"SELECT min(timestamp), max(timestamp), count(label), coalesce(sum(label), 0) "
                            f"FROM {table}").fetchone()
        report(0.9, "storing")
        with store.locked():
            existing = store.dicts("SELECT id, table_name FROM datasets WHERE name = ?", [dataset])
            if existing and not replace:
                raise RiskdeskError(f"dataset {dataset!r} was created meanwhile; choose another name")
            for old in existing:
                _drop_dataset(cur, old["id"], old["table_name"])
            cur.execute(
                "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [new_id, dataset, table, info.name, info.sha256, info.size, info.kind, info.encoding,
                 info.delimiter, info.sheet, datetime.now(), json.dumps(mapping, ensure_ascii=False),
                 json.dumps(extras, ensure_ascii=False), json.dumps(info.headers, ensure_ascii=False),
                 loaded, rejected, stats[0], stats[1], stats[2], stats[3]])
            store.audit(cur, actor, "replace_dataset" if existing else "ingest", "dataset", new_id,
                        {"name": dataset, "source": info.name, "sha256": info.sha256,
                         "rows_loaded": loaded, "rows_rejected": rejected})
            cur.commit()
            table = None  # committed: nothing to undo
    except BaseException:
        try:
            cur.rollback()
        except Exception:
            pass
        if table is not None:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        raise
    finally:
        stage.close()
        cur.close()
    report(1.0, "done")
    return {"dataset": dataset, "dataset_id": int(new_id), "rows_loaded": int(loaded),
            "rows_rejected": int(rejected), "mapping": mapping,
            "reject_reasons": reject_summary(store, int(new_id))}


def _mark_duplicates(cur, table: str) -> None:
    """Repeated transaction ids: the first (by source row) loads, later ones are rejected."""
    dupes = cur.execute(f"SELECT count(transaction_id) - count(DISTINCT transaction_id) "
                        f"FROM {table} WHERE _reason IS NULL").fetchone()[0]
    if dupes:
        cur.execute(f"""UPDATE {table} SET _reason = 'duplicate_transaction_id',
                _reason_role = 'transaction_id', _raw_value = transaction_id
            FROM (SELECT source_row AS rr, row_number() OVER (PARTITION BY transaction_id ORDER BY source_row) AS k
                  FROM {table} WHERE _reason IS NULL) d
            WHERE {table}.source_row = d.rr AND d.k > 1""")


def _store_rejects(stage: _Stage, info: SourceInfo, dataset_id: int, table: str, structural: list,
                   bad: int, tmp_dir: Path) -> None:
    """Rejected rows with their whole raw row as JSON (header -> value). Raw rows are read
    again from the source only when some rows were rejected after parsing."""
    cur = stage.cur
    if bad:
        raw, _ = _stage_source(stage, info, tmp_dir=tmp_dir)
        pairs = ", ".join(f"?, r.{_col(i)}" for i in range(len(info.headers)))
        cur.execute(f"INSERT INTO rejects SELECT ?, t.source_row, t._reason, t._reason_role, t._raw_value, "
                    f"json_object({pairs}) FROM {table} t LEFT JOIN {raw} r ON r._row = t.source_row "
                    f"WHERE t._reason IS NOT NULL ORDER BY t.source_row",
                    [dataset_id, *info.headers])
    for line, etype, raw_line in structural:
        code = "line_too_long" if "LINE SIZE" in etype else "malformed_row"
        raw_line = None if raw_line is None else raw_line[:2000]
        cur.execute("INSERT INTO rejects VALUES (?, ?, ?, NULL, ?, ?)", [dataset_id, line, code, raw_line, raw_line])


def _type_extras(cur, table: str, info: SourceInfo, mapping: dict) -> list[dict]:
    """Extra columns: text that is numeric in every loaded row becomes DOUBLE."""
    index = {h: i for i, h in enumerate(info.headers)}
    extras = [h for h in info.headers if h not in mapping.values()]
    meta = []
    text_cols = [k for k, h in enumerate(extras) if info.dtypes[index[h]] == "VARCHAR"]
    numeric: set[int] = set()
    if text_cols:
        flags = cur.execute("SELECT " + ", ".join(
            f"count(x_{k}) > 0 AND count(x_{k}) = count(TRY_CAST(x_{k} AS DOUBLE))" for k in text_cols)
            + f" FROM {table}").fetchone()
        numeric = {k for k, flag in zip(text_cols, flags) if flag}
    for k, h in enumerate(extras):
        dtype = info.dtypes[index[h]]
        if k in numeric:
            cur.execute(f"ALTER TABLE {table} ALTER COLUMN x_{k} TYPE DOUBLE USING TRY_CAST(x_{k} AS DOUBLE)")
            dtype = "DOUBLE"
        elif parsing.is_numeric_type(dtype):
            dtype = "DOUBLE" if dtype.upper().startswith(("FLOAT", "DOUBLE", "REAL", "DECIMAL")) else dtype
        meta.append({"column": f"x_{k}", "source": h, "type": dtype})
    return meta


def _first_reject(cur, table: str, structural: list) -> str:
    row = cur.execute(f"SELECT source_row, _reason, _reason_role, _raw_value FROM {table} "
                      f"WHERE _reason IS NOT NULL ORDER BY source_row LIMIT 1").fetchone()
    candidates = []
    if row:
        candidates.append((row[0], describe_reason(row[1], row[2], row[3])))
    if structural:
        line, etype, raw = structural[0]
        code = "line_too_long" if "LINE SIZE" in etype else "malformed_row"
        candidates.append((line, describe_reason(code, None, (raw or "")[:60])))
    if not candidates:
        return "?"
    number, text = min(candidates)
    return f"{number}: {text}"


def _drop_dataset(cur, dataset_id: int, table_name: str) -> None:
    if not re.fullmatch(r"tx_\d+", table_name):
        raise RiskdeskError(f"refusing to drop unexpected table {table_name!r}")
    cur.execute(f"DROP TABLE IF EXISTS {table_name}")
    for (feat,) in cur.execute("SELECT table_name FROM feature_sets WHERE dataset_id = ?", [dataset_id]).fetchall():
        if re.fullmatch(r"feat_\d+_[0-9a-f]+", feat):
            cur.execute(f"DROP TABLE IF EXISTS {feat}")
    cur.execute("DELETE FROM feature_sets WHERE dataset_id = ?", [dataset_id])
    cur.execute("DELETE FROM rejects WHERE dataset_id = ?", [dataset_id])
    cur.execute("DELETE FROM datasets WHERE id = ?", [dataset_id])


def reject_summary(store: Store, dataset_id: int) -> list[dict]:
    """Reject counts by reason and role, most frequent first, with the first row of each."""
    return store.dicts(
        "SELECT reason, role, count(*) AS rows, min(source_row) AS first_row FROM rejects "
        "WHERE dataset_id = ? GROUP BY reason, role ORDER BY rows DESC, reason", [dataset_id])


def save_upload(store: Store, name: str, fileobj) -> Path:
    """Copy an uploaded file object into the workspace's uploads folder; returns its path."""
    import shutil

    safe = re.sub(r"[^\w.\-]", "_", Path(name).name)[-80:] or "upload"
    target = store.home / "uploads" / f"{uuid.uuid4().hex[:8]}_{safe}"
    with open(target, "wb") as out:
        shutil.copyfileobj(fileobj, out, CHUNK)
    return target


def default_dataset_name(file_name: str) -> str:
    """A valid dataset name derived from a file name."""
    stem = re.sub(r"[^\w .()\-]", "_", Path(file_name).stem).strip(" ._-")
    stem = stem.replace("..", "_")[:64]
    return stem if stem and re.match(r"^\w", stem) else "dataset"
