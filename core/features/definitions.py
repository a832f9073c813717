"""What each feature means: its point-in-time SQL, written once, for the whole dataset or for
the rows an appended batch can change.

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
  A transaction's known label is its latest conclusive review decision, else the file's label
  (core.labels), so confirmed decisions reach these features, and only after the delay.

Families are built only from the roles a dataset has (core.schema.FAMILY_NEEDS): without a
customer id there are no per-customer windows, previous-transaction gaps or first-use flags.
Extra columns become features unless the health check at load left them out (personal
text, constants, row identifiers, leakage, too many categories).

Incremental form. The same SQL runs over a context: the rows from `since` (the earliest time a
recomputed row can look back to) plus, per customer, what happened before it, in carry-in
columns (`_prior_count`, `_prior_last`, `_prior_block_count`, `_prior_seen_<role>`). A full
build has NULL carry-ins, so both forms are one definition and give the same values.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from ..errors import RiskdeskError
from ..schema import FAMILIES, missing_families
from ..store import Store, quote_ident

# Bump when the SQL of a feature changes meaning, so stored feature sets are rebuilt.
CODE_VERSION = 4
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
            raise RiskdeskError(f"unknown feature families: {', '.join(sorted(unknown))} "
                                f"(choose from {', '.join(FAMILIES)})")
        if not self.families:
            raise RiskdeskError(f"choose at least one feature family ({', '.join(FAMILIES)})")
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
    # the role without which this feature is NULL: computed over only the rows that have it (select_sql)
    entity: str | None = None

    def public(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("sql", "entity")}


@dataclass
class Definition:
    """A dataset's features: the columns, the named windows (with the role partitioning each
    and how far back it looks, in seconds) and the carry-in columns the all-history features read."""
    features: list[Feature] = field(default_factory=list)
    windows: dict[str, str] = field(default_factory=dict)
    reach: dict[str, tuple[str, int]] = field(default_factory=dict)     # window -> (key role, lookback)
    carry: set[str] = field(default_factory=set)
    # time-range windows, for engines without interval frames: name -> (partition, seconds, end_days, exclude)
    frames: dict[str, tuple[str, int, int, str]] = field(default_factory=dict)

    def window(self, name: str, spec: str, key: str, lookback: int = 0) -> str:
        self.windows[name] = spec
        self.reach[name] = (key, lookback)
        return name

    def range_window(self, name: str, key: str, seconds: int, exclude: str = "NO OTHERS", end_days: int = 0) -> str:
        """Rows of the same `key` in (t - seconds, t - end_days]. RANGE frames are inclusive,
        so the far end is pulled in by one microsecond."""
        end = f"INTERVAL {int(end_days)} DAY PRECEDING" if end_days else "CURRENT ROW"
        partition = key if key == "customer_id" else entity_partition(key)
        spec = (f"PARTITION BY {partition} ORDER BY timestamp RANGE BETWEEN "
                f"INTERVAL {int(seconds)} SECOND - INTERVAL 1 MICROSECOND PRECEDING AND {end} EXCLUDE {exclude}")
        self.frames[name] = (partition, int(seconds), int(end_days), exclude)
        return self.window(name, spec, key, int(seconds))

    def add(self, *args, **kw) -> None:
        self.features.append(Feature(*args, **kw))

    def carried(self, column: str) -> str:
        """A carry-in column: what the customer did before the context (NULL in a full build)."""
        self.carry.add(column)
        return column

    def subset(self, features: list[Feature]) -> "Definition":
        """The part of this definition that these features need."""
        part = Definition(features=list(features))
        for name, spec in self.windows.items():
            if any(re.search(rf"\b{name}\b", f.sql) for f in features):
                part.window(name, spec, *self.reach[name])
                if name in self.frames:
                    part.frames[name] = self.frames[name]
        part.carry = {c for c in self.carry if any(c in f.sql for f in features)}
        return part

    @property
    def keys(self) -> set[str]:
        """Roles whose values partition a window (carry-ins are per customer)."""
        return {key for key, _ in self.reach.values()} | ({"customer_id"} if self.carry else set())

    @property
    def lookback(self) -> int:
        return max([seconds for _, seconds in self.reach.values()], default=0)

    def groups(self) -> list["Definition"]:
        """The features split by how far back and by which keys they look, so that each part
        is recomputed over only the context it needs."""
        by_reach: dict[tuple, list[Feature]] = {}
        for f in self.features:
            part = self.subset([f])
            by_reach.setdefault((part.lookback, tuple(sorted(part.keys))), []).append(f)
        return [self.subset(fs) for _, fs in sorted(by_reach.items())]


def entity_partition(role: str) -> str:
    """Partition key for an entity; rows without one get partitions of their own (one big
    NULL partition would make distinct counts over time frames quadratic)."""
    return f"coalesce('k:' || {role}, 'n:' || transaction_id)"


def _label(seconds: int) -> str:
    return f"{seconds // 86400}d" if seconds % 86400 == 0 and seconds >= 86400 else f"{seconds // 3600}h"


ALWAYS_TIME = "uses only the transaction's own time"
ALWAYS_TIME_ZH = "仅使用本笔交易的时间"


def _standard(config: FeatureConfig, roles: set[str], extras: list[dict]) -> Definition:
    b = Definition()
    fam = set(config.families) - {f["family"] for f in missing_families(roles)}
    has_customer = "customer_id" in roles
    seq = b.window("w_seq", "PARTITION BY customer_id ORDER BY timestamp, transaction_id", "customer_id") if has_customer else ""
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
              f"epoch(timestamp) - epoch(coalesce(lag(timestamp) OVER {seq}, {b.carried('_prior_last')}))",
              "Seconds since the customer's previous transaction", "距该客户上一笔交易的秒数",
              "previous transaction of the same customer (same-time ties ordered by id)",
              "同一客户的上一笔交易（同一时刻按流水号排序）")
    if "velocity" in fam:
        for w in config.windows:
            sec = _window_seconds(w)
            lab = _label(sec)
            win = b.range_window(f"w_c_{lab}", "customer_id", sec)
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
        prev30 = b.range_window("w_c_prev30", "customer_id", 30 * 86400, exclude="GROUP")
        rule = "customer's transactions in the 30 days before, this one excluded"
        rule_zh = "该客户此前 30 天内的交易（不含本笔）"
        b.add("amount_to_mean_30d", "velocity", f"amount / NULLIF(avg(amount) OVER {prev30}, 0)",
              "Amount divided by the customer's mean amount over the previous 30 days",
              "交易金额 / 客户此前 30 天平均金额", rule, rule_zh)
        b.add("amount_zscore_30d", "velocity",
              f"(amount - avg(amount) OVER {prev30}) / NULLIF(stddev_samp(amount) OVER {prev30}, 0)",
              "How many standard deviations the amount is above the customer's previous 30 days",
              "金额相对客户此前 30 天的标准分（z 值）", rule, rule_zh)
        earlier = (f"(count(*) OVER ({seq} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) "
                   f"+ coalesce({b.carried('_prior_count')}, 0))")
        b.add("cust_prev_count", "velocity", earlier,
              "Customer's transactions before this one (all history)", "该客户此前的全部交易笔数",
              "all earlier transactions of the customer", "该客户所有更早的交易")
        b.add("hour_share", "velocity",
              f"(count(*) OVER (PARTITION BY customer_id, hour(timestamp) // 3 ORDER BY timestamp, transaction_id "
              f"ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) + coalesce({b.carried('_prior_block_count')}, 0)) / "
              f"NULLIF({earlier}, 0)",
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
                  f"ORDER BY timestamp, transaction_id) = 1 AND {b.carried('_prior_seen_' + role)} IS NULL AS INTEGER) END",
                  f"First time the customer uses this {en}", f"客户首次使用该{zh}",
                  "all earlier transactions of the customer", "该客户所有更早的交易")
        if "device_id" in roles:
            win = b.range_window("w_c_7d_dev", "customer_id", 7 * 86400)
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
            win = b.range_window(f"w_{short}_{lab}", role, sec)
            rule = f"this {en}'s transactions in ({lab} before, now], this one included"
            rule_zh = f"该{zh}在过去 {lab} 内（含本笔）的交易"
            b.add(f"{short}_count_{lab}", family, f"CASE WHEN {role} IS NOT NULL THEN count(*) OVER {win} END",
                  f"Transactions of this {en} in the last {lab}", f"该{zh}近 {lab} 交易笔数", rule, rule_zh,
                  entity=role)
            if not has_customer:
                continue
            b.add(f"{short}_customers_{lab}", family,
                  f"CASE WHEN {role} IS NOT NULL THEN count(DISTINCT customer_id) OVER {win} END",
                  f"Distinct customers of this {en} in the last {lab} (fan-in)",
                  f"该{zh}近 {lab} 的不同客户数（汇入）", rule, rule_zh, entity=role)
        if "label" in roles:
            d = config.delay_days
            for n in config.risk_windows:
                win = b.range_window(f"w_{short}_risk_{n}", role, (d + n) * 86400, end_days=d)
                rule = (f"labels of this {en}'s transactions in ({d + n}d before, {d}d before]: only labels older "
                        f"than the {d}-day label delay")
                rule_zh = f"该{zh}在 {d + n} 天前至 {d} 天前之间交易的标签（仅用超过 {d} 天标签延迟的标签）"
                b.add(f"{short}_fraud_share_{n}d", family,
                      f"CASE WHEN {role} IS NOT NULL THEN sum(known_label) OVER {win} / NULLIF(count(known_label) OVER {win}, 0) END",
                      f"Fraud share of this {en}'s labelled transactions {n} days before the label delay",
                      f"该{zh}在标签延迟之前 {n} 天内已标注交易的欺诈占比", rule, rule_zh, entity=role)
                b.add(f"{short}_labelled_{n}d", family,
                      f"CASE WHEN {role} IS NOT NULL THEN count(known_label) OVER {win} END",
                      f"Labelled transactions of this {en} behind that share", "上述占比所依据的已标注交易数",
                      rule, rule_zh, entity=role)
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


def _handbook(config: FeatureConfig, roles: set[str]) -> Definition:
    """Le Borgne et al., Fraud Detection Handbook, 'Baseline feature transformation'."""
    b = Definition()
    hb = "Fraud Detection Handbook baseline"
    b.add("TX_DURING_WEEKEND", "time", "CAST(isodow(timestamp) >= 6 AS INTEGER)", "Weekend (handbook)",
          "周末（手册）", ALWAYS_TIME, ALWAYS_TIME_ZH)
    b.add("TX_DURING_NIGHT", "time", "CAST(hour(timestamp) <= 6 AS INTEGER)", "Night: hour ≤ 6 (handbook)",
          "夜间：小时 ≤ 6（手册）", ALWAYS_TIME, ALWAYS_TIME_ZH)
    for n in (1, 7, 30) if "customer_id" in roles else ():
        win = b.range_window(f"w_c_{n}", "customer_id", n * 86400)
        rule, rule_zh = f"customer's transactions in (t − {n} days, t] ({hb})", f"客户在 (t − {n} 天, t] 内的交易"
        b.add(f"CUSTOMER_ID_NB_TX_{n}DAY_WINDOW", "velocity", f"count(*) OVER {win}",
              f"Customer's transactions in {n} days (handbook)", f"客户 {n} 天交易笔数（手册）", rule, rule_zh)
        b.add(f"CUSTOMER_ID_AVG_AMOUNT_{n}DAY_WINDOW", "velocity", f"avg(amount) OVER {win}",
              f"Customer's mean amount in {n} days (handbook)", f"客户 {n} 天平均金额（手册）", rule, rule_zh)
    if "counterparty_id" in roles and "label" in roles:
        d = config.delay_days
        for n in (1, 7, 30):
            win = b.range_window(f"w_t_{n}", "counterparty_id", (d + n) * 86400, end_days=d)
            rule = f"terminal's transactions in (t − {d + n} days, t − {d} days] ({hb})"
            rule_zh = f"终端在 (t − {d + n} 天, t − {d} 天] 内的交易"
            b.add(f"TERMINAL_ID_NB_TX_{n}DAY_WINDOW", "counterparty", f"count(*) OVER {win}",
                  f"Terminal's transactions in the {n}-day window before the delay (handbook)",
                  f"终端在延迟期前 {n} 天的交易笔数（手册）", rule, rule_zh)
            b.add(f"TERMINAL_ID_RISK_{n}DAY_WINDOW", "counterparty",
                  f"coalesce(sum(known_label) OVER {win} / NULLIF(count(*) OVER {win}, 0), 0)",
                  "Terminal's fraud share in that window (handbook)", "终端在该窗口的欺诈占比（手册）", rule, rule_zh)
    return b


def definition(config: FeatureConfig, ds: dict, store: Store) -> Definition:
    """The features a dataset gets from this configuration (its roles and usable extras)."""
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


CARRY_TYPES = {"_prior_count": "BIGINT", "_prior_last": "TIMESTAMP", "_prior_block_count": "BIGINT"}


def _select(d: Definition, source: str, keys) -> str:
    cols = [f"{f.sql} AS {quote_ident(f.name)}" for f in d.features]
    windows = ", ".join(f"{name} AS ({spec})" for name, spec in d.windows.items())
    return f"SELECT {', '.join([*keys, *cols])} FROM {source}" + (f" WINDOW {windows}" if windows else "")


def select_sql(d: Definition, source: str, keys=KEY_COLUMNS, row_key: str = "transaction_id") -> str:
    """SELECT the keys and every feature of the rows of `source`, in which `row_key` is unique.
    Features of an entity (Feature.entity) are computed over only the rows that have one and
    joined back on `row_key`: rows without a device, say, would each be a partition of their
    own, and those cost as much as real ones (at 1M demo rows, 60% have no device)."""
    alone: dict[str, list[Feature]] = {}
    for f in d.features:
        if f.entity:
            alone.setdefault(f.entity, []).append(f)
    if not alone:
        return _select(d, source, keys)
    main = d.subset([f for f in d.features if not f.entity])
    joined = [f"({_select(main, source, tuple(dict.fromkeys((row_key, *keys))))}) _m"]
    where = {f.name: "_m" for f in main.features}
    for n, (role, features) in enumerate(sorted(alone.items())):
        part = _select(d.subset(features), f"{source} WHERE {role} IS NOT NULL", (row_key,))
        joined.append(f"LEFT JOIN ({part}) _e{n} USING ({row_key})")
        where.update({f.name: f"_e{n}" for f in features})
    cols = [f"{where[f.name]}.{quote_ident(f.name)}" for f in d.features]
    return f"SELECT {', '.join([f'_m.{k}' for k in keys] + cols)} FROM {' '.join(joined)}"


def source_rows(table: str, d: Definition, known_labels: str | None = None) -> str:
    """The relation a definition's features are computed from: the table's rows with `_row`,
    their row id, and `known_label` when a feature reads it (`known_labels`, a relation like
    core.labels.known_labels_sql; by default the file's labels)."""
    if any("known_label" in f.sql for f in d.features):
        return known_labels or f"(SELECT *, rowid AS _row, label AS known_label FROM {table})"
    return f"(SELECT *, rowid AS _row FROM {table})"


def feature_sql(table: str, d: Definition, recompute_from: datetime | None = None, only: str = "TRUE",
                known_labels: str | None = None, grouped: bool = True, source: str | None = None,
                in_time_order: bool = False) -> str:
    """The one SELECT that computes the features (transaction order) of the rows of `table`:
    of every row, or only of the rows at or after `recompute_from` that also meet `only`.
    Those are computed per group of features that look equally far back (Definition.groups),
    each over the context it can see, and joined (with `grouped` off, in one query over the
    widest context: cheaper for a handful of rows). `known_labels` is the table's rows with
    `known_label` and `_row` columns (core.labels.known_labels_sql); without it the file's
    labels are the known ones. Parts of a query are joined on `_row`, the table's row id: an
    integer joins faster than a text id (1M rows: 12.5 s against 14.7 s). A full build can read
    its rows from `source` instead, with columns computed beforehand (core.features.columnar);
    when those rows are `in_time_order` and no window is left, they are not sorted again."""
    def rows(part: Definition) -> str:
        return source_rows(table, part, known_labels)

    if recompute_from is None:
        nulls = "".join(f", NULL::{CARRY_TYPES.get(c, 'INTEGER')} AS {c}" for c in sorted(d.carry))
        sql = select_sql(d, f"(SELECT *{nulls} FROM {source or rows(d)})", row_key="_row")
        return sql if in_time_order and not d.windows else sql + " ORDER BY timestamp, transaction_id"
    start = f"TIMESTAMP '{recompute_from.isoformat(sep=' ')}'"
    ctes = [f"_changed AS (SELECT * FROM {table} WHERE timestamp >= {start} AND ({only}))"]
    source = {}
    for n, group in enumerate(d.groups() if grouped else [d]):
        ctes += _context(rows(group), group, recompute_from, only, f"_g{n}")
        ctes.append(f"_g{n} AS (SELECT * EXCLUDE (timestamp) FROM "
                    f"({select_sql(group, f'_g{n}_src', ('transaction_id', 'timestamp'), row_key='_row')}) "
                    f"WHERE timestamp >= {start})")
        source.update({f.name: f"_g{n}" for f in group.features})
    cols = ", ".join(f"{source[f.name]}.{quote_ident(f.name)}" for f in d.features)
    joins = " ".join(f"JOIN {g} USING (transaction_id)" for g in dict.fromkeys(source.values()))
    return (f"WITH {', '.join(ctes)} SELECT {', '.join('_changed.' + k for k in KEY_COLUMNS)}, {cols} "
            f"FROM _changed {joins} ORDER BY timestamp, transaction_id")


def _context(table: str, d: Definition, recompute_from: datetime, only: str, name: str) -> list[str]:
    """CTEs ending in `{name}_src`: the rows that the `_changed` rows can see through these
    features' windows (the same keys, within the lookback), with each customer's earlier
    history in carry-in columns."""
    since = f"TIMESTAMP '{(recompute_from - timedelta(seconds=d.lookback)).isoformat(sep=' ')}'"
    shared = [f"{k} IN (SELECT {k} FROM _changed)" for k in sorted(d.keys)]
    if "customer_id" in d.keys:     # rows without a customer share one partition
        shared.append("customer_id IS NULL AND EXISTS (SELECT 1 FROM _changed WHERE customer_id IS NULL)")
    reach = " OR ".join(f"({c})" for c in shared) or "FALSE"
    ctx, prior = f"{name}_ctx", f"{name}_prior"
    start = f"TIMESTAMP '{recompute_from.isoformat(sep=' ')}'"
    # the leading `timestamp >= since` (implied by both branches) lets DuckDB skip older row groups
    ctes = [f"{ctx} AS (SELECT * FROM {table} WHERE timestamp >= {since} AND ((timestamp >= {start} AND ({only})) "
            f"OR ({reach})))"]
    joins, carried = [], []
    if d.carry:
        ctes.append(f"{prior} AS (SELECT * FROM {table} WHERE timestamp < {since} AND "
                    f"(customer_id IN (SELECT customer_id FROM _changed) OR customer_id IS NULL))")
    if {"_prior_count", "_prior_last"} & d.carry:
        ctes.append(f"{name}_pc AS (SELECT customer_id AS _k, count(*) AS _prior_count, max(timestamp) AS _prior_last "
                    f"FROM {prior} GROUP BY ALL)")
        joins.append(f"LEFT JOIN {name}_pc ON {name}_pc._k IS NOT DISTINCT FROM {ctx}.customer_id")
        carried += [f"{name}_pc._prior_count", f"{name}_pc._prior_last"]
    if "_prior_block_count" in d.carry:
        ctes.append(f"{name}_pb AS (SELECT customer_id AS _k, hour(timestamp) // 3 AS _b, "
                    f"count(*) AS _prior_block_count FROM {prior} GROUP BY ALL)")
        joins.append(f"LEFT JOIN {name}_pb ON {name}_pb._k IS NOT DISTINCT FROM {ctx}.customer_id "
                     f"AND {name}_pb._b = hour({ctx}.timestamp) // 3")
        carried.append(f"{name}_pb._prior_block_count")
    for n, column in enumerate(sorted(c for c in d.carry if c.startswith("_prior_seen_"))):
        role, seen = column.removeprefix("_prior_seen_"), f"{name}_ps{n}"
        ctes.append(f"{seen} AS (SELECT DISTINCT customer_id AS _k, {role} AS _v, 1 AS {column} FROM {prior} "
                    f"WHERE {role} IS NOT NULL)")
        joins.append(f"LEFT JOIN {seen} ON {seen}._k IS NOT DISTINCT FROM {ctx}.customer_id AND {seen}._v = {ctx}.{role}")
        carried.append(f"{seen}.{column}")
    ctes.append(f"{name}_src AS (SELECT {ctx}.*{''.join(', ' + c for c in carried)} FROM {ctx} {' '.join(joins)})")
    return ctes
