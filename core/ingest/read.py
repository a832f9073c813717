"""Reading transaction files: kind (CSV, Parquet, Excel), text encoding, delimiter, sheets and
headers, and the file as a DuckDB relation of columns c0..cN plus its row number.

Encodings: a byte-order mark decides; otherwise UTF-8 when the whole file is valid UTF-8;
otherwise charset-normalizer chooses among GB18030, Big5, Shift-JIS and Windows-1252/Latin-1
(UTF-16 without a mark when the bytes say so), and the whole file must then decode in that
encoding. A file that mixes UTF-8 lines with lines in another encoding is refused, naming both
lines. Nothing here parses values or writes to the workspace.
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..errors import RiskdeskError
from ..store import connect, quote_ident

MAX_COLUMNS = 2000
MAX_LINE_BYTES = 2_000_000
CHUNK = 4 << 20
# Encodings the detector chooses among when a file is not UTF-8 (Python codec names).
DETECTABLE = ("gb18030", "big5", "shift_jis", "cp1252", "latin_1")
ENCODING_NAMES = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8 (BOM)", "utf-16": "UTF-16", "utf_16_le": "UTF-16 LE",
                  "utf_16_be": "UTF-16 BE", "gb18030": "GB18030 (GBK)", "big5": "Big5", "shift_jis": "Shift-JIS",
                  "cp1252": "Windows-1252", "latin_1": "Latin-1"}
# What a user may pick in the app (the command line takes any Python codec name).
ENCODING_CHOICES = ("utf-8", "utf-8-sig", "utf-16", "gb18030", "big5", "shift_jis", "cp1252", "latin_1")


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
    encoding_detected: bool = False      # chosen by the detector (not a BOM, not UTF-8, not given)


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


def _scan_text(path: Path, name: str, encoding: str | None) -> tuple[str, str, int, bool, bool]:
    """Hash the file, count lines and work out its encoding in one streaming pass (plus a
    second one only when the file is not UTF-8).

    Returns (encoding, sha256, newline count, has a double quote, chosen by the detector).
    Raises on binary content, an unknown or wrong encoding, or mixed encodings."""
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise RiskdeskError(f"unknown encoding {encoding!r}") from None
    import numpy as np
    sha = hashlib.sha256()
    newlines = 0
    quoted = False
    with open(path, "rb") as fh, ThreadPoolExecutor(1) as hasher:
        first = fh.read(CHUNK)
        fh.seek(0)
        if first.startswith(codecs.BOM_UTF16_LE) or first.startswith(codecs.BOM_UTF16_BE):
            detected = "utf-16"
        elif first.startswith(codecs.BOM_UTF8):
            detected = "utf-8-sig"
        else:
            detected = _utf16_without_bom(first) if encoding is None else None
        if detected is None and encoding is None and b"\x00" in first:
            at = first.index(b"\x00")
            raise RiskdeskError(f"{name} is not a text file (binary content at byte {at})")
        stripped = first.lstrip()
        if stripped[:1] in (b"{", b"[") and encoding is None:
            raise RiskdeskError(f"{name} looks like JSON, not CSV; export the data as CSV, Parquet or Excel")
        want = (encoding or detected or "utf-8").lower()
        decoder = codecs.getincrementaldecoder(want)("strict")
        offset = 0
        failed_at = None
        hashed = None
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            if hashed is not None:
                hashed.result()
            # hashlib releases the GIL: the hash of a chunk overlaps the checks below (1 GB:
            # 0.7 s instead of 1.35 s, with numpy counting the line breaks)
            hashed = hasher.submit(sha.update, chunk)
            newlines += int(np.count_nonzero(np.frombuffer(chunk, np.uint8) == 10))
            quoted = quoted or b'"' in chunk
            # ASCII is valid in every encoding checked here: skip decoding it (unless a
            # multi-byte sequence is pending from the previous chunk, or the text is UTF-16).
            ascii_ok = want.startswith("utf-8") and chunk.isascii() and not decoder.getstate()[0]
            if failed_at is None and not ascii_ok:
                try:
                    decoder.decode(chunk, final=False)
                except UnicodeDecodeError as exc:
                    failed_at = offset + exc.start
            offset += len(chunk)
        if hashed is not None:
            hashed.result()
        if failed_at is None:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                failed_at = offset
    if failed_at is None:
        return want, sha.hexdigest(), newlines, quoted, False
    if encoding is not None or detected:
        line = _line_of_offset(path, failed_at)
        raise RiskdeskError(f"{name} line {line} is not valid {ENCODING_NAMES.get(want, want)} text; "
                            "choose the file's encoding (--encoding)")
    chosen = _detect_encoding(path, failed_at)
    _check_one_encoding(path, name, chosen)
    return chosen, sha.hexdigest(), newlines, quoted, True


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 text without a byte-order mark: NUL in every other byte of mostly-ASCII text."""
    sample = head[:4096]
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf_16_le"
    if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf_16_be"
    return None


def _detect_encoding(path: Path, failed_at: int) -> str:
    """The likeliest of DETECTABLE for a file that is not UTF-8: charset-normalizer on the
    start of the file and on the region where UTF-8 first failed."""
    from charset_normalizer import from_bytes
    with open(path, "rb") as fh:
        head = fh.read(256 * 1024)
        fh.seek(max(0, failed_at - 64 * 1024))
        around = fh.read(512 * 1024)
    sample = head if failed_at < len(head) else head + b"\n" + around[around.find(b"\n") + 1:]
    best = from_bytes(sample, cp_isolation=list(DETECTABLE)).best()
    name = best.encoding if best is not None else "gb18030"
    return {"latin-1": "latin_1", "iso8859_1": "latin_1", "windows-1252": "cp1252"}.get(name, name)


def _check_one_encoding(path: Path, name: str, encoding: str) -> None:
    """Raise unless the whole file decodes in `encoding`; a file that mixes UTF-8 lines with
    lines in another encoding is named as such."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    first_utf8 = first_other = None
    line_no = 1
    carry = b""
    label = ENCODING_NAMES.get(encoding, encoding)
    bad_at = None
    with open(path, "rb") as fh:
        offset = 0
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            if bad_at is None:
                try:
                    decoder.decode(chunk, final=False)
                except UnicodeDecodeError as exc:
                    bad_at = offset + exc.start
            offset += len(chunk)
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
    if bad_at is not None:
        raise RiskdeskError(f"{name} is neither UTF-8 nor {label} text (line {_line_of_offset(path, bad_at)}); "
                            "save it as UTF-8 CSV or choose its encoding (--encoding)")


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
    """Identify a file's kind, encoding, delimiter, sheets and headers."""
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
    return info


def _file_sha(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            sha.update(chunk)
    return sha.hexdigest()


def _inspect_csv(path: Path, name: str, encoding: str | None) -> SourceInfo:
    enc, sha, newlines, quoted, detected = _scan_text(path, name, encoding)
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
                      delimiter=delim, newlines=newlines, quoted=quoted, encoding_detected=detected)


def _inspect_parquet(path: Path, name: str) -> SourceInfo:
    import duckdb
    con = connect()
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

def col(i: int) -> str:
    """The staging name of the file's i-th column."""
    return f"c{i}"


class Stage:
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


def source_relation(stage: Stage, info: SourceInfo, limit: int | None = None,
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
        columns = "{" + ", ".join(f"'{col(i)}': '{info.dtypes[i]}'" for i in range(len(info.headers))) + "}"
        rejects, scans = stage.name(f"csvrej{len(stage.objects)}"), stage.name(f"csvscan{len(stage.objects)}")
        stage.objects += [("TABLE", rejects), ("TABLE", scans)]
        stage.csv_rejects = rejects
        return (f"(SELECT *, {row_number} + 1 AS _row FROM (SELECT * FROM read_csv(?, "
                f"delim=?, quote='\"', escape='\"', header=true, auto_detect=false, columns={columns}, "
                f"store_rejects=true, rejects_table='{rejects}', rejects_scan='{scans}', "
                f"max_line_size={MAX_LINE_BYTES}, null_padding=false, strict_mode=true){limit_sql}))",
                [str(file_path), info.delimiter])
    if info.kind == "parquet":
        select = ", ".join(f"{quote_ident(h)} AS {col(i)}" for i, h in enumerate(info.headers))
        return (f"(SELECT *, {row_number} AS _row FROM "
                f"(SELECT {select} FROM read_parquet(?){limit_sql}))", [str(info.path)])
    if stage.excel_view is None:
        stage.excel_view = _register_excel(stage, info, limit)
    return f"(SELECT * FROM {stage.excel_view}{limit_sql})", []


def _register_excel(stage: Stage, info: SourceInfo, limit: int | None) -> str:
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
    arrow = pa.table({**{col(i): pa.array(columns[i], pa.string()) for i in range(width)},
                      "_row": pa.array(numbers, pa.int64())})
    view = stage.name("arrow")
    stage.cur.register(view, arrow)
    stage.objects.append(("VIEW", view))
    return view


def newline_count_expr(info: SourceInfo) -> str:
    """Line breaks inside a record's text fields."""
    return " + ".join([f"coalesce(length({col(i)}) - length(replace({col(i)}, chr(10), '')), 0)"
                       for i, dtype in enumerate(info.dtypes) if dtype == "VARCHAR"] or ["0"])


def stage_source(stage: Stage, info: SourceInfo, limit: int | None = None,
                  tmp_dir: Path | None = None) -> tuple[str, list[tuple]]:
    """The source as a temp table (c0..cN, _row with final row numbers). Returns (table,
    rows the CSV reader rejected as (line, error type, raw line))."""
    relation, params = source_relation(stage, info, limit, tmp_dir)
    table = stage.name(f"src{len(stage.objects)}")
    nl = f", {newline_count_expr(info)} AS _nl" if info.quoted and not limit else ""
    stage.cur.execute(f"CREATE TEMP TABLE {table} AS SELECT *{nl} FROM {relation}", params)
    stage.objects.append(("TABLE", table))
    if info.kind != "csv" or limit:
        return table, []
    structural, _ = reader_rejects(stage)
    shift_past_rejects(stage, table, "_row", [line for line, _, _ in structural])
    return table, apply_line_breaks(stage, info, table, "_row", structural, bool(nl))


def reader_rejects(stage: Stage) -> tuple[list[tuple], list[tuple]]:
    """Rows DuckDB's CSV reader set aside: (structural [(line, error type, raw line)], cast
    failures of natively typed columns [(line, raw line)]). Lines count records (header = 1)."""
    rows = stage.cur.execute(
        f"SELECT line, bool_and(error_type = 'CAST'), min(error_type) FILTER (WHERE error_type <> 'CAST'), "
        f"min(csv_line) FROM {stage.csv_rejects} GROUP BY line ORDER BY line").fetchall()
    structural = [(line, etype, raw) for line, only_cast, etype, raw in rows if not only_cast]
    cast = [(line, raw) for line, only_cast, _, raw in rows if only_cast]
    return structural, cast


def shift_past_rejects(stage: Stage, table: str, row_col: str, reject_lines: list[int]) -> None:
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


def apply_line_breaks(stage: Stage, info: SourceInfo, table: str, row_col: str, structural: list,
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


def sample_rows(info: SourceInfo, rows: int = 20):
    """The first rows of a file with its own headers (all values as text)."""
    con = connect()
    stage = Stage(con)
    try:
        table, _ = stage_source(stage, info, limit=rows, tmp_dir=Path(info.path).parent)
        cols = ", ".join(f"{col(i)} AS {quote_ident(h)}" for i, h in enumerate(info.headers))
        return con.execute(f"SELECT _row AS row, {cols} FROM {table} ORDER BY _row").df()
    finally:
        stage.close()
        con.close()


