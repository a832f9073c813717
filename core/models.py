"""Training, comparison and the model registry.

Kinds: ``rules`` (the current rule set scored by the sum of its rules' scores), ``default``
(LightGBM with XGBoost's documented defaults), ``tuned`` (LightGBM tuned with Optuna's TPE
on validation average precision, imbalance strategy included), ``logistic`` and ``forest``
(teaching baselines; the forest is LightGBM's random-forest mode).

Splits are out of time by default; random splits only on request. SMOTE only ever touches
training rows: synthetic rows are added to the training matrix; validation, test, metrics and
thresholds use real rows. Artifacts are LightGBM text files or our own JSON, verified by
SHA-256 before loading; nothing is unpickled.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Callable

import numpy as np

from . import config, metrics, rules as rules_mod
from .datasets import get_dataset
from .errors import NotFound, RiskdeskError
from .features import FeatureConfig, build_features, feature_names
from .labels import label_sql
from .store import Store, quote_ident

# OpenMP threads that spin while waiting collapse when another process holds a core
# (design.md, Threads); passive waiting keeps LightGBM usable on a busy 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

KINDS = ("rules", "default", "tuned", "logistic", "forest")
DEFAULT_KINDS = ("rules", "default", "tuned")
IMBALANCE = ("none", "class_weight", "smote", "search")
XGBOOST_DEFAULTS = {"max_depth": 6, "learning_rate": 0.3, "num_boost_round": 100, "lambda_l2": 1.0,
                    "min_sum_hessian_in_leaf": 1.0}
Progress = Callable[[float, str], None]


# -- splits ----------------------------------------------------------------------------------------

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
    _check_split(store, fs, split)
    return split


def _check_split(store: Store, fs: dict, split: Split) -> None:
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
            where.append(_random_part(split, part))
        n, frauds = store.rows(f"SELECT count(*), coalesce(sum(label), 0) FROM {fs['table']} WHERE "
                               + " AND ".join(where), list(period))[0]
        rows.append({"part": part, "start": period[0], "end": period[1], "transactions": int(n), "frauds": int(frauds),
                     "fraud_rate": frauds / n if n else float("nan")})
    return pd.DataFrame(rows)


def _random_part(split: Split, part: str) -> str:
    """Seeded hash buckets of the transaction id: 60% train, 20% validation, 20% test."""
    bucket = f"(hash(transaction_id || '{int(split.seed)}') % 10)"
    return {"train": f"{bucket} < 6", "valid": f"{bucket} IN (6, 7)", "test": f"{bucket} >= 8"}[part]


# -- data ------------------------------------------------------------------------------------------

@dataclass
class Frame:
    X: object          # pandas DataFrame
    y: np.ndarray
    amount: np.ndarray
    day: np.ndarray
    ids: np.ndarray
    reviewed: np.ndarray | None = None   # the label came from a review decision, not the file


def _load(store: Store, fs: dict, period: tuple[str, str] | None, split: Split | None = None, part: str = "",
          labelled: bool = True) -> Frame:
    names = feature_names(fs)
    cols = ", ".join(quote_ident(n) for n in names)
    # A conclusive review decision overrides the file's label (confirmed decisions as labels).
    join, join_params = label_sql(fs["dataset_id"])
    label = "coalesce(reviewed_label, label)"
    where, params = [], []
    if period:
        where.append("CAST(timestamp AS DATE) BETWEEN ? AND ?")
        params += list(period)
    if labelled:
        where.append(f"{label} IS NOT NULL")
    if split is not None and split.method == "random":
        where.append(_random_part(split, part))
    sql = (f"SELECT transaction_id, amount, CAST(timestamp AS DATE) AS day, {label} AS label, "
           f"reviewed_label IS NOT NULL AS reviewed, {cols} "
           f"FROM (SELECT * FROM {fs['table']} {join})"
           + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY timestamp, transaction_id")
    df = store.df(sql, join_params + params)
    X = df[names].copy()
    for f in fs["catalogue"]:
        if f["kind"] == "numeric":
            X[f["name"]] = X[f["name"]].astype("float64")
    return Frame(X, df["label"].to_numpy(dtype=float), df["amount"].to_numpy(dtype=float),
                 df["day"].to_numpy(), df["transaction_id"].to_numpy(), df["reviewed"].to_numpy(dtype=bool))


def _categorical(fs: dict) -> list[str]:
    return feature_names(fs, "categorical")


def encode_categories(X, categories: dict[str, list]):
    """Categorical columns as pandas categories with the training categories (unseen -> NaN)."""
    import pandas as pd
    X = X.copy()
    for name, cats in categories.items():
        X[name] = pd.Categorical(X[name].astype("object"), categories=cats)
    return X


def _fit_categories(X, names: list[str]) -> dict[str, list]:
    return {n: sorted(str(v) for v in X[n].dropna().unique()) for n in names}


def resample_training(X, y: np.ndarray, categorical: list[str], ratio: float, seed: int):
    """SMOTE (SMOTENC with categorical features) on training rows only. Original rows are kept
    as they are (missing values included); synthetic fraud rows, made from median-imputed
    copies, are appended. Returns (X, y, number of synthetic rows)."""
    import pandas as pd
    from imblearn.over_sampling import SMOTE, SMOTENC
    pos = int((y == 1).sum())
    neg = int((y == 0).sum())
    want = int(ratio * neg)
    if pos < 6 or want <= pos:
        return X, y, 0
    filled = X.copy()
    numeric = [c for c in X.columns if c not in categorical]
    filled[numeric] = filled[numeric].fillna(filled[numeric].median()).fillna(0)
    for c in categorical:
        filled[c] = filled[c].cat.codes.astype(int)
    k = min(5, pos - 1)
    if categorical:
        sampler = SMOTENC([filled.columns.get_loc(c) for c in categorical], sampling_strategy=want / neg,
                          k_neighbors=k, random_state=seed)
    else:
        sampler = SMOTE(sampling_strategy=want / neg, k_neighbors=k, random_state=seed)
    Xr, yr = sampler.fit_resample(filled.to_numpy(dtype=float), y.astype(int))
    synthetic = pd.DataFrame(Xr[len(X):], columns=X.columns)
    for c in categorical:
        cats = X[c].cat.categories
        synthetic[c] = pd.Categorical.from_codes(np.clip(synthetic[c].round().astype(int), -1, len(cats) - 1), cats)
    for c in numeric:
        synthetic[c] = synthetic[c].astype(X[c].dtype)
    out = pd.concat([X, synthetic], ignore_index=True)
    for c in categorical:
        out[c] = pd.Categorical(out[c], categories=X[c].cat.categories)
    return out, np.r_[y, yr[len(X):]], len(Xr) - len(X)


# -- LightGBM --------------------------------------------------------------------------------------

def _lgb_params(extra: dict, seed: int, rows: int) -> dict:
    return {"objective": "binary", "verbosity": -1, "seed": seed, "deterministic": True, "force_row_wise": True,
            "num_threads": config.model_threads(rows), "feature_pre_filter": False, **extra}


SMOTE_MAX_RATIO = 0.5
# Per trial: at most this many rounds, stopping when validation AP has not improved for
# TUNE_EARLY_STOP rounds (keeps 30 trials on the demo data near a minute on one core).
TUNE_MAX_ROUNDS, TUNE_EARLY_STOP = 200, 20


class _Binned:
    """LightGBM datasets binned once and reused by every trial that trains on the real rows
    (binning is a large share of a small trial's time); SMOTE trials bin their own. SMOTE runs
    once at the largest ratio: its synthetic rows are independent draws, so the first n of
    them are a SMOTE sample of size n, and each trial takes the prefix its ratio needs."""

    def __init__(self, train: Frame, categorical: list[str], valid: Frame | None, seed: int = 42):
        self.train, self.categorical, self.valid, self.seed = train, categorical, valid, seed
        self._data = self._valid = self._pool = None

    def resampled(self, ratio: float):
        """(X, y, synthetic rows) for a SMOTE ratio of fraud to normal training rows."""
        if self._pool is None:
            self._pool = resample_training(self.train.X, self.train.y, self.categorical, SMOTE_MAX_RATIO, self.seed)
        X, y, made = self._pool
        pos, neg = int((self.train.y == 1).sum()), int((self.train.y == 0).sum())
        take = max(0, min(made, int(min(ratio, SMOTE_MAX_RATIO) * neg) - pos))
        keep = len(self.train.y) + take
        return X.iloc[:keep], y[:keep], take

    def datasets(self, X=None, y=None):
        import lightgbm as lgb
        cats = self.categorical or "auto"
        if X is not None:   # resampled training rows: a fresh dataset, validation binned like it
            data = lgb.Dataset(X, y, categorical_feature=cats, free_raw_data=False)
            return data, self._valid_for(data)
        if self._data is None:
            self._data = lgb.Dataset(self.train.X, self.train.y, categorical_feature=cats, free_raw_data=False)
            self._valid = self._valid_for(self._data)
        return self._data, self._valid

    def _valid_for(self, data):
        import lightgbm as lgb
        if self.valid is None:
            return None
        return lgb.Dataset(self.valid.X, self.valid.y, reference=data, categorical_feature=self.categorical or "auto")


def _train_lgb(params: dict, rounds: int, train: Frame, categorical: list[str], valid: Frame | None = None,
               early_stopping: int | None = None, imbalance: str = "none", smote_ratio: float = 0.1,
               scale_pos_weight: float = 1.0, seed: int = 42, binned: _Binned | None = None):
    import lightgbm as lgb
    binned = binned or _Binned(train, categorical, valid if early_stopping else None, seed)
    synthetic = 0
    if imbalance == "smote":
        X, y, synthetic = binned.resampled(smote_ratio)
        data, valid_data = binned.datasets(X, y)
    else:
        data, valid_data = binned.datasets()
    params = dict(params)
    if imbalance == "class_weight":
        params["scale_pos_weight"] = scale_pos_weight
    callbacks, valid_sets = [], []
    if valid_data is not None and early_stopping:
        valid_sets = [valid_data]
        params["metric"] = "average_precision"
        callbacks = [lgb.early_stopping(early_stopping, verbose=False)]
    booster = lgb.train(params, data, num_boost_round=rounds, valid_sets=valid_sets, callbacks=callbacks,
                        keep_training_booster=False)
    return booster, synthetic


# -- logistic regression (stored as JSON) ---------------------------------------------------------

def logistic_design(X, spec: dict) -> np.ndarray:
    """The logistic model's design matrix: clipped, standardised numbers and one-hot categories."""
    cols = []
    for n in spec["numeric"]:
        v = X[n].to_numpy(dtype=float)
        v = np.where(np.isnan(v), spec["median"][n], v)
        cols.append((np.clip(v, spec["low"][n], spec["high"][n]) - spec["mean"][n]) / spec["scale"][n])
    for n, cats in spec["categories"].items():
        values = X[n].astype("object").to_numpy()
        for c in cats:
            cols.append((values == c).astype(float))
    return np.column_stack(cols) if cols else np.zeros((len(X), 0))


def _fit_logistic(train: Frame, fs: dict, balanced: bool, seed: int) -> dict:
    from sklearn.linear_model import LogisticRegression
    numeric = feature_names(fs, "numeric")
    X = train.X
    spec = {"numeric": numeric, "median": {}, "low": {}, "high": {}, "mean": {}, "scale": {},
            "categories": {n: [c for c in X[n].dropna().astype(str).value_counts().index[:20]] for n in _categorical(fs)}}
    for n in numeric:
        v = X[n].to_numpy(dtype=float)
        med = float(np.nanmedian(v)) if np.isfinite(v).any() else 0.0
        v = np.where(np.isnan(v), med, v)
        low, high = np.quantile(v, [0.001, 0.999])
        v = np.clip(v, low, high)
        spec["median"][n], spec["low"][n], spec["high"][n] = med, float(low), float(high)
        spec["mean"][n], spec["scale"][n] = float(v.mean()), float(v.std() or 1.0)
    model = LogisticRegression(max_iter=2000, C=1.0, class_weight="balanced" if balanced else None,
                               random_state=seed)
    model.fit(logistic_design(X, spec), train.y.astype(int))
    spec["coef"] = model.coef_[0].tolist()
    spec["intercept"] = float(model.intercept_[0])
    return spec


def _predict_logistic(spec: dict, X) -> np.ndarray:
    z = logistic_design(X, spec) @ np.asarray(spec["coef"]) + spec["intercept"]
    return 1 / (1 + np.exp(-np.clip(z, -50, 50)))


# -- training runs -----------------------------------------------------------------------------------

def _thresholds(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """VERIFY at the best-F1 score on validation, BLOCK where validation precision reaches 90%."""
    verify = metrics.best_f1_threshold(y, s)
    block = max(verify, metrics.precision_threshold(y, s, 0.9, fallback=float(np.quantile(s, 0.999))))
    return verify, block


def _artifact_path(store: Store, model_id: str, suffix: str) -> Path:
    return store.home / "models" / f"{model_id}{suffix}"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train(store: Store, dataset: str, kinds=DEFAULT_KINDS, trials: int = 30, imbalance: str = "search",
          split: Split | None = None, time_budget: float | None = None, seed: int = 42, actor: str = "cli",
          progress: Progress | None = None, feature_config: FeatureConfig | None = None,
          capacity_k: int = 50, **split_args) -> dict:
    """Train and evaluate the chosen kinds on one split; every model goes to the registry.
    Returns {"run_id", "split", "models": [registry entries]}."""
    report = progress or (lambda f, m: None)
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise RiskdeskError(f"unknown model kind(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(KINDS)}")
    if imbalance not in IMBALANCE:
        raise RiskdeskError(f"--imbalance must be one of {', '.join(IMBALANCE)}")
    if not 1 <= int(trials) <= 1000:
        raise RiskdeskError("--trials must be between 1 and 1000")
    ds = get_dataset(store, dataset)
    if "label" not in ds["mapping"] or not ds["fraud_rows"]:
        raise RiskdeskError(f"dataset {ds['name']!r} has no fraud labels to train on")
    report(0.01, "features")
    fs = build_features(store, ds["name"], feature_config or FeatureConfig())
    split = split or make_split(store, fs, seed=seed, **split_args)
    _check_split(store, fs, split)
    categorical = _categorical(fs)

    report(0.05, "loading periods")
    if split.method == "random":
        parts = {p: _load(store, fs, None, split, p) for p in ("train", "valid", "test")}
        fit_part, val_part = parts["train"], parts["valid"]
    else:
        train_frame = _load(store, fs, split.train)
        test_frame = _load(store, fs, split.test)
        if split.valid:
            fit_part, val_part = train_frame, _load(store, fs, split.valid)
        else:  # tune on the last fifth of the training period, refit on all of it afterwards
            cut = np.quantile(np.array(train_frame.day, dtype="datetime64[D]").astype(int), 0.8)
            days = np.array(train_frame.day, dtype="datetime64[D]").astype(int)
            fit_part, val_part = _subset(train_frame, days <= cut), _subset(train_frame, days > cut)
        parts = {"train": train_frame, "valid": val_part, "test": test_frame}
    categories = _fit_categories(parts["train"].X, categorical)
    for frame in (*parts.values(), fit_part, val_part):
        frame.X = encode_categories(frame.X, categories)
    if fit_part.y.sum() < 2 or val_part.y.sum() < 1:
        raise RiskdeskError("the training or validation period has too few frauds")

    run_id = datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]
    results, skipped = [], []
    n = len(kinds)
    for i, kind in enumerate(kinds):
        lo, hi = 0.08 + 0.9 * i / n, 0.08 + 0.9 * (i + 1) / n
        step = lambda f, m, lo=lo, hi=hi, kind=kind: report(lo + (hi - lo) * f, f"{kind}: {m}")
        start = time.perf_counter()
        step(0.0, "training")
        entry = _train_one(store, kind, fs, ds, split, parts, fit_part, val_part, categorical, categories,
                           trials, imbalance, time_budget, seed, step)
        if "skip" in entry:
            skipped.append({"kind": kind, "reason": entry["skip"], "rules": entry["skipped_rules"]})
            continue
        entry["train_seconds"] = time.perf_counter() - start
        step(0.95, "evaluating")
        results.append(_register(store, entry, fs, ds, split, run_id, actor, capacity_k, parts))
    report(1.0, "done")
    return {"run_id": run_id, "split": split.public(), "models": results, "skipped": skipped}


def _subset(frame: Frame, mask: np.ndarray) -> Frame:
    return Frame(frame.X[mask].reset_index(drop=True), frame.y[mask], frame.amount[mask], frame.day[mask],
                 frame.ids[mask], None if frame.reviewed is None else frame.reviewed[mask])


def _train_one(store, kind, fs, ds, split, parts, fit_part, val_part, categorical, categories, trials,
               imbalance, time_budget, seed, step) -> dict:
    pos = float(parts["train"].y.sum())
    neg = float(len(parts["train"].y) - pos)
    if kind == "rules":
        rules_mod.ensure_starter_rules(store)
        active, skipped = rules_mod.applicable(rules_mod.current_rules(store, include_disabled=False), fs)
        if not active:
            return {"kind": kind, "skip": "no enabled rule applies to this dataset" if skipped else
                    "there are no enabled rules", "skipped_rules": skipped}
        return {"kind": kind, "rules": rules_mod.snapshot(active),
                "params": {"rules": len(active), "skipped_rules": skipped}}
    if kind == "default":
        params = _lgb_params({"learning_rate": 0.3, "max_depth": 6, "num_leaves": 64, "lambda_l2": 1.0,
                              "min_sum_hessian_in_leaf": 1.0, "min_data_in_leaf": 1, "max_bin": 255}, seed,
                             len(parts["train"].y))
        booster, _ = _train_lgb(params, 100, parts["train"], categorical, seed=seed)
        return {"kind": kind, "booster": booster,
                "params": {**{k: v for k, v in params.items() if k != "num_threads"}, "num_boost_round": 100,
                           "note": "XGBoost defaults; LightGBM grows leaf-wise, with num_leaves = 2^max_depth"}}
    if kind == "forest":
        params = _lgb_params({"boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.632,
                              "feature_fraction": 0.6, "num_leaves": 63, "min_data_in_leaf": 20}, seed,
                             len(parts["train"].y))
        booster, _ = _train_lgb(params, 100, parts["train"], categorical, seed=seed)
        return {"kind": kind, "booster": booster,
                "params": {**{k: v for k, v in params.items() if k != "num_threads"}, "num_boost_round": 100}}
    if kind == "logistic":
        spec = _fit_logistic(parts["train"], fs, balanced=imbalance != "none", seed=seed)
        return {"kind": kind, "logistic": spec, "params": {"C": 1.0, "class_weight": "balanced" if imbalance != "none"
                                                            else None, "standardised": True}}
    return _tune(fit_part, val_part, parts, split, categorical, trials, imbalance, time_budget, seed, step, pos, neg)


def _tune(fit_part, val_part, parts, split, categorical, trials, imbalance, time_budget, seed, step, pos, neg):
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fit_pos = max(fit_part.y.sum(), 1)
    ratio_max = max(1.0, (len(fit_part.y) - fit_pos) / fit_pos)
    history = []
    best = {"ap": -1.0}
    binned = _Binned(fit_part, categorical, val_part, seed)

    def objective(trial):
        strategy = (trial.suggest_categorical("imbalance", ["none", "class_weight", "smote"])
                    if imbalance == "search" else imbalance)
        params = _lgb_params({
            "learning_rate": trial.suggest_float("learning_rate", 0.08, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 8, 64, log=True),
            "max_depth": trial.suggest_int("max_depth", 3, 12),
            "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 5, 300, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
            "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0), "bagging_freq": 1,
            "lambda_l1": trial.suggest_float("lambda_l1", 1e-3, 10, log=True),
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10, log=True),
        }, seed, len(fit_part.y))
        spw = trial.suggest_float("scale_pos_weight", 1.0, ratio_max, log=True) if strategy == "class_weight" else 1.0
        smote_ratio = trial.suggest_float("smote_ratio", 0.05, SMOTE_MAX_RATIO, log=True) if strategy == "smote" else 0.1
        booster, synthetic = _train_lgb(params, TUNE_MAX_ROUNDS, fit_part, categorical, val_part, TUNE_EARLY_STOP, strategy, smote_ratio,
                                        spw, seed, binned)
        ap = metrics.average_precision(val_part.y, booster.predict(val_part.X, num_iteration=booster.best_iteration))
        history.append({"trial": trial.number, "average_precision": ap, "imbalance": strategy,
                        "best_iteration": booster.best_iteration, **trial.params})
        if ap > best["ap"]:
            best.update(ap=ap, booster=booster, params=params, strategy=strategy, spw=spw, smote_ratio=smote_ratio,
                        synthetic=synthetic, trial=trial.number)
        step(min(0.9, (trial.number + 1) / trials * 0.9), f"trial {trial.number + 1}/{trials}, best AP {best['ap']:.3f}")
        return ap

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=int(trials), timeout=time_budget, n_jobs=1)
    booster = best["booster"]
    rounds = max(1, booster.best_iteration or booster.current_iteration())
    refit = False
    if split.method == "time" and split.tune_on_train_tail:
        step(0.92, "refitting on the whole training period")
        booster, synthetic = _train_lgb(best["params"], rounds, parts["train"], categorical, None, None,
                                        best["strategy"], best["smote_ratio"], best["spw"], seed)
        best["synthetic"] = synthetic
        refit = True
    params = {k: v for k, v in best["params"].items() if k != "num_threads"}
    return {"kind": "tuned", "booster": booster, "history": history, "num_iteration": None if refit else rounds,
            "params": {**params, "num_boost_round": rounds, "imbalance": best["strategy"],
                       "scale_pos_weight": best["spw"] if best["strategy"] == "class_weight" else None,
                       "smote_ratio": best["smote_ratio"] if best["strategy"] == "smote" else None,
                       "synthetic_training_rows": best["synthetic"], "trials": len(history),
                       "best_trial": best["trial"], "validation_average_precision": best["ap"], "refit": refit}}


def _predict(entry: dict, frame: Frame, store: Store | None = None, fs: dict | None = None) -> np.ndarray:
    kind = entry["kind"]
    if kind == "rules":
        ev = rules_mod.evaluate(store, fs, entry["rules"], extra_columns="")
        score = dict(zip(ev["transaction_id"], ev["rule_score"]))
        return np.array([score.get(t, 0.0) for t in frame.ids], dtype=float)
    if kind == "logistic":
        return _predict_logistic(entry["logistic"], frame.X)
    return entry["booster"].predict(frame.X, num_iteration=entry.get("num_iteration"))


def _register(store: Store, entry: dict, fs: dict, ds: dict, split: Split, run_id: str, actor: str,
              capacity_k: int, parts: dict) -> dict:
    kind = entry["kind"]
    model_id = f"{kind}-{run_id}"
    valid, test = parts["valid"], parts["test"]
    s_valid = _predict(entry, valid, store, fs)
    s_test = _predict(entry, test, store, fs)
    if kind == "rules":
        verify, block = 1e-9, min([r["score"] for r in entry["rules"] if r["action"] == "BLOCK"] or [np.inf])
    else:
        verify, block = _thresholds(valid.y, s_valid)
    result_metrics = {
        "test": metrics.summary(test.y, s_test, verify, test.amount, test.day, capacity_k),
        "validation": {"auc": metrics.roc_auc(valid.y, s_valid), "average_precision": metrics.average_precision(valid.y, s_valid),
                       "rows": int(len(valid.y))},
        "train_rows": int(len(parts["train"].y)), "capacity_k": capacity_k,
    }
    if kind == "rules":
        path = _artifact_path(store, model_id, ".json")
        path.write_text(json.dumps({"kind": "rules", "rules": entry["rules"]}, ensure_ascii=False, indent=1))
    elif kind == "logistic":
        path = _artifact_path(store, model_id, ".json")
        path.write_text(json.dumps({"kind": "logistic", "spec": entry["logistic"]}))
    else:
        path = _artifact_path(store, model_id, ".txt")
        entry["booster"].save_model(str(path), num_iteration=entry.get("num_iteration"))
    train_part = parts["train"]
    from_decisions = int(train_part.reviewed.sum()) if train_part.reviewed is not None else 0
    params = {**entry["params"], "feature_config": fs["config"], "categories": _categories_of(entry, parts),
              "history": entry.get("history"),
              "labels": {"training_rows": int(len(train_part.y)), "from_decisions": from_decisions,
                         "from_file": int(len(train_part.y)) - from_decisions}}
    row = [model_id, kind, ds["id"], ds["name"], ds["source_sha256"], fs["version"], json.dumps(split.public()),
           json.dumps(params, default=_json_default), json.dumps(result_metrics, default=_json_default),
           float(verify), float(block) if np.isfinite(block) else None, json.dumps(feature_names(fs)), path.name,
           _sha(path), float(entry["train_seconds"]), run_id, datetime.now()]
    import pandas as pd
    scores = pd.concat([pd.DataFrame({"part": part, "transaction_id": frame.ids.astype(str), "score": s})
                        for part, frame, s in (("valid", valid, s_valid), ("test", test, s_test))])
    with store.write() as cur:
        cur.execute("INSERT INTO models VALUES (" + ", ".join("?" * len(row)) + ")", row)
        cur.register("new_scores", scores)
        cur.execute("INSERT INTO model_scores SELECT ?, part, transaction_id, score FROM new_scores", [model_id])
        cur.unregister("new_scores")
        store.audit(cur, actor, "train_model", "model", model_id, {"kind": kind, "dataset": ds["name"],
                    "feature_version": fs["version"], "test_auc": result_metrics["test"]["auc"],
                    "test_average_precision": result_metrics["test"]["average_precision"]}, model_id=model_id)
    return get_model(store, model_id)


def _categories_of(entry, parts) -> dict:
    X = parts["train"].X
    return {c: list(X[c].cat.categories) for c in X.columns if str(X[c].dtype) == "category"}


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


# -- registry --------------------------------------------------------------------------------------

def _public(row: dict) -> dict:
    out = dict(row)
    for key in ("split", "params", "metrics", "features"):
        out[key] = json.loads(out[key]) if out[key] else None
    out["created_at"] = row["created_at"].isoformat(sep=" ", timespec="seconds")
    return out


def list_models(store: Store, dataset: str | None = None) -> list[dict]:
    """Registered models, newest first; with `dataset`, those trained on that dataset (by id,
    so a later dataset that reuses a deleted one's name does not inherit its models)."""
    if dataset is None:
        return [_public(r) for r in store.dicts("SELECT * FROM models ORDER BY created_at DESC, kind")]
    ids = store.rows("SELECT id FROM datasets WHERE name = ?", [dataset])
    if not ids:
        return []
    return [_public(r) for r in store.dicts("SELECT * FROM models WHERE dataset_id = ? ORDER BY created_at DESC, kind",
                                            [ids[0][0]])]


def feature_config(model: dict) -> FeatureConfig:
    """The feature-set settings a model was trained with."""
    config_ = model["params"]["feature_config"]
    return FeatureConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config_.items()})


def model_dataset(store: Store, model: dict, dataset: str | None = None) -> dict:
    """The dataset to use with a model: the one named, else the one it was trained on."""
    if dataset:
        return get_dataset(store, dataset)
    try:
        return get_dataset(store, int(model["dataset_id"]))
    except RiskdeskError:
        raise RiskdeskError(f"the dataset model {model['model_id']} was trained on ({model['dataset_name']!r}) "
                            "was deleted; name another dataset") from None


def get_model(store: Store, model_id: str) -> dict:
    rows = store.dicts("SELECT * FROM models WHERE model_id = ?", [model_id])
    if not rows:
        raise NotFound(f"no model {model_id!r}")
    return _public(rows[0])


def delete_model(store: Store, model_id: str, actor: str = "cli") -> None:
    model = get_model(store, model_id)
    with store.write() as cur:
        cur.execute("DELETE FROM models WHERE model_id = ?", [model_id])
        cur.execute("DELETE FROM model_scores WHERE model_id = ?", [model_id])
        store.audit(cur, actor, "delete_model", "model", model_id, {"kind": model["kind"]}, model_id=model_id)
    (store.home / "models" / model["artifact"]).unlink(missing_ok=True)


def load_artifact(store: Store, model: dict):
    """The model's artifact, after checking its SHA-256 against the registry."""
    path = store.home / "models" / model["artifact"]
    if not path.is_file():
        raise RiskdeskError(f"the artifact of model {model['model_id']} is missing ({path.name})")
    if _sha(path) != model["artifact_sha256"]:
        raise RiskdeskError(f"the artifact of model {model['model_id']} changed since training (SHA-256 mismatch)")
    if model["kind"] in ("rules", "logistic"):
        return json.loads(path.read_text())
    import lightgbm as lgb
    return lgb.Booster(model_file=str(path))


def score(store: Store, model_id: str, dataset: str | None = None, start=None, end=None, progress=None):
    """Score every transaction of a dataset (or period): DataFrame transaction_id, score,
    decision. Decision: BLOCK if an enabled BLOCK rule fires, otherwise the model's bands
    (score >= block threshold: BLOCK, >= threshold: VERIFY, else PASS)."""
    model = get_model(store, model_id)
    ds = model_dataset(store, model, dataset)
    fs = build_features(store, ds["name"], feature_config(model), progress)
    missing = [f for f in model["features"] if f not in feature_names(fs)]
    if missing:
        raise RiskdeskError(f"dataset {ds['name']!r} lacks features the model needs: {', '.join(missing[:5])}")
    artifact = load_artifact(store, model)
    frame = _load(store, fs, (str(start), str(end)) if start and end else None, labelled=False)
    if start and not end or end and not start:
        raise RiskdeskError("give both --start and --end, or neither")
    if model["kind"] == "rules":
        ev = rules_mod.evaluate(store, fs, artifact["rules"], start, end)
        out = ev[["transaction_id", "rule_score", "rule_decision"]].rename(
            columns={"rule_score": "score", "rule_decision": "decision"})
        return out
    X = encode_categories(frame.X, model["params"]["categories"])
    s = (_predict_logistic(artifact["spec"], X) if model["kind"] == "logistic" else artifact.predict(X))
    import pandas as pd
    out = pd.DataFrame({"transaction_id": frame.ids, "score": s})
    blocked = rules_mod.blocked_ids(store, fs, start, end)
    out["decision"] = metrics.decide(s, model["threshold"], model["block_threshold"],
                                     out["transaction_id"].isin(blocked).to_numpy())
    return out


def write_scores(frame, out) -> dict:
    out = Path(out)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise RiskdeskError(f"{out.name}: --out must end in .csv or .parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        from .export import safe_csv_bytes
        out.write_bytes(safe_csv_bytes(frame))
    else:
        frame.to_parquet(out, index=False)
    return {"out": str(out), "rows": int(len(frame)),
            "decisions": {k: int(v) for k, v in frame["decision"].value_counts().items()}}
