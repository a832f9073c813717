"""Small files in the column conventions people bring, generated (never committed): the real
column names and value formats of IEEE-CIS, Sparkov (copied through Excel), PaySim, the ULB
credit-card file, a Chinese core-banking export (GBK), a European bank (Windows-1252) and a
Japanese one (Shift-JIS). Fraud carries a learnable signal so that every file can go through
the default comparison.

Each writer returns what loading the file must give: the mapping, warning codes and rejects.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np


@dataclass
class Expected:
    mapping: dict[str, str]
    warnings: set[str]
    rejected: int
    absent_warnings: set[str] = field(default_factory=set)


def _base(rows: int, seed: int, days: int = 20, customers: int | None = None):
    """Customers, times (seconds from the start), amounts and labels with a signal: fraud is
    larger, more often at night, and comes in short bursts."""
    rng = np.random.default_rng(seed)
    n_cust = customers or max(30, rows // 12)
    cust = rng.integers(0, n_cust, rows)
    hour_p = np.array([1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 7, 6, 4, 2, 1], float)
    day = rng.integers(0, days, rows)
    hour = rng.choice(24, rows, p=hour_p / hour_p.sum())
    secs = day * 86400 + hour * 3600 + rng.integers(0, 3600, rows)
    label = np.zeros(rows, int)
    fraud = rng.random(rows) < 0.045
    label[fraud] = 1
    night = rng.choice([0, 1, 2, 3, 4, 23], rows)
    secs = np.where(fraud & (rng.random(rows) < 0.7), day * 86400 + night * 3600 + rng.integers(0, 3600, rows), secs)
    amount = np.round(np.exp(rng.normal(3.6, 1.0, rows)), 2)
    amount = np.where(fraud, np.round(amount * rng.uniform(4, 12, rows) + 300, 2), amount)
    order = np.argsort(secs, kind="stable")
    return rng, cust[order], secs[order], amount[order], label[order]


def _write_csv(path, header, rows, encoding="utf-8", delimiter=",", quoting=csv.QUOTE_MINIMAL):
    with open(path, "w", encoding=encoding, newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter, quoting=quoting, lineterminator="\r\n" if encoding != "utf-8" else "\n")
        w.writerow(header)
        w.writerows(rows)
    return path


def ieee_cis_like(path, rows: int = 3000, seed: int = 1) -> Expected:
    """train_transaction.csv: TransactionDT is seconds from a reference day (starts at 86400);
    card1 stands for the customer; two rows lack the amount."""
    rng, cust, secs, amount, label = _base(rows, seed)
    products = np.array(["W", "C", "R", "H", "S"])
    emails = np.array(["gmail.com", "yahoo.com", "hotmail.com", "anonymous.com", "outlook.com", ""])
    out = []
    for i in range(rows):
        fraud = label[i] == 1
        out.append([2987000 + i, int(label[i]), 86400 + int(secs[i]), f"{amount[i]:.3f}",
                    products[rng.integers(1, 5) if fraud and rng.random() < 0.6 else rng.integers(0, 5)],
                    1000 + int(cust[i]) * 7, "" if rng.random() < 0.02 else f"{100 + cust[i] % 400:.1f}",
                    ["visa", "mastercard", "discover", "american express"][cust[i] % 4],
                    ["debit", "credit"][cust[i] % 2], "" if rng.random() < 0.1 else f"{200 + cust[i] % 300:.1f}",
                    "" if rng.random() < 0.8 else f"{rng.integers(0, 500):.1f}",
                    emails[rng.integers(0, 6)], f"{rng.poisson(8 if fraud else 1):.1f}",
                    f"{rng.integers(0, 300) if not fraud else rng.integers(0, 120):.1f}",
                    ["M0", "M1", "M2", ""][rng.integers(0, 4)],
                    *[f"{rng.normal(1.5 if fraud and k < 2 else 0, 1):.4f}" for k in range(5)]])
    for i in (17, 1234):
        out[i][3] = ""
    header = ["TransactionID", "isFraud", "TransactionDT", "TransactionAmt", "ProductCD", "card1", "card2", "card4",
              "card6", "addr1", "dist1", "P_emaildomain", "C1", "D1", "M4", "V1", "V2", "V3", "V4", "V5"]
    _write_csv(path, header, out)
    return Expected({"transaction_id": "TransactionID", "customer_id": "card1", "timestamp": "TransactionDT",
                     "amount": "TransactionAmt", "label": "isFraud", "transaction_type": "ProductCD"},
                    {"time_offset", "families_unavailable"}, 2, {"generated_ids"})


def sparkov_like(path, rows: int = 3000, seed: int = 2) -> Expected:
    """fraudTrain.csv after a trip through Excel: an unnamed index column, cc_num in scientific
    notation (many cards collapse into one), day-first dates written both '8/3/2020 6:18' and
    '13/01/2019 00:14', plus three month-first rows ('1/13/2019 ...') that day-first rejects."""
    rng, cust, secs, amount, label = _base(rows, seed, days=40)
    start = datetime(2019, 1, 1)
    first = ["Jennifer", "Stephanie", "Edward", "Jeremy", "Tyler", "Jessica", "Daniel", "Kimberly"]
    last = ["Banks", "Gill", "Sanchez", "White", "Garcia", "Murray", "Cox", "Hill"]
    cats = ["grocery_pos", "gas_transport", "shopping_net", "shopping_pos", "misc_net", "entertainment", "food_dining"]
    jobs = ["Psychologist, counselling", "Special educational needs teacher", "Nature conservation officer",
            "Patent attorney", "Dance movement psychotherapist"]
    merchants = [f"fraud_{a}, {b} and {c}" for a, b, c in zip(
        ["Rippin", "Heller", "Lind", "Kutch", "Keeling", "Stroman", "Rowe", "Kris"] * 20,
        ["Kub", "Gutmann", "Buckridge", "Hermiston", "Crist", "Hudson", "Jacobi", "Boehm"] * 20,
        ["Mann", "Zieme", "Stiedemann", "Farrell", "Kuhic", "Rath", "Towne", "Ebert"] * 20)][:150]
    out = []
    for i in range(rows):
        when = start + timedelta(seconds=int(secs[i]))
        padded = rng.random() < 0.5
        text = (when.strftime("%d/%m/%Y %H:%M") if padded else f"{when.day}/{when.month}/{when.year} {when.hour}:{when.minute:02d}")
        c = int(cust[i])
        card = 4_000_000_000_000_000 + c * 37_000_000_000_000 % 900_000_000_000_000 + c
        fraud = label[i] == 1
        merchant = merchants[rng.integers(100, 150)] if fraud and rng.random() < 0.8 else merchants[(c * 7 + rng.integers(0, 6)) % 100]
        unix = 1325376000 + int(secs[i]) + i % 7
        out.append([i, text, f"{card:.2E}".replace("E+", "E+"), merchant,
                    cats[rng.integers(2, 5) if fraud else rng.integers(0, 7)], f"{amount[i]:.2f}",
                    first[c % 8], last[(c // 8) % 8], "MF"[c % 2], f"{100 + c} {last[c % 8]} Street Apt. {c % 90}",
                    f"Town{c % 180}", ["NY", "CA", "TX", "PA", "OH"][c % 5], 10000 + c * 13, f"{30 + c % 10 + 0.1234:.4f}",
                    f"{-80 - c % 10 - 0.5678:.4f}", 1000 + c * 31, jobs[c % 5], f"19{50 + c % 45}-0{1 + c % 9}-1{c % 9}",
                    f"{rng.integers(0, 2**63):016x}{i:016x}", unix, f"{30 + rng.random():.6f}", f"{-80 - rng.random():.6f}",
                    int(label[i])])
    for i in (100, 200, 300):     # month-first rows whose second field is above 12
        when = start + timedelta(days=20 + i // 100)
        out[i][1] = f"{when.month}/{when.day}/{when.year} 3:05"
    header = ["", "trans_date_trans_time", "cc_num", "merchant", "category", "amt", "first", "last", "gender",
              "street", "city", "state", "zip", "lat", "long", "city_pop", "job", "dob", "trans_num", "unix_time",
              "merch_lat", "merch_long", "is_fraud"]
    _write_csv(path, header, out)
    return Expected({"transaction_id": "trans_num", "customer_id": "cc_num", "timestamp": "trans_date_trans_time",
                     "amount": "amt", "label": "is_fraud", "transaction_type": "category", "counterparty_id": "merchant"},
                    {"scientific_ids", "mixed_date_order", "personal_text", "row_identifier"}, 3, {"generated_ids"})


def paysim_like(path, rows: int = 3000, seed: int = 3) -> Expected:
    """PS_20174392719_1491204439457_log.csv: no transaction id, `step` is hours from the start,
    balances that often do not add up, and fraud that empties the account by TRANSFER/CASH_OUT."""
    rng, cust, secs, amount, label = _base(rows, seed, days=20)
    types = np.array(["PAYMENT", "CASH_IN", "DEBIT", "TRANSFER", "CASH_OUT"])
    out = []
    for i in range(rows):
        fraud = label[i] == 1
        kind = types[rng.integers(3, 5)] if fraud else types[rng.integers(0, 5)]
        before = float(np.round(rng.uniform(0, 50_000), 2))
        amt = before if fraud else float(amount[i])
        after = 0.0 if fraud else max(0.0, round(before - amt, 2))
        if not fraud and rng.random() < 0.2:
            after = before            # PaySim's famous inconsistent balances
        dest = f"C{rng.integers(10**8, 10**9)}" if fraud else (f"M{1_000_000 + (int(cust[i]) * 3 + rng.integers(0, 4)) % 400}")
        out.append([1 + int(secs[i]) // 3600, kind, f"{amt:.2f}", f"C{1_000_000 + int(cust[i])}", f"{before:.2f}",
                    f"{after:.2f}", dest, "0.0", f"{rng.uniform(0, 1e5):.2f}", int(label[i]),
                    int(fraud and amt > 200_000)])
    out[min(55, rows - 1)][0] = ""
    header = ["step", "type", "amount", "nameOrig", "oldbalanceOrg", "newbalanceOrig", "nameDest", "oldbalanceDest",
              "newbalanceDest", "isFraud", "isFlaggedFraud"]
    _write_csv(path, header, out)
    return Expected({"customer_id": "nameOrig", "timestamp": "step", "amount": "amount", "label": "isFraud",
                     "balance_before": "oldbalanceOrg", "balance_after": "newbalanceOrig",
                     "transaction_type": "type", "counterparty_id": "nameDest"},
                    {"time_offset", "generated_ids", "balance_mismatch", "families_unavailable"}, 1)


def ulb_like(path, rows: int = 3000, seed: int = 4) -> Expected:
    """creditcard.csv: Time in seconds from the first transaction, V1..V28 (anonymised
    components), Amount, and a quoted Class; no transaction id, no customer."""
    rng, _, secs, amount, label = _base(rows, seed, days=12)
    out = []
    for i in range(rows):
        fraud = label[i] == 1
        v = rng.normal(0, 1, 28)
        if fraud:
            v[[2, 9, 13, 16]] -= rng.uniform(0.5, 2.5, 4)
            v[[3, 10]] += rng.uniform(0.5, 2, 2)
        out.append([str(int(secs[i] - secs[0])), *[repr(float(x)) for x in v], f"{amount[i] / 4:.2f}",
                    str(int(label[i]))])
    out[min(777, rows - 1)][29] = "-"
    header = ["Time", *[f"V{k}" for k in range(1, 29)], "Amount", "Class"]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        for r in out:
            fh.write(",".join(r[:-1]) + f',"{r[-1]}"\n')
    return Expected({"timestamp": "Time", "amount": "Amount", "label": "Class"},
                    {"time_offset", "generated_ids", "families_unavailable"}, 1)


def chinese_core_banking_like(path, rows: int = 3000, seed: int = 5) -> Expected:
    """A core-banking export in GBK with Chinese headers, no counterparty column, a customer-name
    column, and a review flag recorded after the fact (it leaks the label)."""
    rng, cust, secs, amount, label = _base(rows, seed, days=30)
    start = datetime(2024, 3, 1)
    channels = ["手机银行", "网上银行", "ATM", "柜面", "POS"]
    types = ["转账", "消费", "取现", "缴费"]
    names = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄勇"]
    out = []
    for i in range(rows):
        fraud = label[i] == 1
        c = int(cust[i])
        when = start + timedelta(seconds=int(secs[i]))
        before = float(np.round(rng.uniform(1000, 80_000), 2))
        amt = min(float(amount[i]) * (3 if fraud else 1), before)
        out.append([f"SN{20240000000 + i}", f"KH{100000 + c}", names[c % 8] + str(c), when.strftime("%Y/%m/%d %H:%M:%S"),
                    f"{amt:,.2f}", f"{before:.2f}", f"{before - amt:.2f}",
                    channels[rng.integers(0, 2) if fraud else rng.integers(0, 5)],
                    types[0 if fraud and rng.random() < 0.8 else rng.integers(0, 4)],
                    f"DEV{c * 3 + (rng.integers(0, 50) if fraud and rng.random() < 0.7 else rng.integers(0, 2))}",
                    "已冻结" if fraud else "正常", "是" if fraud else "否"])
    header = ["交易流水号", "客户号", "客户姓名", "交易时间", "交易金额", "交易前余额", "交易后余额", "渠道", "交易类型",
              "设备号", "核查结果", "是否欺诈"]
    _write_csv(path, header, out, encoding="gbk")
    return Expected({"transaction_id": "交易流水号", "customer_id": "客户号", "timestamp": "交易时间",
                     "amount": "交易金额", "label": "是否欺诈", "balance_before": "交易前余额",
                     "balance_after": "交易后余额", "channel": "渠道", "transaction_type": "交易类型",
                     "device_id": "设备号"},
                    {"encoding_detected", "personal_text", "label_leak", "families_unavailable"}, 0)


def european_bank_like(path, rows: int = 1500, seed: int = 6) -> Expected:
    """A French bank's export in Windows-1252: semicolons, day-first dotted dates, decimal
    commas (1.234,56 €) and accented headers and payees."""
    rng, cust, secs, amount, label = _base(rows, seed, days=20)
    start = datetime(2024, 1, 1)
    payees = ["Société Générale", "Crédit Agricole", "Café de la Gare", "Boulangerie Müller", "Hôtel Élysée"]
    out = []
    for i in range(rows):
        when = start + timedelta(seconds=int(secs[i]))
        whole, cents = divmod(int(round(amount[i] * 100)), 100)
        out.append([when.strftime("%d.%m.%Y %H:%M"), f"CL{5000 + int(cust[i])}", f"{whole:,}".replace(",", ".") + f",{cents:02d} €",
                    payees[rng.integers(0, 5)], f"Paiement n° {i}", "oui" if label[i] else "non"])
    header = ["Date opération", "N° client", "Montant (EUR)", "Bénéficiaire", "Libellé", "Fraude"]
    _write_csv(path, header, out, encoding="cp1252", delimiter=";")
    return Expected({"timestamp": "Date opération", "customer_id": "N° client", "amount": "Montant (EUR)",
                     "counterparty_id": "Bénéficiaire", "label": "Fraude"},
                    {"encoding_detected", "decimal_comma", "generated_ids"}, 0)


def japanese_shift_jis_like(path, rows: int = 800, seed: int = 7) -> Expected:
    """A Japanese card issuer's export in Shift-JIS (which GB18030 would also decode, wrongly)."""
    rng, cust, secs, amount, label = _base(rows, seed, days=10)
    start = datetime(2024, 5, 1)
    shops = ["東京電力", "セブンイレブン", "楽天市場", "ローソン", "ヨドバシカメラ"]
    out = [[f"T{i:06d}", f"K{int(cust[i]):05d}", (start + timedelta(seconds=int(secs[i]))).strftime("%Y/%m/%d %H:%M"),
            str(int(amount[i] * 100)), shops[rng.integers(0, 5)], int(label[i])] for i in range(rows)]
    header = ["取引ID", "顧客番号", "取引日時", "金額", "加盟店", "不正フラグ"]
    _write_csv(path, header, out, encoding="shift_jis")
    return Expected({"transaction_id": "取引ID", "customer_id": "顧客番号", "timestamp": "取引日時", "amount": "金額",
                     "counterparty_id": "加盟店", "label": "不正フラグ"}, {"encoding_detected"}, 0)


CONVENTIONS = {"ieee_cis_like": ieee_cis_like, "sparkov_like": sparkov_like, "paysim_like": paysim_like,
               "ulb_like": ulb_like, "chinese_core_banking_like": chinese_core_banking_like,
               "european_bank_like": european_bank_like, "japanese_shift_jis_like": japanese_shift_jis_like}
