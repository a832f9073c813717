"""Point-in-time features, computed in DuckDB SQL and materialised per dataset and version.

Rules (../shared/design.md, Correctness rules):
* A transaction's features use only transactions at or before its time. Windows are time
  ranges ``(t - n, t]`` (RANGE frames), never row counts.
* Ties: transactions with exactly the same timestamp are all "at t" and see each other in
  time windows; "previous transaction" and "first use" features order them by transaction
  id. Both are deterministic (file order never matters), and appending later transactions
  never changes the features of earlier ones.
* Comparisons with the customer's own history exclude the transaction itself (and its
  same-time peers: ``EXCLUDE GROUP``).
* Label-derived features use only labels of transactions in ``(t - delay - n, t - delay]``.

Families are built only from the roles a dataset has (core.schema.FAMILY_NEEDS): without a
customer id there are no per-customer windows, previous-transaction gaps or first-use flags.
Extra columns become features unless the health check at load left them out (personal
text, constants, row identifiers, leakage, too many categories).
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Callable

from .datasets import get_dataset
from .errors import RiskdeskError
from .schema import missing_families
from .store import Store

# Bump when the SQL of a feature changes meaning, so stored feature sets are rebuilt.
CODE_VERSION = 3
FAMILIES = ("amount", "time", "velocity", "novelty", "balance", "counterparty", "device", "categorical", "extras")
KEY_COLUMNS = ("transaction_id", "timestamp", "customer_id", "amount", "label")
MAX_EXTRA_CATEGORIES = 100
_WINDOW_RE = re.compile(r"^(\d{1,4})([hd])$")


def _window_seconds(text: str) -> int:
    m = _WINDOW_RE.match(text.strip())
    if not m:
        raise RiskdeskError(f"window {text!r} is not like 1h, 24h, 7d or 30d")
    n, unit = int(m.group(1)), m.group(2)
    seconds = n * (3600 if unit == "h" else 86400)
    if not 60 <= seconds <= 400 * 86400:
        raise RiskdeskError(f"window {text!r} must be between 1 minute and 400 days")
    return seconds


@dataclass(frozen=True)
class FeatureConfig:
    """Which features to compute. Its version is a hash of everything that changes them."""
    name: str = "standard"
    families: tuple[str, ...] = FAMILIES
    windows: tuple[str, ...] = ("1h", "24h", "7d", "30d")
    entity_windows: tuple[str, ...] = ("1d", "7d", "30d")
    risk_windows: tuple[int, ...] = (7, 30)
    delay_days: int = 7

    def __post_init__(self):
        unknown = set(self.families) - set(FAMILIES)
        if unknown:
            raise RiskdeskError(f"unknown feature families: {', '.join(sorted(unknown))}")
        for w in self.windows + self.entity_windows:
            _window_seconds(w)
        if not 0 <= self.delay_days <= 365:
            raise RiskdeskError("label delay must be between 0 and 365 days")
        if any(not 1 <= n <= 365 for n in self.risk_windows):
            raise RiskdeskError("risk windows must be between 1 and 365 days")

    @property
    def version(self) -> str:
        payload = json.dumps({**asdict(self), "code": CODE_VERSION}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:10]


HANDBOOK = FeatureConfig(name="handbook", windows=("1d", "7d", "30d"), risk_windows=(1, 7, 30), delay_days=7)
NAMED = {"standard": FeatureConfig(), "handbook": HANDBOOK}


@dataclass
class Feature:
    name: str
    family: str
    sql: str
    en: str
    zh: str
    rule_en: str
    rule_zh: str
    kind: str = "numeric"           # numeric | categorical

    def public(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "sql"}


@dataclass
class _Builder:
    features: list[Feature] = field(default_factory=list)
    windows: dict[str, str] = field(default_factory=dict)

    def window(self, name: str, spec: str) -> str:
        self.windows[name] = spec
        return name

    def add(self, *args, **kw) -> None:
        self.features.append(Feature(*args, **kw))


def _range(partition: str, seconds: int, exclude: str = "NO OTHERS", end: str = "CURRENT ROW") -> str:
    # (t - n, t]: RANGE frames are inclusive, so the far end is pulled in by one microsecond.
    return (f"PARTITION BY {partition} ORDER BY timestamp RANGE BETWEEN "
            f"INTERVAL {int(seconds)} SECOND - INTERVAL 1 MICROSECOND PRECEDING AND {end} EXCLUDE {exclude}")


def _entity(role: str) -> str:
    """Partition key for an entity; rows without one get partitions of their own (one big
    NULL partition would make distinct counts over time frames quadratic)."""
    return f"coalesce('k:' || {role}, 'n:' || transaction_id)"


def _label(seconds: int) -> str:
    return f"{seconds // 86400}d" if seconds % 86400 == 0 and seconds >= 86400 else f"{seconds // 3600}h"


ALWAYS_TIME = "uses only the transaction's own time"
ALWAYS_TIME_ZH = "仅使用本笔交易的时间"


def _standard(config: FeatureConfig, roles: set[str], extras: list[dict]) -> _Builder:
    b = _Builder()
    fam = set(config.families) - {f["family"] for f in missing_families(roles)}
    has_customer = "customer_id" in roles
    seq = b.window("w_seq", "PARTITION BY customer_id ORDER BY timestamp, transaction_id") if has_customer else ""
    if "amount" in fam:
        b.add("tx_amount", "amount", "amount", "Amount of this transaction", "本笔交易金额",
              "this transaction's own value", "本笔交易自身的取值")
    if "time" in fam:
        b.add("hour", "time", "hour(timestamp)", "Hour of day (0–23)", "交易小时（0–23）", ALWAYS_TIME, ALWAYS_TIME_ZH)
        b.add("day_of_week", "time", "isodow(timestamp) - 1", "Day of week (0 = Monday)", "星期几（0 = 周一）",
              ALWAYS_TIME, ALWAYS_TIME_ZH)
        b.add("is_weekend", "time", "CAST(isodow(timestamp) >= 6 AS INTEGER)", "Saturday or Sunday", "是否周末",
              ALWAYS_TIME, ALWAYS_TIME_ZH)
        b.add("is_night", "time", "CAST(hour(timestamp) <= 6 AS INTEGER)", "Between 00:00 and 06:59",
              "是否夜间（00:00–06:59）", ALWAYS_TIME, ALWAYS_TIME_ZH)
        b.add("is_month_end", "time", "CAST(day(timestamp) >= day(last_day(timestamp)) - 2 AS INTEGER)",
              "In the last three days of the month", "是否月末最后三天", ALWAYS_TIME, ALWAYS_TIME_ZH)
    if "time" in fam and has_customer:
        b.add("secs_since_prev", "time",
              f"epoch(timestamp) - epoch(lag(timestamp) OVER {seq})",
              "Seconds since the customer's previous transaction", "距该客户上一笔交易的秒数",
              "previous transaction of the same customer (same-time ties ordered by id)",
              "同一客户的上一笔交易（同一时刻按流水号排序）")
    if "velocity" in fam:
        for w in config.windows:
            sec = _window_seconds(w)
            lab = _label(sec)
            win = b.window(f"w_c_{lab}", _range("customer_id", sec))
            rule = f"customer's transactions in ({lab} before, now], this one included"
            rule_zh = f"该客户在过去 {lab} 内（含本笔）的交易"
            b.add(f"cust_count_{lab}", "velocity", f"count(*) OVER {win}", f"Customer's transactions in the last {lab}",
                  f"客户近 {lab} 交易笔数", rule, rule_zh)
            b.add(f"cust_sum_{lab}", "velocity", f"sum(amount) OVER {win}", f"Customer's total amount in the last {lab}",
                  f"客户近 {lab} 交易总额", rule, rule_zh)
            b.add(f"cust_mean_{lab}", "velocity", f"avg(amount) OVER {win}", f"Customer's mean amount in the last {lab}",
                  f"客户近 {lab} 平均金额", rule, rule_zh)
            b.add(f"cust_max_{lab}", "velocity", f"max(amount) OVER {win}", f"Customer's largest amount in the last {lab}",
                  f"客户近 {lab} 最大金额", rule, rule_zh)
        prev30 = b.window("w_c_prev30", _range("customer_id", 30 * 86400, exclude="GROUP"))
        rule = "customer's transactions in the 30 days before, this one excluded"
        rule_zh = "该客户此前 30 天内的交易（不含本笔）"
        b.add("amount_to_mean_30d", "velocity", f"amount / NULLIF(avg(amount) OVER {prev30}, 0)",
              "Amount divided by the customer's mean amount over the previous 30 days",
              "交易金额 / 客户此前 30 天平均金额", rule, rule_zh)
        b.add("amount_zscore_30d", "velocity",
              f"(amount - avg(amount) OVER {prev30}) / NULLIF(stddev_samp(amount) OVER {prev30}, 0)",
              "How many standard deviations the amount is above the customer's previous 30 days",
              "金额相对客户此前 30 天的标准分（z 值）", rule, rule_zh)
        b.add("cust_prev_count", "velocity",
              f"count(*) OVER ({seq} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)",
              "Customer's transactions before this one (all history)", "该客户此前的全部交易笔数",
              "all earlier transactions of the customer", "该客户所有更早的交易")
        b.add("hour_share", "velocity",
              f"count(*) OVER (PARTITION BY customer_id, hour(timestamp) // 3 ORDER BY timestamp, transaction_id "
              f"ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) / "
              f"NULLIF(count(*) OVER ({seq} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)",
              "Share of the customer's earlier transactions in the same 3-hour block (low = unusual hour)",
              "客户以往交易中落在同一 3 小时时段的比例（低 = 不寻常的时段）",
              "all earlier transactions of the customer", "该客户所有更早的交易")
    if "novelty" in fam:
        for role, short, en, zh in (("device_id", "device", "device", "设备"), ("channel", "channel", "channel", "渠道"),
                                    ("counterparty_id", "counterparty", "counterparty", "交易对手")):
            if role not in roles:
                continue
            b.add(f"new_{short}", "novelty",
                  f"CASE WHEN {role} IS NULL THEN NULL ELSE CAST(row_number() OVER (PARTITION BY customer_id, {role} "
                  f"ORDER BY timestamp, transaction_id) = 1 AS INTEGER) END",
                  f"First time the customer uses this {en}", f"客户首次使用该{zh}",
                  "all earlier transactions of the customer", "该客户所有更早的交易")
        if "device_id" in roles:
            win = b.window("w_c_7d_dev", _range("customer_id", 7 * 86400))
            b.add("cust_devices_7d", "novelty", f"count(DISTINCT device_id) OVER {win}",
                  "Distinct devices the customer used in the last 7 days", "客户近 7 天使用的不同设备数",
                  "customer's transactions in (7d before, now]", "该客户近 7 天（含本笔）的交易")
    if "balance" in fam and {"balance_before", "balance_after"} <= roles:
        own = "uses only this transaction's balances"
        own_zh = "仅使用本笔交易的余额"
        b.add("amount_to_balance", "balance", "amount / NULLIF(balance_before, 0)", "Amount / balance before",
              "交易金额 / 交易前余额", own, own_zh)
        b.add("balance_after_to_before", "balance", "balance_after / NULLIF(balance_before, 0)",
              "Balance after / balance before", "交易后余额 / 交易前余额", own, own_zh)
        b.add("drained", "balance",
              "CAST(balance_before > 0 AND balance_after <= 0.1 * balance_before AS INTEGER)",
              "Balance drained by more than 90%", "余额被转走 90% 以上", own, own_zh)
        b.add("balance_mismatch", "balance",
              "CAST(least(abs(balance_before - amount - balance_after), abs(balance_before + amount - balance_after)) "
              "> 0.01 AS INTEGER)",
              "Balances do not add up (before ± amount ≠ after)", "余额不平（交易前余额 ± 金额 ≠ 交易后余额）", own, own_zh)
    for role, short, en, zh, family in (("counterparty_id", "cp", "counterparty", "交易对手", "counterparty"),
                                        ("device_id", "dev", "device", "设备", "device")):
        if family not in fam or role not in roles:
            continue
        for w in config.entity_windows:
            sec = _window_seconds(w)
            lab = _label(sec)
            win = b.window(f"w_{short}_{lab}", _range(_entity(role), sec))
            rule = f"this {en}'s transactions in ({lab} before, now], this one included"
            rule_zh = f"该{zh}在过去 {lab} 内（含本笔）的交易"
            b.add(f"{short}_count_{lab}", family, f"CASE WHEN {role} IS NOT NULL THEN count(*) OVER {win} END",
                  f"Transactions of this {en} in the last {lab}", f"该{zh}近 {lab} 交易笔数", rule, rule_zh)
            if not has_customer:
                continue
            b.add(f"{short}_customers_{lab}", family,
                  f"CASE WHEN {role} IS NOT NULL THEN count(DISTINCT customer_id) OVER {win} END",
                  f"Distinct customers of this {en} in the last {lab} (fan-in)",
                  f"该{zh}近 {lab} 的不同客户数（汇入）", rule, rule_zh)
        if "label" in roles:
            d = config.delay_days
            for n in config.risk_windows:
                win = b.window(f"w_{short}_risk_{n}", _range(_entity(role), (d + n) * 86400, exclude="NO OTHERS",
                                                              end=f"INTERVAL {d} DAY PRECEDING"))
                rule = (f"labels of this {en}'s transactions in ({d + n}d before, {d}d before]: only labels older "
                        f"than the {d}-day label delay")
                rule_zh = f"该{zh}在 {d + n} 天前至 {d} 天前之间交易的标签（仅用超过 {d} 天标签延迟的标签）"
                b.add(f"{short}_fraud_share_{n}d", family,
                      f"CASE WHEN {role} IS NOT NULL THEN sum(label) OVER {win} / NULLIF(count(label) OVER {win}, 0) END",
                      f"Fraud share of this {en}'s labelled transactions {n} days before the label delay",
                      f"该{zh}在标签延迟之前 {n} 天内已标注交易的欺诈占比", rule, rule_zh)
                b.add(f"{short}_labelled_{n}d", family,
                      f"CASE WHEN {role} IS NOT NULL THEN count(label) OVER {win} END",
                      f"Labelled transactions of this {en} behind that share", f"上述占比所依据的已标注交易数",
                      rule, rule_zh)
    if "categorical" in fam:
        for role, en, zh in (("channel", "Channel", "渠道"), ("transaction_type", "Transaction type", "交易类型")):
            if role in roles:
                b.add(role, "categorical", role, en, zh, "this transaction's own value", "本笔交易自身的取值",
                      kind="categorical")
    if "extras" in fam:
        names = {f.name for f in b.features}
        for e in extras:
            if not e.get("use", True):
                continue
            name = base = "extra_" + (re.sub(r"\W+", "_", e["source"]).strip("_").lower()[:40] or e["column"])
            k = 2
            while name in names:
                name, k = f"{base}_{k}", k + 1
            names.add(name)
            kind = "numeric" if e["type"] in ("DOUBLE", "BIGINT", "INTEGER") else "categorical"
            if kind == "categorical" and e.get("distinct", 0) > MAX_EXTRA_CATEGORIES:
                continue
            b.add(name, "extras", e["column"], f"Extra column “{e['source']}”", f"附加列“{e['source']}”",
                  "this transaction's own value", "本笔交易自身的取值", kind=kind)
    return b


def _handbook(config: FeatureConfig, roles: set[str]) -> _Builder:
    """Le Borgne et al., Fraud Detection Handbook, 'Baseline feature transformation'."""
    b = _Builder()
    hb = "Fraud Detection Handbook baseline"
    b.add("TX_DURING_WEEKEND", "time", "CAST(isodow(timestamp) >= 6 AS INTEGER)", "Weekend (handbook)",
          "周末（手册）", ALWAYS_TIME, ALWAYS_TIME_ZH)
    b.add("TX_DURING_NIGHT", "time", "CAST(hour(timestamp) <= 6 AS INTEGER)", "Night: hour ≤ 6 (handbook)",
          "夜间：小时 ≤ 6（手册）", ALWAYS_TIME, ALWAYS_TIME_ZH)
    for n in (1, 7, 30) if "customer_id" in roles else ():
        win = b.window(f"w_c_{n}", _range("customer_id", n * 86400))
        rule, rule_zh = f"customer's transactions in (t − {n} days, t] ({hb})", f"客户在 (t − {n} 天, t] 内的交易"
        b.add(f"CUSTOMER_ID_NB_TX_{n}DAY_WINDOW", "velocity", f"count(*) OVER {win}",
              f"Customer's transactions in {n} days (handbook)", f"客户 {n} 天交易笔数（手册）", rule, rule_zh)
        b.add(f"CUSTOMER_ID_AVG_AMOUNT_{n}DAY_WINDOW", "velocity", f"avg(amount) OVER {win}",
              f"Customer's mean amount in {n} days (handbook)", f"客户 {n} 天平均金额（手册）", rule, rule_zh)
    if "counterparty_id" in roles and "label" in roles:
        d = 7
        for n in (1, 7, 30):
            win = b.window(f"w_t_{n}", _range(_entity("counterparty_id"), (d + n) * 86400, exclude="NO OTHERS",
                                              end=f"INTERVAL {d} DAY PRECEDING"))
            rule = f"terminal's transactions in (t − {d + n} days, t − {d} days] ({hb})"
            rule_zh = f"终端在 (t − {d + n} 天, t − {d} 天] 内的交易"
            b.add(f"TERMINAL_ID_NB_TX_{n}DAY_WINDOW", "counterparty", f"count(*) OVER {win}",
                  f"Terminal's transactions in the {n}-day window before the delay (handbook)",
                  f"终端在延迟期前 {n} 天的交易笔数（手册）", rule, rule_zh)
            b.add(f"TERMINAL_ID_RISK_{n}DAY_WINDOW", "counterparty",
                  f"coalesce(sum(label) OVER {win} / NULLIF(count(*) OVER {win}, 0), 0)",
                  f"Terminal's fraud share in that window (handbook)", f"终端在该窗口的欺诈占比（手册）", rule, rule_zh)
    return b


def _builder(config: FeatureConfig, ds: dict, store: Store) -> _Builder:
    roles = set(ds["mapping"])
    if config.name == "handbook":
        return _handbook(config, roles)
    extras = []
    for e in ds["extras"]:
        e = dict(e)
        if e["type"] == "VARCHAR" and "distinct" not in e:
            e["distinct"] = store.scalar(f"SELECT approx_count_distinct({e['column']}) FROM {ds['table']}") or 0
        extras.append(e)
    return _standard(config, roles, extras)


def feature_sql(store: Store, ds: dict, config: FeatureConfig) -> tuple[str, list[Feature]]:
    """The one SELECT that computes every feature of a dataset (transaction order)."""
    b = _builder(config, ds, store)
    if not b.features:
        raise RiskdeskError(f"dataset {ds['name']!r} has no roles for the chosen feature families")
    cols = ", ".join(f"{f.sql} AS {_q(f.name)}" for f in b.features)
    windows = ", ".join(f"{name} AS ({spec})" for name, spec in b.windows.items())
    sql = (f"SELECT {', '.join(KEY_COLUMNS)}, {cols} FROM {ds['table']}"
           + (f" WINDOW {windows}" if windows else "") + " ORDER BY timestamp, transaction_id")
    return sql, b.features


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table_name(dataset_id: int, version: str) -> str:
    return f"feat_{int(dataset_id)}_{version}"


def build_features(store: Store, dataset: str, config: FeatureConfig | None = None,
                   progress: Callable[[float, str], None] | None = None, rebuild: bool = False) -> dict:
    """Materialise a dataset's features (or reuse the stored ones). Returns the feature set
    entry: dataset, version, table, rows, seconds and the catalogue."""
    config = config or FeatureConfig()
    report = progress or (lambda f, m: None)
    ds = get_dataset(store, dataset)
    version = config.version
    existing = store.dicts("SELECT * FROM feature_sets WHERE dataset_id = ? AND version = ?", [ds["id"], version])
    if existing and not rebuild:
        return _public(existing[0], ds)
    report(0.05, "computing features")
    sql, features = feature_sql(store, ds, config)
    table = _table_name(ds["id"], version)
    start = time.perf_counter()
    cur = store.cursor()
    try:
        cur.execute(f"DROP TABLE IF EXISTS {table}_new")
        cur.execute(f"CREATE TABLE {table}_new AS {sql}")
        seconds = time.perf_counter() - start
        rows = cur.execute(f"SELECT count(*) FROM {table}_new").fetchone()[0]
        report(0.9, "storing")
        with store.write(cur):
            cur.execute(f"DROP TABLE IF EXISTS {table}")
            cur.execute(f"ALTER TABLE {table}_new RENAME TO {table}")
            cur.execute("DELETE FROM feature_sets WHERE dataset_id = ? AND version = ?", [ds["id"], version])
            cur.execute("INSERT INTO feature_sets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [ds["id"], version, config.name, json.dumps(asdict(config)), table,
                         json.dumps([f.public() for f in features], ensure_ascii=False), rows, seconds,
                         datetime.now()])
    except BaseException:
        try:
            cur.execute(f"DROP TABLE IF EXISTS {table}_new")
        except Exception:
            pass
        raise
    finally:
        cur.close()
    report(1.0, "done")
    return _public(store.dicts("SELECT * FROM feature_sets WHERE dataset_id = ? AND version = ?",
                               [ds["id"], version])[0], ds)


def _public(row: dict, ds: dict) -> dict:
    return {"dataset": ds["name"], "dataset_id": ds["id"], "version": row["version"], "name": row["name"],
            "table": row["table_name"], "rows": row["rows"], "seconds": row["seconds"],
            "config": json.loads(row["config"]), "catalogue": json.loads(row["catalogue"]),
            "created_at": row["created_at"]}


def unavailable_families(ds: dict) -> list[dict]:
    """Feature families this dataset cannot have, with the roles each needs (for the UI)."""
    return missing_families(ds["mapping"])


def is_built(store: Store, dataset_id: int, config: FeatureConfig) -> bool:
    """Whether this feature set is already materialised for the dataset."""
    return bool(store.scalar("SELECT count(*) FROM feature_sets WHERE dataset_id = ? AND version = ?",
                             [dataset_id, config.version]))


def feature_names(fs: dict, kind: str | None = None) -> list[str]:
    return [f["name"] for f in fs["catalogue"] if kind is None or f["kind"] == kind]


def export_features(store: Store, fs: dict, out) -> dict:
    """Write transaction_id and one column per feature to Parquet."""
    from pathlib import Path
    out = Path(out)
    if out.suffix.lower() != ".parquet":
        raise RiskdeskError(f"{out.name}: --out must end in .parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    cols = ", ".join(["transaction_id"] + [_q(n) for n in feature_names(fs)])
    cur = store.cursor()
    try:
        cur.execute(f"COPY (SELECT {cols} FROM {fs['table']} ORDER BY timestamp, transaction_id) TO "
                    f"'{str(out).replace(chr(39), chr(39) * 2)}' (FORMAT parquet)")
    finally:
        cur.close()
    return {"out": str(out), "rows": fs["rows"], "features": len(fs["catalogue"])}
