"""Parsers for amounts, timestamps and labels (the SQL expressions used by ingest)."""
from datetime import datetime, timedelta

import duckdb
import pytest
from hypothesis import given, settings, strategies as st

from core.ingest import parse as parsing

CON = duckdb.connect()


def parse(expr_builder, value):
    return CON.execute(f"SELECT {expr_builder('x')} FROM (SELECT CAST(? AS VARCHAR) AS x)", [value]).fetchone()[0]


@pytest.mark.parametrize("raw, expected", [
    ("1234.5", 1234.5), ("1,234.50", 1234.5), ("¥1,234", 1234.0), ("￥88元", 88.0), ("$ 12", 12.0),
    ("(12.50)", -12.5), ("-3", -3.0), ("1 234 567", 1234567.0), ("RMB 5,000.00", 5000.0), (".5", 0.5),
    ("abc", None), ("12abc", None), ("", None), ("nan", None), ("inf", None), ("1,23", None), ("=1+1", None),
])
def test_amounts(raw, expected):
    assert parse(parsing.number_expr, raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("2024-01-05 13:22:01", datetime(2024, 1, 5, 13, 22, 1)),
    ("2024/01/05 13:22:01", datetime(2024, 1, 5, 13, 22, 1)),
    ("2024/1/5 9:05", datetime(2024, 1, 5, 9, 5)),
    ("2024-01-05T13:22:01Z", datetime(2024, 1, 5, 13, 22, 1)),
    ("2024-01-05T13:22:01+08:00", datetime(2024, 1, 5, 13, 22, 1)),   # naive: zone dropped
    ("1704067200", datetime(2024, 1, 1)),                              # epoch seconds
    ("1704067200000", datetime(2024, 1, 1)),                           # epoch milliseconds
    ("45296.5", datetime(2024, 1, 5, 12)),                             # Excel serial
    ("20240105132201", datetime(2024, 1, 5, 13, 22, 1)),
    ("20240105", datetime(2024, 1, 5)),
    ("2024年1月5日 13:22:01", datetime(2024, 1, 5, 13, 22, 1)),
    ("2024-01-05", datetime(2024, 1, 5)),
    ("garbage", None), ("123", None), ("", None), ("2024-13-45", None),
])
def test_timestamps(raw, expected):
    assert parse(parsing.timestamp_expr, raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("1", 1), ("0", 0), ("true", 1), ("False", 0), ("yes", 1), ("NO", 0), ("是", 1), ("否", 0),
    ("fraud", 1), ("normal", 0), ("1.0", 1), (" Y ", 1), ("maybe", None), ("", None),
])
def test_labels(raw, expected):
    assert parse(parsing.label_expr, raw) == expected


@settings(max_examples=150, deadline=None)
@given(cents=st.integers(min_value=-10**12, max_value=10**12),
       style=st.sampled_from(["plain", "thousands", "currency", "yuan", "parens"]))
def test_amount_round_trip(cents, style):
    value = cents / 100
    if style == "plain":
        text = f"{value:.2f}"
    elif style == "thousands":
        text = f"{value:,.2f}"
    elif style == "currency":
        text = ("-" if value < 0 else "") + f"¥{abs(value):,.2f}"
    elif style == "yuan":
        text = f"{value:.2f}元"
    else:
        text = f"({abs(value):,.2f})" if value < 0 else f"{value:,.2f}"
    assert parse(parsing.number_expr, text) == pytest.approx(value, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(moment=st.datetimes(min_value=datetime(1975, 1, 1), max_value=datetime(2099, 12, 31)).map(
           lambda d: d.replace(microsecond=0)),
       style=st.sampled_from(["iso", "iso_t", "slash", "chinese", "epoch_s", "epoch_ms", "compact"]))
def test_timestamp_round_trip(moment, style):
    epoch = int((moment - datetime(1970, 1, 1)).total_seconds())
    text = {
        "iso": moment.strftime("%Y-%m-%d %H:%M:%S"),
        "iso_t": moment.strftime("%Y-%m-%dT%H:%M:%S"),
        "slash": f"{moment.year}/{moment.month}/{moment.day} {moment.hour}:{moment.minute:02d}:{moment.second:02d}",
        "chinese": f"{moment.year}年{moment.month}月{moment.day}日 {moment.strftime('%H:%M:%S')}",
        "epoch_s": str(epoch),
        "epoch_ms": str(epoch * 1000),
        "compact": moment.strftime("%Y%m%d%H%M%S"),
    }[style]
    assert parse(parsing.timestamp_expr, text) == moment


@settings(max_examples=60, deadline=None)
@given(days=st.floats(min_value=20000, max_value=80000, allow_nan=False))
def test_excel_serial(days):
    expected = datetime(1899, 12, 30) + timedelta(microseconds=round(days * 86400e6))
    assert abs((parse(parsing.timestamp_expr, repr(days)) - expected).total_seconds()) < 1e-3


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_parsers_never_raise(text):
    for builder in (parsing.number_expr, parsing.timestamp_expr, parsing.label_expr):
        parse(builder, text)   # any text: a value or NULL, never an SQL error


@settings(max_examples=150, deadline=None)
@given(moment=st.datetimes(min_value=datetime(1975, 1, 1), max_value=datetime(2099, 12, 31)).map(
           lambda d: d.replace(second=0, microsecond=0)),
       sep=st.sampled_from(["/", ".", "-"]), padded=st.booleans())
def test_day_first_and_month_first_round_trip(moment, sep, padded):
    d, m = (f"{moment.day:02d}", f"{moment.month:02d}") if padded else (str(moment.day), str(moment.month))
    clock = f"{moment.hour}:{moment.minute:02d}"
    assert parse(lambda c: parsing.timestamp_expr(c, "VARCHAR", "dmy"), f"{d}{sep}{m}{sep}{moment.year} {clock}") == moment
    assert parse(lambda c: parsing.timestamp_expr(c, "VARCHAR", "mdy"), f"{m}{sep}{d}{sep}{moment.year} {clock}") == moment


@settings(max_examples=150, deadline=None)
@given(cents=st.integers(min_value=-10**11, max_value=10**11), style=st.sampled_from(["plain", "grouped", "euro"]))
def test_decimal_comma_round_trip(cents, style):
    value = cents / 100
    whole, frac = f"{abs(value):,.2f}".split(".")
    sign = "-" if value < 0 else ""
    text = {"plain": f"{sign}{whole.replace(',', '')},{frac}", "grouped": f"{sign}{whole.replace(',', '.')},{frac}",
            "euro": f"{sign}{whole.replace(',', '.')},{frac} €"}[style]
    assert parse(lambda c: parsing.number_expr(c, "VARCHAR", decimal_comma=True), text) == pytest.approx(value, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(n=st.integers(min_value=0, max_value=10**6), unit=st.sampled_from(["s", "m", "h", "d"]),
       origin=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1)).map(
           lambda d: d.replace(microsecond=0)))
def test_offsets_count_units_from_the_origin(n, unit, origin):
    step = {"s": timedelta(seconds=1), "m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}[unit]
    if n * step > timedelta(days=365 * 150):
        return
    got = parse(lambda c: parsing.offset_expr(c, "VARCHAR", unit, str(origin)), str(n))
    assert got == origin + n * step


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=30))
def test_option_parsers_never_raise(text):
    for builder in (lambda c: parsing.number_expr(c, "VARCHAR", True), lambda c: parsing.timestamp_expr(c, "VARCHAR", "dmy"),
                    lambda c: parsing.offset_expr(c, "VARCHAR", "h", "2024-01-01 00:00:00")):
        parse(builder, text)
