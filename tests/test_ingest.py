"""Loading odd-but-valid files, reject reporting, duplicates by SHA-256, atomicity."""
import json

import pytest

from core.datasets import delete_dataset, get_dataset, list_datasets, page_rows, rejects_frame
from core.errors import RiskdeskError
from core.ingest import infer, ingest, inspect_source, preview_mapping
from core.schema import suggest_mapping

HEADER = "trans_id,user_id,trans_time,amount,label"
ROWS = ["T1,U1,2024-01-05 10:00:00,10.5,0", "T2,U1,2024-01-06 11:00:00,20,1", "T3,U2,2024-01-07 12:00:00,30,0"]


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def load(store, path, name="d", **kw):
    return ingest(store, path, name, **kw)


def test_plain_csv_loads_with_suggested_mapping(store, tmp_path):
    result = load(store, write(tmp_path / "a.csv", "\n".join([HEADER] + ROWS) + "\n"))
    assert result["rows_loaded"] == 3 and result["rows_rejected"] == 0
    assert result["mapping"] == {"transaction_id": "trans_id", "customer_id": "user_id",
                                 "timestamp": "trans_time", "amount": "amount", "label": "label"}
    ds = get_dataset(store, "d")
    assert ds["rows"] == 3 and ds["fraud_rate"] == pytest.approx(1 / 3)
    assert ds["start"] == "2024-01-05 10:00:00" and ds["end"] == "2024-01-07 12:00:00"


@pytest.mark.parametrize("name, text, encoding", [
    ("bom_crlf.csv", "\ufeff" + "\r\n".join([HEADER] + ROWS) + "\r\n", "utf-8"),
    ("semicolon.csv", "\n".join(r.replace(",", ";") for r in [HEADER] + ROWS), "utf-8"),
    ("tab.tsv", "\n".join(r.replace(",", "\t") for r in [HEADER] + ROWS) + "\n", "utf-8"),
    ("utf16.csv", "\ufeff" + "\n".join(r.replace(",", "\t") for r in [HEADER] + ROWS) + "\n", "utf-16-le"),
    ("no_final_newline.csv", "\n".join([HEADER] + ROWS), "utf-8"),
])
def test_odd_but_valid_text_files(store, tmp_path, name, text, encoding):
    result = load(store, write(tmp_path / name, text, encoding))
    assert (result["rows_loaded"], result["rows_rejected"]) == (3, 0)


def test_quoted_newlines_and_line_numbers(store, tmp_path):
    text = (HEADER + ",note\n"
            'T1,U1,2024-01-05 10:00:00,10,0,"two\nlines"\n'
            "T2,U1,2024-01-05 11:00:00,abc,0,bad amount\n"
            "T3,U1,2024-01-05 12:00:00,5,0,x,extra field\n"
            'T4,U2,2024-01-05 13:00:00,7,1,"three\nline\nnote"\n'
            "T5,U2,not a time,7,1,bad time\n")
    result = load(store, write(tmp_path / "q.csv", text))
    assert (result["rows_loaded"], result["rows_rejected"]) == (2, 3)
    ds = get_dataset(store, "d")
    rej = rejects_frame(store, ds["id"])
    # File lines: header 1, T1 2-3, T2 4, T3 5, T4 6-8, T5 9.
    assert list(zip(rej["source_row"], rej["reason"])) == [
        (4, "not_a_number"), (5, "malformed_row"), (9, "not_a_timestamp")]
    rows = page_rows(store, ds)
    assert list(rows["source_row"]) == [2, 6]
    assert rows["note"].tolist() == ["two\nlines", "three\nline\nnote"]


def test_epoch_timestamps(store, tmp_path):
    text = "id,customer,time,amount\nA,C,1704067200,1\nB,C,1704067200123,2\nC,C,45296.5,3\n"
    result = load(store, write(tmp_path / "e.csv", text),
                  mapping={"transaction_id": "id", "customer_id": "customer", "timestamp": "time"})
    assert result["rows_loaded"] == 3
    ts = store.rows("SELECT timestamp FROM tx_1 ORDER BY source_row")
    assert [str(t[0]) for t in ts] == ["2024-01-01 00:00:00", "2024-01-01 00:00:00.123000", "2024-01-05 12:00:00"]


def test_gbk_chinese_headers_and_broken_rows(store, tmp_path):
    text = ("交易流水号,客户号,交易时间,交易金额,交易前余额,交易后余额,渠道,是否欺诈\r\n"
            "A1,C1,2024/01/05 13:22:01,\"1,234.50\",5000,3765.5,手机银行,否\r\n"
            "A2,C1,2024-01-06 09:00,abc,3765.5,3000,手机银行,否\r\n"
            "A3,C2,2024-01-07 10:00,12,100,88,网上银行,是\r\n"
            "A1,C9,2024-01-08 10:00,1,1,0,柜面,否\r\n"
            "A4,C2,2024-01-08 10:00,12,100,88,网上银行,也许\r\n")
    path = write(tmp_path / "gbk.csv", text, "gbk")
    info = inspect_source(path)
    assert info.encoding == "gb18030"
    assert infer(info).mapping == {"transaction_id": "交易流水号", "customer_id": "客户号", "timestamp": "交易时间",
                              "amount": "交易金额", "label": "是否欺诈", "balance_before": "交易前余额",
                              "balance_after": "交易后余额", "channel": "渠道"}
    result = load(store, path)
    assert (result["rows_loaded"], result["rows_rejected"]) == (2, 3)
    rej = rejects_frame(store, result["dataset_id"])
    assert list(zip(rej["source_row"], rej["reason"], rej["raw_value"])) == [
        (3, "not_a_number", "abc"), (5, "duplicate_transaction_id", "A1"), (6, "not_a_label", "也许")]
    raw = json.loads(rej["raw_row"][0])
    assert raw["交易金额"] == "abc" and raw["渠道"] == "手机银行"
    assert store.rows("SELECT channel, amount FROM tx_1 ORDER BY source_row") == [("手机银行", 1234.5), ("网上银行", 12.0)]


def test_parquet_and_excel(store, tmp_path):
    import openpyxl
    import pandas as pd
    frame = pd.DataFrame({"trans_id": ["T1", "T2", "T3"], "user_id": ["U1", "U1", "U2"],
                          "trans_time": pd.to_datetime(["2024-01-05 10:00", "2024-01-06 00:00", "2024-01-07 00:00"]),
                          "amount": [1.5, 2.0, 3.0], "label": [0, 1, 0], "score_x": [0.1, 0.2, 0.3]})
    frame.to_parquet(tmp_path / "t.parquet")
    result = load(store, tmp_path / "t.parquet", "pq")
    assert result["rows_loaded"] == 3
    assert [{k: e[k] for k in ("column", "source", "type", "use")} for e in get_dataset(store, "pq")["extras"]] == [
        {"column": "x_0", "source": "score_x", "type": "DOUBLE", "use": True}]

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "notes"
    ws.append(["nothing here"])
    data = wb.create_sheet("txns")
    data.append(["交易流水号", "客户号", "交易时间", "交易金额", "是否欺诈"])
    data.append(["A1", "C1", frame.trans_time[0].to_pydatetime(), 10.0, "否"])
    data.append(["A2", "C1", 45296.5, "=B2*2", "是"])
    data.append([None, None, None, None, None])
    data.append(["A3", 1001, "2024/01/07 08:00", "¥3,000", 1])
    wb.save(tmp_path / "t.xlsx")
    info = inspect_source(tmp_path / "t.xlsx", sheet="txns")
    assert info.sheets == ["notes", "txns"]
    result = load(store, tmp_path / "t.xlsx", "xl", sheet="txns")
    assert (result["rows_loaded"], result["rows_rejected"]) == (2, 1)
    rej = rejects_frame(store, result["dataset_id"])
    assert (rej["source_row"][0], rej["reason"][0]) == (3, "formula")
    assert store.rows(f"SELECT customer_id, amount FROM {get_dataset(store, 'xl')['table']} ORDER BY source_row") == [
        ("C1", 10.0), ("1001", 3000.0)]


def test_same_file_is_recognised_and_replace_is_atomic(store, tmp_path):
    path = write(tmp_path / "a.csv", "\n".join([HEADER] + ROWS) + "\n")
    load(store, path, "first")
    with pytest.raises(RiskdeskError, match="already loaded as dataset 'first'"):
        load(store, path, "second")
    with pytest.raises(RiskdeskError, match="already exists"):
        load(store, write(tmp_path / "b.csv", "\n".join([HEADER] + ROWS[:2]) + "\n"), "first")
    result = load(store, path, "first", replace=True)
    assert [d["name"] for d in list_datasets(store)] == ["first"]
    assert result["rows_loaded"] == 3
    tables = {r[0] for r in store.rows("SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'tx_%'")}
    assert tables == {get_dataset(store, "first")["table"]}


def test_failed_replace_keeps_old_dataset(store, tmp_path):
    load(store, write(tmp_path / "a.csv", "\n".join([HEADER] + ROWS) + "\n"), "keep")
    bad = write(tmp_path / "bad.csv", HEADER + "\nT1,U1,never,abc,0\n")
    with pytest.raises(RiskdeskError, match="no row of bad.csv could be loaded"):
        load(store, bad, "keep", replace=True)
    assert get_dataset(store, "keep")["rows"] == 3


def test_delete_is_audited(store, tmp_path):
    load(store, write(tmp_path / "a.csv", "\n".join([HEADER] + ROWS) + "\n"), "gone")
    delete_dataset(store, "gone", actor="tester")
    assert list_datasets(store) == []
    assert store.rows("SELECT actor, action FROM audit_log ORDER BY id") == [("cli", "ingest"), ("tester", "delete_dataset")]


def test_mapping_preview_matches_load(store, tmp_path):
    path = write(tmp_path / "a.csv", "\n".join([HEADER] + ROWS + ["T4,U3,yesterday,5,0"]) + "\n")
    info = inspect_source(path)
    frame = preview_mapping(info, infer(info).mapping, 10)
    assert list(frame["amount"][:3]) == [10.5, 20.0, 30.0]
    assert frame["reason"].tolist()[-1] == "not_a_timestamp"


def test_suggestions_for_common_headers():
    assert suggest_mapping(["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_FRAUD"]) == {
        "transaction_id": "TRANSACTION_ID", "customer_id": "CUSTOMER_ID", "timestamp": "TX_DATETIME",
        "amount": "TX_AMOUNT", "label": "TX_FRAUD", "counterparty_id": "TERMINAL_ID"}
    assert suggest_mapping(["用户ID", "交易时间", "交易金额", "设备号", "商户号"])["customer_id"] == "用户ID"


def test_database_persists_across_reopen(home, tmp_path):
    from core.store import Store
    s = Store(home)
    ingest(s, write(tmp_path / "a.csv", "\n".join([HEADER] + ROWS) + "\n"), "p")
    s.close()
    s2 = Store(home)
    assert get_dataset(s2, "p")["rows"] == 3 and s2.schema_version() >= 1
    s2.close()


def test_late_odd_values_after_a_clean_start(store, tmp_path):
    """Native typing is chosen from the first rows; later values that the typed reader
    refuses are re-parsed as text, and every row keeps its exact file line."""
    lines = [HEADER + ",note"]
    lines += [f"T{i},U{i % 50},2024-01-01 00:{i % 60:02d}:00,{i}.5,0,x" for i in range(6000)]   # lines 2..6001
    lines += ['L1,U1,2024-02-01 10:00:00,"1,234.50",1,"quoted\nbreak"',     # lines 6002-6003
              "L2,U1,2024-02-01 11:00:00,abc,0,y",                            # 6004: bad amount
              "L3,U1,1706788800,7,0,epoch seconds",                          # 6005: epoch time
              "L4,U1,2024-02-01 12:00:00,8,0,too,many",                      # 6006: malformed
              "L5,U2,2024/02/01 13:00,¥9,1,z",                               # 6007: both need text parsing
              "L6,U2,2024-02-01 14:00:00,10,0,last"]                         # 6008
    result = load(store, write(tmp_path / "late.csv", "\n".join(lines) + "\n"))
    assert (result["rows_loaded"], result["rows_rejected"]) == (6004, 2)
    ds = get_dataset(store, "d")
    rej = rejects_frame(store, ds["id"])
    assert list(zip(rej["source_row"], rej["reason"])) == [(6004, "not_a_number"), (6006, "malformed_row")]
    assert json.loads(rej["raw_row"][0])["amount"] == "abc"
    got = store.rows(f"SELECT transaction_id, source_row, amount, CAST(timestamp AS VARCHAR) FROM {ds['table']} "
                     "WHERE transaction_id LIKE 'L%' ORDER BY source_row")
    assert got == [("L1", 6002, 1234.5, "2024-02-01 10:00:00"), ("L3", 6005, 7.0, "2024-02-01 12:00:00"),
                   ("L5", 6007, 9.0, "2024-02-01 13:00:00"), ("L6", 6008, 10.0, "2024-02-01 14:00:00")]
    assert store.rows(f"SELECT source_row FROM {ds['table']} WHERE transaction_id = 'T5999'") == [(6001,)]


def test_typed_values_are_rejected_with_their_text(store, tmp_path):
    """Typed columns (Parquet numbers and times) are never empty text or formulas: their text
    is made only for the rows rejected, and says what the value was."""
    import numpy as np
    import pandas as pd
    frame = pd.DataFrame({"trans_id": ["T1", "T2", "T3", "T4", "T5"], "user_id": [7, 7, None, 8, 8],
                          "trans_time": pd.to_datetime(["2024-01-05 10:00", "1850-01-01 00:00", "2024-01-07 00:00",
                                                        None, "2024-01-08 00:00"]),
                          "amount": [1.5, 2.0, 3.0, 4.0, np.inf], "label": [0, 1, 0, 1, 2]})
    frame.to_parquet(tmp_path / "typed.parquet")
    result = load(store, tmp_path / "typed.parquet", "typed")
    assert (result["rows_loaded"], result["rows_rejected"]) == (1, 4)
    rej = rejects_frame(store, result["dataset_id"])
    assert list(zip(rej["source_row"], rej["reason"], rej["role"], rej["raw_value"].fillna("-"))) == [
        (2, "timestamp_out_of_range", "timestamp", "1850-01-01 00:00:00"), (3, "missing_value", "customer_id", "-"),
        (4, "missing_value", "timestamp", "-"), (5, "not_a_number", "amount", "inf")]
    assert store.rows(f"SELECT customer_id, label FROM {get_dataset(store, 'typed')['table']}") == [("7", 0)]
