"""The seeded demo data generator (`python -m core sample`).

Schema of the seed article: trans_id, user_id, trans_time, amount, pre_balance, post_balance,
channel, trans_type, device_id, counterparty, label. Fraud is built so that a single row rarely
gives it away; the customer's history, the device/channel history and the counterparty's
recent fan-in do:

* account takeover: a device and a digital channel the customer never used, often at night,
  one to four transfers in minutes that drain 90-100% of the balance to a mule or new payee;
* card testing: a burst of tiny purchases at unfamiliar merchants, then one large purchase;
* outsized payment: one transfer 5-20x the customer's usual amount to a new payee;
* mule accounts: payees that, for one to three weeks, receive moderate transfers from many
  unrelated customers.

Legitimate look-alikes: salary-day spending and savings sweeps (large transfers right after
salary), monthly rent (large but to the same landlord every month), phone changes (a new
device that then stays), tablets and family computers used now and then, bursts of small bill
payments and top-ups, rare large purchases, one-off large payments to new payees (a car, a
deposit), customers moving most of their savings out, travellers paying from a new device at
odd hours, and collection accounts (ticket sales, charity drives) with fan-in from many
customers. Some fraud is subtle on purpose: partial takeovers through the customer's own
device, and disputed purchases that look ordinary.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from .store import connect

import numpy as np

COLUMNS = ["trans_id", "user_id", "trans_time", "amount", "pre_balance", "post_balance", "channel",
           "trans_type", "device_id", "counterparty", "label"]
DIGITAL = ("mobile_banking", "online_banking")
_HOUR_WEIGHTS = np.array([0.2, 0.1, 0.05, 0.05, 0.05, 0.1, 0.4, 1.0, 1.5, 1.6, 1.6, 1.6, 1.7, 1.5,
                          1.4, 1.4, 1.4, 1.5, 1.7, 1.8, 1.6, 1.2, 0.8, 0.4])
_HOUR_P = _HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()
_NIGHT_HOURS = np.array([0, 1, 2, 3, 4, 5, 23])


class _Rows:
    """Column lists that fraud and legitimate generators append to."""

    def __init__(self):
        self.cust, self.t, self.amount, self.credit, self.drain = [], [], [], [], []
        self.channel, self.type, self.device, self.cp, self.label = [], [], [], [], []

    def add(self, cust, t, amount, credit, channel, ttype, device, cp, label, drain=0.0):
        self.cust.append(cust); self.t.append(t); self.amount.append(amount); self.credit.append(credit)
        self.drain.append(drain); self.channel.append(channel); self.type.append(ttype)
        self.device.append(device); self.cp.append(cp); self.label.append(label)


def generate(rows: int = 100_000, seed: int = 42, start: str = "2024-01-01", days: int = 121):
    """Generate about `rows` transactions over `days` days (pandas DataFrame, COLUMNS order)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_cust = max(20, rows // 34)
    t0 = np.datetime64(start, "s")
    span = days * 86400
    out = _Rows()

    # Customer profiles.
    typical = np.exp(rng.normal(5.0, 0.7, n_cust))            # usual amount, ~150
    spread = rng.uniform(0.35, 0.8, n_cust)
    rate = rng.gamma(2.0, 1.0, n_cust)
    # Everyday events fill what salary, rent, top-ups (~15 per customer) and fraud (~2%) leave.
    everyday = max(rows * 0.98 - n_cust * 15 * days / 121, rows * 0.3)
    rate = rate / rate.mean() * (everyday / n_cust / days)   # legit events per day
    digital = rng.choice(DIGITAL, n_cust, p=[0.7, 0.3])
    counter_user = rng.random(n_cust) < 0.08
    phone = np.array([f"DM{v:07x}" for v in rng.integers(0, 2**28, n_cust)])
    web = np.array([f"DW{v:07x}" for v in rng.integers(0, 2**28, n_cust)])
    n_merchants, n_payees = max(200, n_cust), max(300, n_cust * 2)
    phone_change = np.where(rng.random(n_cust) < 0.10, rng.integers(10, days - 5, n_cust) * 86400, -1)
    salary_day = rng.choice([1, 10, 15, 25], n_cust)
    has_rent = rng.random(n_cust) < 0.4
    init_balance = typical * rng.uniform(20, 80, n_cust)

    has_tablet = rng.random(n_cust) < 0.15

    def device_for(c, channel, t, alternate=False):
        if alternate and has_tablet[c] and channel in DIGITAL:
            return f"DA{c:07x}"
        if channel == "mobile_banking":
            if phone_change[c] >= 0 and t >= phone_change[c]:
                return f"DN{c:07x}"
            return phone[c]
        if channel == "online_banking":
            return web[c]
        return None

    # Legitimate everyday transactions (vectorised draw, then per-row attributes).
    counts = rng.poisson(rate * days)
    cust = np.repeat(np.arange(n_cust), counts)
    n = len(cust)
    day = rng.integers(0, days, n)
    secs = day * 86400 + rng.choice(24, n, p=_HOUR_P) * 3600 + rng.integers(0, 3600, n)
    ttype = rng.choice(["purchase", "transfer", "withdrawal", "bill_payment"], n, p=[0.55, 0.2, 0.1, 0.15])
    amt = typical[cust] * np.exp(rng.normal(0, spread[cust]))
    amt = np.where(ttype == "bill_payment", rng.uniform(10, 200, n), amt)
    amt = np.where(rng.random(n) < 0.004, amt * rng.uniform(10, 30, n), amt)   # rare big purchases
    u = rng.random(n)
    fav_merchant = rng.integers(0, n_merchants, (n_cust, 8))
    fav_payee = rng.integers(0, n_payees, (n_cust, 4))
    fav_atm = rng.integers(0, 800, (n_cust, 2))
    pick = rng.integers(0, 8, n)
    alternate = rng.random(n) < 0.25
    for i in range(n):
        c = int(cust[i]); t = int(secs[i]); ty = ttype[i]
        if ty == "purchase":
            ch = "POS" if u[i] < 0.6 else digital[c]
            cp = f"M{(fav_merchant[c, pick[i]] if u[i] < 0.85 or u[i] >= 0.95 else rng.integers(n_merchants)):05d}"
        elif ty == "transfer":
            ch = "counter" if counter_user[c] or u[i] < 0.1 else digital[c]
            cp = f"P{fav_payee[c, pick[i] % 4]:06d}" if u[i] < 0.9 else f"P{rng.integers(n_payees):06d}"
        elif ty == "withdrawal":
            ch = "ATM" if u[i] < 0.9 else "counter"
            cp = f"A{fav_atm[c, pick[i] % 2]:04d}" if ch == "ATM" else "BRANCH"
        else:
            ch = digital[c]
            cp = f"B{(c * 7 + pick[i] % 3) % 60:03d}"
        out.add(c, t, float(amt[i]), False, ch, ty, device_for(c, ch, t, bool(alternate[i])), cp, 0)

    # Monthly salary, savings sweeps after salary, rent.
    months = [datetime.fromisoformat(start) + timedelta(days=d) for d in range(days)]
    month_starts = sorted({(m.year, m.month) for m in months})
    for c in range(n_cust):
        for (y, mo) in month_starts:
            pay = datetime(y, mo, int(salary_day[c]), 9, int(rng.integers(0, 59)))
            t = int((np.datetime64(pay, "s") - t0).astype(int))
            if 0 <= t < span:
                out.add(c, t, float(typical[c] * rng.uniform(20, 40)), True, "counter", "deposit", None,
                        f"E{c % 300:03d}", 0)
                if rng.random() < 0.25:
                    ts = t + int(rng.integers(3600, 3 * 86400))
                    ch = digital[c]
                    out.add(c, ts, float(typical[c] * rng.uniform(8, 25)), False, ch, "transfer",
                            device_for(c, ch, ts), f"S{c:06d}", 0)
                for _ in range(int(rng.poisson(2))):      # salary-day shopping
                    ts = t + int(rng.integers(3600, 2 * 86400))
                    out.add(c, ts, float(typical[c] * rng.uniform(2, 6)), False, "POS", "purchase", None,
                            f"M{rng.integers(n_merchants):05d}", 0)
            if has_rent[c]:
                rent = datetime(y, mo, int(rng.integers(1, 6)), int(rng.integers(8, 21)), 0)
                t = int((np.datetime64(rent, "s") - t0).astype(int))
                if 0 <= t < span:
                    ch = digital[c]
                    out.add(c, t, float(typical[c] * 12), False, ch, "transfer", device_for(c, ch, t),
                            f"L{c % 997:04d}", 0)
        if rng.random() < 0.15:                             # burst of small top-ups
            t = int(rng.integers(0, span - 3600))
            for k in range(int(rng.integers(3, 7))):
                ch = digital[c]
                out.add(c, t + k * int(rng.integers(30, 300)), float(rng.choice([10, 20, 30, 50])), False,
                        ch, "bill_payment", device_for(c, ch, t), f"B{int(rng.integers(60)):03d}", 0)

    scale = rows / 100_000
    victims = rng.permutation(n_cust)
    vi = 0

    def victim():
        nonlocal vi
        c = int(victims[vi % n_cust]); vi += 1
        return c

    def fraud_time(night_p):
        d = int(rng.integers(3, days))
        hour = int(rng.choice(_NIGHT_HOURS)) if rng.random() < night_p else int(rng.choice(24, p=_HOUR_P))
        return d * 86400 + hour * 3600 + int(rng.integers(0, 3600))

    def other_digital(c):
        return "online_banking" if digital[c] == "mobile_banking" else "mobile_banking"

    def new_payee():
        return f"P{rng.integers(n_payees):06d}"

    # Legitimate look-alikes of each fraud pattern.
    for _ in range(int(round(220 * scale))):            # travelling: new device, other channel, odd hours
        c = int(rng.integers(n_cust)); t = fraud_time(0.35)
        ch = other_digital(c) if rng.random() < 0.6 else digital[c]
        dev = f"DT{rng.integers(0, 2**28):07x}"
        for j in range(int(rng.integers(1, 4))):
            out.add(c, t + j * int(rng.integers(60, 1800)), float(typical[c] * rng.uniform(1, 12)), False, ch,
                    "transfer" if rng.random() < 0.6 else "purchase", dev, new_payee(), 0)
    for _ in range(int(round(160 * scale))):            # moving savings out: most of the balance, new payee
        c = int(rng.integers(n_cust)); t = fraud_time(0.1)
        ch = digital[c] if rng.random() < 0.7 else other_digital(c)
        dev = device_for(c, ch, t) if rng.random() < 0.7 else f"DT{rng.integers(0, 2**28):07x}"
        out.add(c, t, 0.0, False, ch, "transfer", dev, new_payee(), 0, drain=float(rng.uniform(0.6, 1.0)))
    for _ in range(int(round(450 * scale))):            # one-off large payments (a car, a deposit, tuition)
        c = int(rng.integers(n_cust)); t = fraud_time(0.05)
        ch = digital[c] if rng.random() < 0.8 else "counter"
        out.add(c, t, float(typical[c] * rng.uniform(3, 20)), False, ch, "transfer", device_for(c, ch, t),
                new_payee(), 0)
    for k in range(max(2, int(round(40 * scale)))):      # collection accounts: fan-in, but legitimate
        payee = f"P{n_payees + 5000 + k:06d}"
        start_t = int(rng.integers(0, span - 21 * 86400))
        for _ in range(int(rng.integers(8, 30))):
            c = int(rng.integers(n_cust)); t = start_t + int(rng.integers(0, int(rng.integers(7, 21)) * 86400))
            ch = digital[c]
            out.add(c, t, float(typical[c] * rng.uniform(0.5, 6)), False, ch, "transfer", device_for(c, ch, t),
                    payee, 0)

    # Mule accounts: fan-in from many customers during an active window.
    n_mules = max(2, int(round(40 * scale)))
    mules = [f"P{n_payees + 1000 + k:06d}" for k in range(n_mules)]
    for mule in mules:
        start_t = int(rng.integers(0, span - 21 * 86400))
        active = int(rng.integers(7, 21)) * 86400
        for _ in range(int(rng.integers(8, 22))):
            c = int(rng.integers(n_cust))
            t = start_t + int(rng.integers(0, active))
            ch = digital[c]
            out.add(c, t, float(typical[c] * rng.uniform(2, 8)), False, ch, "transfer", device_for(c, ch, t),
                    mule, 1)
        for _ in range(int(rng.integers(2, 8))):        # mules look like ordinary accounts too
            c = int(rng.integers(n_cust))
            t = int(rng.integers(0, span))
            ch = digital[c]
            out.add(c, t, float(typical[c] * rng.uniform(0.3, 2)), False, ch, "transfer", device_for(c, ch, t),
                    mule, 0)
    # Account takeover.
    for _ in range(int(round(180 * scale))):
        c = victim()
        t = fraud_time(0.6)
        ch = other_digital(c) if rng.random() < 0.5 else digital[c]
        own_device = rng.random() < 0.2                 # remote-access malware or a stolen phone
        dev = device_for(c, ch, t) if own_device else f"DX{rng.integers(0, 2**28):07x}"
        k = int(rng.integers(1, 5))
        shares = rng.dirichlet(np.ones(k)) * (rng.uniform(0.9, 1.0) if rng.random() < 0.6 else rng.uniform(0.3, 0.9))
        cp = mules[int(rng.integers(n_mules))] if rng.random() < 0.5 else f"P{rng.integers(n_payees):06d}"
        remaining = 1.0
        for j in range(k):
            share = shares[j] / remaining if remaining > 0 else 1.0
            remaining -= shares[j]
            out.add(c, t + j * int(rng.integers(60, 900)), 0.0, False, ch, "transfer", dev, cp, 1,
                    drain=min(share, 1.0))
    # Card testing.
    for _ in range(int(round(90 * scale))):
        c = victim()
        t = fraud_time(0.4)
        ch = "online_banking" if rng.random() < 0.6 else "POS"
        dev = f"DX{rng.integers(0, 2**28):07x}" if ch == "online_banking" else None
        for j in range(int(rng.integers(3, 9))):
            t += int(rng.integers(20, 400))
            out.add(c, t, float(round(rng.uniform(0.5, 5), 2)), False, ch, "purchase", dev,
                    f"M{rng.integers(n_merchants):05d}", 1)
        out.add(c, t + int(rng.integers(60, 1800)), float(typical[c] * rng.uniform(10, 40)), False, ch,
                "purchase", dev, f"M{rng.integers(n_merchants):05d}", 1)
    # Outsized payment to a new payee through the customer's usual channel and device.
    for _ in range(int(round(300 * scale))):
        c = victim()
        t = fraud_time(0.3)
        ch = digital[c]
        out.add(c, t, float(typical[c] * rng.uniform(3, 15)), False, ch, "transfer", device_for(c, ch, t),
                new_payee(), 1)
    # Disputed purchases that look ordinary (first-party fraud): no signal in the data.
    for _ in range(int(round(60 * scale))):
        c = victim()
        t = fraud_time(0.0)
        out.add(c, t, float(typical[c] * rng.uniform(0.5, 3)), False, "POS" if rng.random() < 0.6 else digital[c],
                "purchase", None, f"M{fav_merchant[c, int(rng.integers(8))]:05d}", 1)

    # Order by customer and time, then run balances forward.
    cust_a = np.array(out.cust)
    t_a = np.array(out.t, dtype=np.int64)
    order = np.lexsort((t_a, cust_a))
    amount = np.array(out.amount)[order]
    credit = np.array(out.credit)[order]
    drain = np.array(out.drain)[order]
    cust_s = cust_a[order]
    pre = np.empty(len(order))
    post = np.empty(len(order))
    amount_l = amount.tolist(); credit_l = credit.tolist(); drain_l = drain.tolist(); cust_l = cust_s.tolist()
    declined = np.zeros(len(order), dtype=bool)
    bal = 0.0
    prev = -1
    for i in range(len(order)):
        c = cust_l[i]
        if c != prev:
            bal = float(init_balance[c]); prev = c
        a = amount_l[i]
        if credit_l[i]:
            p = bal; bal = bal + a
        else:
            limited = drain_l[i] > 0 or a > bal
            if drain_l[i] > 0:
                a = bal * drain_l[i]
            elif a > bal:
                a = bal * 0.5
            a = round(a, 2)
            if limited and a < 1.0:  # an (almost) empty account: the bank declines, nothing is booked
                declined[i] = True
                continue
            p = bal; bal = bal - a
        amount_l[i] = round(a, 2)
        pre[i] = round(p, 2); post[i] = round(bal, 2)

    frame = pd.DataFrame({
        "user_id": [f"U{c:06d}" for c in cust_l],
        "trans_time": (t0 + t_a[order].astype("timedelta64[s]")),
        "amount": amount_l, "pre_balance": pre, "post_balance": post,
        "channel": np.array(out.channel, dtype=object)[order],
        "trans_type": np.array(out.type, dtype=object)[order],
        "device_id": np.array(out.device, dtype=object)[order],
        "counterparty": np.array(out.cp, dtype=object)[order],
        "label": np.array(out.label, dtype=np.int8)[order],
    })
    frame = frame[~declined]
    frame = frame.sort_values(["trans_time", "user_id"], kind="stable").reset_index(drop=True)
    frame.insert(0, "trans_id", [f"T{i:09d}" for i in range(1, len(frame) + 1)])
    frame["trans_time"] = frame["trans_time"].dt.strftime("%Y-%m-%d %H:%M:%S")
    return frame[COLUMNS]


def write_sample(out: str | Path, rows: int = 100_000, seed: int = 42) -> dict:
    """Generate the demo data and write it as CSV or Parquet (by extension)."""

    from .errors import RiskdeskError

    out = Path(out)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise RiskdeskError(f"{out.name}: --out must end in .csv or .parquet")
    if rows < 100:
        raise RiskdeskError("--rows must be at least 100")
    frame = generate(rows, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    con = connect()
    con.register("frame", frame)
    fmt = "(FORMAT parquet)" if out.suffix.lower() == ".parquet" else "(FORMAT csv, HEADER true)"
    con.execute(f"COPY frame TO '{str(out).replace(chr(39), chr(39) * 2)}' {fmt}")
    con.close()
    return {"out": str(out), "rows": int(len(frame)), "fraud_rows": int(frame["label"].sum()),
            "fraud_rate": float(frame["label"].mean()), "seed": seed}


DEMO_FILE = Path(__file__).resolve().parent.parent / "sample_data" / "demo_transactions.csv"
DEMO_NAME = "demo"


def load_demo(store, progress=None, actor: str = "app") -> dict:
    """Load the shipped demo file as dataset 'demo' unless that exact file is already loaded."""
    from .ingest import find_by_sha, ingest, inspect_source

    info = inspect_source(DEMO_FILE)
    existing = find_by_sha(store, info.sha256)
    if existing:
        return {"dataset": existing[0]["name"], "existed": True}
    names = {r[0] for r in store.rows("SELECT name FROM datasets")}
    name, k = DEMO_NAME, 2
    while name in names:
        name, k = f"{DEMO_NAME} ({k})", k + 1
    result = ingest(store, DEMO_FILE, name, info=info, progress=progress, actor=actor)
    result["existed"] = False
    return result
