"""Role inference from names and values, time readings and encodings (core.ingest.infer/read)."""
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import RiskdeskError
from core.ingest import infer, inspect_source
from conventions import sparkov_like


def csv_file(path, header, rows, encoding="utf-8"):
    path.write_bytes(("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n").encode(encoding))
    return path


def test_values_alone_find_the_id_time_amount_and_label(tmp_path):
    rows = [[f"X{i:05d}", f"2024-02-{1 + i % 28:02d} {i % 24:02d}:10:00", f"{10 + i * 1.37:.2f}", int(i % 40 == 0)]
            for i in range(400)]
    inference = infer(inspect_source(csv_file(tmp_path / "a.csv", ["k", "w", "q", "z"], rows)))
    assert inference.mapping == {"transaction_id": "k", "timestamp": "w", "amount": "q", "label": "z"}
    reasons = {r: [code for code, _ in s.reasons] for r, s in inference.suggestions.items()}
    assert reasons == {"transaction_id": ["unique"], "timestamp": ["time_text"],
                       "amount": ["numeric", "positive", "decimals"], "label": ["binary"]}
    label = inference.suggestions["label"].reasons[0][1]
    assert label["rate"] == pytest.approx(10 / 400)


def test_a_column_used_by_one_role_is_not_offered_for_another(tmp_path):
    rows = [[f"T{i}", f"U{i % 9}", f"2024-01-{1 + i % 20:02d}", 5 + i, 100 + i] for i in range(60)]
    info = inspect_source(csv_file(tmp_path / "b.csv", ["trans_id", "user_id", "trans_time", "amount", "balance"], rows))
    inference = infer(info, {"amount": "balance"})
    assert inference.mapping["amount"] == "balance" and inference.suggestions["amount"].chosen_by_user
    assert "balance" not in [c for r, c in inference.mapping.items() if r != "amount"]
    with pytest.raises(RiskdeskError, match="mapped to both"):
        infer(info, {"amount": "balance", "balance_after": "balance"})


def test_a_header_that_names_the_role_wins_over_values_alone(tmp_path):
    rows = [[f"A{i}", f"B{i}", f"2024-01-{1 + i % 20:02d}", 5 + i] for i in range(60)]
    inference = infer(inspect_source(csv_file(tmp_path / "c.csv", ["note", "serial_no", "date", "amt"], rows)))
    assert inference.mapping["transaction_id"] == "serial_no"


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(list(range(23))))
def test_shuffling_the_columns_never_changes_the_suggested_mapping(tmp_path_factory, order):
    base_dir = tmp_path_factory.mktemp("perm")
    base = base_dir / "base.csv"
    sparkov_like(base, rows=400)
    frame = pd.read_csv(base, dtype=str, keep_default_na=False)
    expected = infer(inspect_source(base)).mapping
    shuffled = base_dir / "shuffled.csv"
    frame.iloc[:, list(order)].to_csv(shuffled, index=False)
    inference = infer(inspect_source(shuffled))
    # the unnamed index column is renamed by its position; it is no role either way
    assert inference.mapping == expected
    assert inference.options == infer(inspect_source(base)).options


@pytest.mark.parametrize("values, order, day_first, month_first", [
    (["03/04/2024 10:00", "13/04/2024 10:00", "05/04/2024 11:00"], "dmy", 1, 0),
    (["03/04/2024 10:00", "04/13/2024 10:00", "05/04/2024 11:00"], "mdy", 0, 1),
    (["13.01.2024 10:00", "01.02.2024 10:00"], "dmy", 1, 0),
    (["03/04/2024", "05/06/2024"], "mdy", 0, 0),                   # no evidence: slashes read month-first
    (["03.04.2024", "05.06.2024"], "dmy", 0, 0),                   # no evidence: dots read day-first
])
def test_date_order_is_decided_by_the_columns_own_values(tmp_path, values, order, day_first, month_first):
    rows = [[f"T{i}", v, 10] for i, v in enumerate(values * 5)]
    inference = infer(inspect_source(csv_file(tmp_path / "d.csv", ["id", "time", "amount"], rows)))
    reading = inference.time
    assert inference.options.date_order == order
    assert (reading.day_first_only, reading.month_first_only) == (day_first * 5, month_first * 5)


def test_mixed_date_orders_count_the_rows_each_reading_rejects(tmp_path):
    values = ["13/01/2024 10:00"] * 7 + ["01/13/2024 10:00"] * 2 + ["05/01/2024 10:00"] * 3
    rows = [[f"T{i}", v, 10] for i, v in enumerate(values)]
    reading = infer(inspect_source(csv_file(tmp_path / "m.csv", ["id", "time", "amount"], rows))).time
    assert reading.mixed and reading.options.date_order == "dmy"
    assert reading.rejects_if("dmy") == 2 and reading.rejects_if("mdy") == 7
    with_order = infer(inspect_source(tmp_path / "m.csv"), date_order="mdy")
    assert with_order.options.date_order == "mdy"


@pytest.mark.parametrize("header, values, unit", [
    ("step", [1, 2, 5, 30, 700], "h"),
    ("TransactionDT", [86400, 86500, 90000, 1_500_000], "s"),
    ("Time", [0, 0, 1, 172792], "s"),
    ("elapsed_days", [0, 1, 2, 30], "d"),
    ("t", [0, 1, 2, 5], "d"),              # no unit in the header: the smallest unit spanning a day
    ("t", [0, 60, 600, 4000], "m"),
])
def test_offset_times_get_a_unit_from_the_header_or_the_span(tmp_path, header, values, unit):
    rows = [[f"T{i}", v, 10] for i, v in enumerate(values * 3)]
    inference = infer(inspect_source(csv_file(tmp_path / "o.csv", ["id", header, "amount"], rows)),
                      {"timestamp": header})
    assert inference.time.kind == "offset" and inference.options.time_unit == unit
    assert inference.time.origin_default and inference.options.origin == "2024-01-01 00:00:00"


def test_epoch_numbers_are_not_offsets(tmp_path):
    rows = [[f"T{i}", 1704067200 + i * 3600, 10] for i in range(20)]
    inference = infer(inspect_source(csv_file(tmp_path / "e.csv", ["id", "unix_time", "amount"], rows)))
    assert inference.mapping["timestamp"] == "unix_time" and inference.time.kind == "epoch"
    assert inference.options.time_unit is None


def test_decimal_commas_are_recognised_per_column(tmp_path):
    rows = [[f"T{i}", "2024-01-02", f"{1 + i}.{i % 10}34,5{i % 10}"] for i in range(30)]
    path = tmp_path / "eu.csv"
    path.write_text("id;date;betrag\n" + "\n".join(";".join(r) for r in rows) + "\n")
    inference = infer(inspect_source(path))
    assert inference.mapping["amount"] == "betrag" and inference.options.decimal_comma == ("amount",)


@pytest.mark.parametrize("encoding, text", [
    ("cp1252", "Date;Client;Montant;Bénéficiaire\n" + "".join(f"0{1 + i % 9}.03.2024;C{i};{i},50;Café Crème Müller\n" for i in range(50))),
    ("big5", "交易序號,客戶編號,交易時間,交易金額\n" + "".join(f"T{i},C{i % 7},2024-03-0{1 + i % 9} 10:00:00,{i}\n" for i in range(50))),
    ("shift_jis", "取引ID,顧客番号,取引日時,金額\n" + "".join(f"T{i},K{i % 7},2024/03/0{1 + i % 9} 10:00,{i}\n" for i in range(50))),
    ("gb18030", "交易流水号,客户号,交易时间,交易金额\n" + "".join(f"T{i},C{i % 7},2024-03-0{1 + i % 9} 10:00:00,{i}\n" for i in range(50))),
    ("utf_16_le", "id,customer,time,amount\n" + "".join(f"T{i},C{i},2024-03-01,{i}\n" for i in range(50))),
])
def test_encodings_are_detected_and_headers_decode(tmp_path, encoding, text):
    path = tmp_path / "enc.csv"
    path.write_bytes(text.encode(encoding))
    info = inspect_source(path)
    assert info.encoding == encoding
    assert info.headers[0] == text.split("\n")[0].split(";" if ";" in text.split("\n")[0] else ",")[0]
    assert "timestamp" in infer(info).mapping


def test_the_encoding_given_overrides_the_detector(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes("id,when,amount\nA,2024-01-01,1\n".encode("utf-8") + "B,2024-01-02,2 é\n".encode("cp1252"))
    with pytest.raises(RiskdeskError, match="line 3 is not valid UTF-8"):
        inspect_source(path, encoding="utf-8")
    assert inspect_source(path, encoding="latin-1").encoding == "latin-1"
