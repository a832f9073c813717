"""Bad input through the real command line: one line on stderr naming the problem, nothing on
stdout, no traceback, non-zero exit, and a database exactly as it was."""
import io
import json
import os
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT, db_fingerprint

GOOD = "trans_id,user_id,trans_time,amount,label\nT1,U1,2024-01-05 10:00:00,10,0\nT2,U2,2024-01-06 10:00:00,20,1\n"


def cli(home, *args):
    env = {**os.environ, "RISKDESK_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A workspace that already holds one dataset, so 'unchanged' means something."""
    base = tmp_path_factory.mktemp("bad")
    home = base / "ws"
    good = base / "good.csv"
    good.write_text(GOOD)
    assert cli(home, "ingest", str(good), "--dataset", "existing").returncode == 0
    return base, home


def make(base, name, content):
    path = base / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def _zip_bytes():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data.csv", GOOD)
    return buf.getvalue()


def _truncated_parquet(base):
    import pandas as pd
    path = base / "full.parquet"
    pd.DataFrame({"trans_id": ["a"] * 100, "user_id": ["u"] * 100, "trans_time": ["2024-01-01"] * 100,
                  "amount": [1.0] * 100}).to_parquet(path)
    return path.read_bytes()[:-200]


BAD = [
    # (file name, content (bytes/str/callable(base)), extra args, words the message must contain)
    ("empty.csv", b"", [], ["empty.csv", "empty"]),
    ("header_only.csv", "trans_id,user_id,trans_time,amount\n", [], ["header_only.csv", "no data rows"]),
    ("random.csv", bytes(range(256)) * 40, [], ["random.csv", "not a text file"]),
    ("archive.csv", lambda base: _zip_bytes(), [], ["archive.csv", "ZIP archive"]),
    ("data.csv", '{"rows": [{"trans_id": 1}]}', [], ["data.csv", "JSON"]),
    ("broken.parquet", _truncated_parquet, [], ["broken.parquet", "Parquet"]),
    ("no_amount.csv", "trans_id,user_id,trans_time,value\nT1,U1,2024-01-01,1\n", [], ["no_amount.csv", "amount", "--map"]),
    ("bad_amounts.csv", "trans_id,user_id,trans_time,amount\nT1,U1,2024-01-01,abc\nT2,U1,2024-01-01,x1\n", [],
     ["bad_amounts.csv", "2 rows rejected", "line 2", "amount 'abc' is not a number"]),
    ("bad_dates.csv", "trans_id,user_id,trans_time,amount\nT1,U1,soon,1\nT2,U1,later,2\n", [],
     ["bad_dates.csv", "line 2", "timestamp 'soon' is not a date/time"]),
    ("long_line.csv", "trans_id,user_id,trans_time,amount\nT1,U1,2024-01-01," + "9" * 5_000_000 + "\n", [],
     ["long_line.csv", "longer than 2 MB"]),
    ("mixed.csv", "trans_id,user_id,trans_time,amount,channel\n".encode() + "T1,U1,2024-01-01,1,手机银行\n".encode("utf-8")
     + "T2,U1,2024-01-01,1,手机银行\n".encode("gbk"), [], ["mixed.csv", "mixes encodings", "line 2", "line 3"]),
    ("formulas.csv", 'trans_id,user_id,trans_time,amount\nT1,U1,2024-01-01,=1+1\nT2,U1,2024-01-01,"=HYPERLINK(""x"")"\n', [],
     ["formulas.csv", "formula"]),
    ("wide.csv", ",".join(f"c{i}" for i in range(10_000)) + "\n" + ",".join("1" for _ in range(10_000)) + "\n", [],
     ["wide.csv", "10,000 columns"]),
    ("good.csv", GOOD, ["--map", "amount=no_such_column"], ["no column 'no_such_column'"]),
    ("good.csv", GOOD, ["--map", "colour=amount"], ["unknown role 'colour'"]),
    ("good.csv", GOOD, ["--map", "amount"], ["expected ROLE=COLUMN"]),
    ("good.csv", GOOD, ["@name:../../x"], ["invalid dataset name", "../../x"]),
    ("good.csv", GOOD, ["@name:existing"], ["already exists"]),
    ("good_copy.csv", GOOD, [], ["already loaded as dataset 'existing'", "SHA-256"]),
    ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, [], ["old.xls", ".xls"]),
    ("missing.csv", None, [], ["missing.csv", "no such file"]),
    ("quote_only.csv", '"', [], ["quote_only.csv"]),
]


@pytest.mark.parametrize("name, content, extra, words", BAD, ids=[f"{i}-{b[0]}" for i, b in enumerate(BAD)])
def test_bad_input_is_one_clear_line_and_changes_nothing(seeded, name, content, extra, words):
    base, home = seeded
    path = base / name
    if content is not None:
        make(base, name, content(base) if callable(content) else content)
    dataset = "new_one"
    args = []
    for item in extra:
        if item.startswith("@name:"):
            dataset = item[len("@name:"):]
        else:
            args.append(item)
    before = db_fingerprint(home)
    proc = cli(home, "ingest", str(path), "--dataset", dataset, *args, "--json")
    assert proc.returncode != 0, proc.stdout
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[:2000]
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert db_fingerprint(home) == before


def test_sql_looking_column_name_is_just_a_column(seeded):
    base, home = seeded
    evil = 'x"; DROP TABLE datasets; --'
    path = make(base, "evil.csv", f'trans_id,user_id,trans_time,amount,"{evil.replace(chr(34), chr(34) * 2)}"\n'
                                  "E1,U1,2024-01-01,1,boom\n")
    proc = cli(home, "ingest", str(path), "--dataset", "evil", "--json")
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(cli(home, "datasets", "--json").stdout)["datasets"]
    evil_ds = next(d for d in listed if d["name"] == "evil")
    assert [{k: e[k] for k in ("column", "source", "type")} for e in evil_ds["extras"]] == [
        {"column": "x_0", "source": evil, "type": "VARCHAR"}]
    assert {d["name"] for d in listed} >= {"existing", "evil"}


def test_duplicate_ids_keep_the_first_and_name_the_rest(seeded):
    base, home = seeded
    path = make(base, "dupes.csv", "trans_id,user_id,trans_time,amount\nD1,U1,2024-01-01,1\nD1,U2,2024-01-02,2\n"
                                   "D2,U1,2024-01-03,3\nD1,U3,2024-01-04,4\n")
    proc = cli(home, "ingest", str(path), "--dataset", "dupes")
    assert proc.returncode == 0, proc.stderr
    assert "loaded 2 rows" in proc.stdout and "rejected 2" in proc.stdout
    assert "transaction id appeared earlier in the file (first at row 3)" in proc.stdout


def test_partial_formula_file_names_the_rows(seeded):
    base, home = seeded
    path = make(base, "some_formulas.csv", "trans_id,user_id,trans_time,amount\nF1,U1,2024-01-01,=SUM(A1:A2)\n"
                                           "F2,=cmd|' /C calc'!A0,2024-01-01,5\n")
    proc = cli(home, "ingest", str(path), "--dataset", "formulas", "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["rows_rejected"] == 1
