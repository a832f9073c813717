"""Evaluation splits: out of time by default (train, validate, test by day), random only on
request; every period must hold labelled transactions and fraud."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

from ..errors import RiskdeskError
from ..labels import label_sql
from ..store import Store


@dataclass
class Split:
    method: str                 # time | random
    train: tuple[str, str]
    test: tuple[str, str]
    valid: tuple[str, str] | None = None
    gap_days: int = 0
    seed: int = 42
    tune_on_train_tail: bool = False   # validation = last fifth of the training period, then refit

    def public(self) -> dict:
        return asdict(self)


def _days(store: Store, fs: dict) -> list[date]:
    return [r[0] for r in store.rows(f"SELECT DISTINCT CAST(timestamp AS DATE) FROM {fs['table']} ORDER BY 1")]


def labelled_split(store: Store, fs: dict) -> Split:
    """The default out-of-time split over the days that have labels (the file's, or conclusive
    review decisions): batches that arrived without labels do not count as test days."""
    join, params = label_sql(fs["dataset_id"])
    days = [r[0] for r in store.rows(f"SELECT DISTINCT CAST(timestamp AS DATE) FROM {fs['table']} {join} "
                                     f"WHERE coalesce(reviewed_label, label) IS NOT NULL ORDER BY 1", params)]
    if len(days) < 5:
        raise RiskdeskError(f"only {len(days)} day{'s' if len(days) != 1 else ''} have labels; retraining needs at least 5")
    a, b = int(round(len(days) * 0.6)), int(round(len(days) * 0.8))
    return make_split(store, fs, _d(days[0]), _d(days[a - 1]), _d(days[b]), _d(days[-1]), _d(days[a]), _d(days[b - 1]))


def _d(value) -> str:
    return value if isinstance(value, str) else value.isoformat()


def make_split(store: Store, fs: dict, train_start=None, train_end=None, test_start=None, test_end=None,
               valid_start=None, valid_end=None, gap_days: int = 0, random: bool = False, seed: int = 42) -> Split:
    """The evaluation split. Without dates: the earliest 60% of days train, the next 20%
    validate, the last 20% test (an optional gap in days before validation and test leaves
    room for label delay). Dates are inclusive days."""
    days = _days(store, fs)
    if len(days) < 5 and not random:
        raise RiskdeskError(f"the dataset spans {len(days)} day{'s' if len(days) != 1 else ''}; an out-of-time "
                            "split needs at least 5 (train on a random split with --random-split instead)")
    if random:
        return Split("random", (_d(days[0]), _d(days[-1])), (_d(days[0]), _d(days[-1])),
                     (_d(days[0]), _d(days[-1])), 0, seed)
    given = [train_start, train_end, test_start, test_end]
    if any(given) and not all(given):
        raise RiskdeskError("give all of --train-start, --train-end, --test-start and --test-end, or none")
    if bool(valid_start) != bool(valid_end):
        raise RiskdeskError("give both --valid-start and --valid-end, or neither")
    if all(given):
        split = Split("time", (str(train_start), str(train_end)), (str(test_start), str(test_end)),
                      (str(valid_start), str(valid_end)) if valid_start else None, gap_days, seed,
                      tune_on_train_tail=not valid_start)
    else:
        n = len(days)
        g = max(0, int(gap_days))
        usable = n - 2 * g
        a, b = int(round(usable * 0.6)), int(round(usable * 0.8))
        split = Split("time", (_d(days[0]), _d(days[a - 1])), (_d(days[b + 2 * g]), _d(days[-1])),
                      (_d(days[a + g]), _d(days[b - 1 + g])), g, seed)
    check_split(store, fs, split)
    return split


def check_split(store: Store, fs: dict, split: Split) -> None:
    periods = [("train", split.train), ("test", split.test)] + ([("validation", split.valid)] if split.valid else [])
    for name, (start, end) in periods:
        try:
            s, e = date.fromisoformat(start), date.fromisoformat(end)
        except ValueError:
            raise RiskdeskError(f"{name} dates must look like 2024-01-31 (got {start} .. {end})") from None
        if e < s:
            raise RiskdeskError(f"the {name} period ends before it starts ({start} .. {end})")
        join, params = label_sql(fs["dataset_id"])
        n, frauds = store.rows(f"SELECT count(known), coalesce(sum(known), 0) FROM (SELECT coalesce(reviewed_label, "
                               f"label) AS known, timestamp FROM {fs['table']} {join}) "
                               f"WHERE CAST(timestamp AS DATE) BETWEEN ? AND ?", [*params, start, end])[0]
        if n == 0:
            raise RiskdeskError(f"the {name} period {start} .. {end} has no labelled transactions")
        if frauds == 0:
            raise RiskdeskError(f"the {name} period {start} .. {end} has no fraud to learn or measure")
    if split.method == "random":
        return
    if date.fromisoformat(split.train[1]) >= date.fromisoformat(split.test[0]):
        raise RiskdeskError("the test period must start after the training period ends (out-of-time)")
    if split.valid and not (date.fromisoformat(split.train[1]) < date.fromisoformat(split.valid[0])
                            and date.fromisoformat(split.valid[1]) < date.fromisoformat(split.test[0])):
        raise RiskdeskError("the validation period must lie between the training and test periods")


def timeline(store: Store, fs: dict):
    """Labelled transactions and fraud rate per day, for choosing periods."""
    return store.df(f"SELECT CAST(timestamp AS DATE) AS day, count(*) AS transactions, count(label) AS labelled, "
                    f"coalesce(sum(label), 0) AS frauds, avg(label) AS fraud_rate FROM {fs['table']} GROUP BY 1 ORDER BY 1")


def split_counts(store: Store, fs: dict, split: Split):
    """Labelled transactions, frauds and fraud rate of each part of a split."""
    import pandas as pd
    rows = []
    for part, period in (("train", split.train), ("valid", split.valid), ("test", split.test)):
        if period is None:
            continue
        where = ["label IS NOT NULL", "CAST(timestamp AS DATE) BETWEEN ? AND ?"]
        if split.method == "random":
            where.append(random_part(split, part))
        n, frauds = store.rows(f"SELECT count(*), coalesce(sum(label), 0) FROM {fs['table']} WHERE "
                               + " AND ".join(where), list(period))[0]
        rows.append({"part": part, "start": period[0], "end": period[1], "transactions": int(n), "frauds": int(frauds),
                     "fraud_rate": frauds / n if n else float("nan")})
    return pd.DataFrame(rows)


def random_part(split: Split, part: str) -> str:
    """Seeded hash buckets of the transaction id: 60% train, 20% validation, 20% test."""
    bucket = f"(hash(transaction_id || '{int(split.seed)}') % 10)"
    return {"train": f"{bucket} < 6", "valid": f"{bucket} IN (6, 7)", "test": f"{bucket} >= 8"}[part]
