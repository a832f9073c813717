"""Explanations of model scores: SHAP (TreeExplainer) for the tree models, exact linear
contributions for logistic regression, always on real rows. Contributions are in log-odds;
base value + sum of contributions = the model's margin, and the score is its probability.

Loaded models and their explainers are cached by model id (artifacts are SHA-256-verified on
load), so one transaction's explanation costs a feature lookup and one SHAP row.
"""
from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from . import config, metrics, models
from . import rules as rules_mod
from .errors import NotFound, RiskdeskError
from .features import build_features, feature_names
from .i18n import t
from .store import Store, quote_ident

TREE_KINDS = ("default", "tuned", "forest")
EXPLAINABLE = TREE_KINDS + ("logistic",)
CHUNK = 2000
ONE_THREAD_ROWS = 500          # predictions on at most this many rows run on one thread


@dataclass
class Loaded:
    model: dict
    artifact: object
    fs: dict
    ds: dict
    names: list[str]
    categories: dict
    _explainer: object = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # LightGBM's pred_contrib is not thread-safe on a shared Booster (heap corruption, LightGBM
    # issue #5482; seen here as a segfault under 20 concurrent API clients): one at a time on
    # `artifact`, or each thread on its own copy (booster()).
    predicting: threading.Lock = field(default_factory=threading.Lock)
    _text: str | None = None
    _copies: threading.local = field(default_factory=threading.local)

    @property
    def kind(self) -> str:
        return self.model["kind"]

    def booster(self):
        """This thread's own copy of the LightGBM model, for predictions without the lock:
        with one lock, every API request queued behind the others' waits for the GIL."""
        copy = getattr(self._copies, "booster", None)
        if copy is None:
            import lightgbm as lgb
            with self.predicting:
                if self._text is None:
                    self._text = self.artifact.model_to_string()
            copy = self._copies.booster = lgb.Booster(model_str=self._text)
        return copy

    def explainer(self):
        with self._lock:
            if self._explainer is None:
                import shap
                self._explainer = shap.TreeExplainer(self.artifact)
            return self._explainer


_cache: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()
CACHE_SIZE = 8


def load(store: Store, model_id: str, dataset: str | None = None) -> Loaded:
    """The model, its verified artifact and the feature set of `dataset` (default: the
    dataset it was trained on), cached by (workspace, model id, dataset)."""
    key = (str(store.home), model_id, dataset)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
    if hit is not None:     # the feature set catches up with batches and decisions since (cheap when level)
        hit.fs = build_features(store, hit.ds["name"], models.feature_config(hit.model))
        return hit
    model = models.get_model(store, model_id)
    if model["kind"] not in EXPLAINABLE and model["kind"] != "rules":
        raise RiskdeskError(f"model {model_id} ({model['kind']}) cannot be explained")
    ds = models.model_dataset(store, model, dataset)
    fs = build_features(store, ds["name"], models.feature_config(model))
    missing = [f for f in model["features"] if f not in feature_names(fs)]
    if missing:
        raise RiskdeskError(f"dataset {ds['name']!r} lacks features the model needs: {', '.join(missing[:5])}")
    loaded = Loaded(model, models.load_artifact(store, model), fs, ds, list(model["features"]),
                    model["params"].get("categories") or {})
    with _cache_lock:
        _cache[key] = loaded
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return loaded


def forget(model_id: str) -> None:
    """Drop a (deleted) model from the cache."""
    with _cache_lock:
        for key in [k for k in _cache if k[1] == model_id]:
            del _cache[key]


# -- rows -----------------------------------------------------------------------------------------

def feature_rows(store: Store, lm: Loaded, ids: list[str]):
    """Features (model column order, encoded) and the raw values of the given transactions, in
    the order given. Unknown ids raise, naming the first."""
    cols = ", ".join(quote_ident(n) for n in lm.names)
    frame = store.df(f"SELECT transaction_id, {cols} FROM {lm.fs['table']} "
                     f"WHERE transaction_id IN (SELECT unnest(CAST(? AS VARCHAR[])))", [list(map(str, ids))])
    frame["transaction_id"] = frame["transaction_id"].astype(str)
    frame = frame.set_index("transaction_id")
    missing = [i for i in ids if str(i) not in frame.index]
    if missing:
        raise NotFound(f"no transaction {missing[0]!r} in dataset {lm.ds['name']!r}")
    frame = frame.loc[[str(i) for i in ids]]
    raw = frame.copy()
    X = frame.reset_index(drop=True)
    numeric = set(feature_names(lm.fs, "numeric"))
    for n in lm.names:
        if n in numeric:
            X[n] = X[n].astype("float64")
    return models.encode_categories(X, lm.categories), raw


def contributions(lm: Loaded, X) -> tuple[np.ndarray, float, np.ndarray]:
    """(SHAP values n x features, base value, margin) in log-odds; base + row sums = margin.
    X is the encoded frame (feature_rows), or for tree models a float matrix with categories
    as their training codes (core.realtime)."""
    if lm.kind in TREE_KINDS:
        # A few rows on one thread: an OpenMP team of two waits for a core that training or
        # another request holds (p99 of one row 16 ms instead of 3 with a core busy).
        threads = 1 if len(X) <= ONE_THREAD_ROWS else config.threads()
        if isinstance(X, np.ndarray) and len(X):
            # A request's few encoded rows: LightGBM's own TreeSHAP, which is what shap's
            # TreeExplainer calls for a LightGBM model, without its per-call overhead.
            booster = lm.booster()
            out = np.asarray(booster.predict(X, pred_contrib=True, num_threads=threads), dtype=float)
            values, base = out[:, :-1], out[0, -1]
            margin = np.asarray(booster.predict(X, raw_score=True, num_threads=threads), dtype=float)
        else:
            with lm.predicting:
                explainer = lm.explainer()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    values = explainer.shap_values(X)
                if isinstance(values, list):        # older SHAP: one array per class
                    values = values[-1]
                values = np.asarray(values, dtype=float)
                if values.ndim == 3:
                    values = values[:, :, -1]
                base = np.asarray(explainer.expected_value, dtype=float).ravel()[-1]
                margin = np.asarray(lm.artifact.predict(X, raw_score=True, num_threads=threads), dtype=float)
        # LightGBM's random-forest mode sums the trees' log-odds; its probability is
        # sigmoid(sum / trees), so the average is the log-odds (SHAP values scale with it).
        scale = lm.artifact.num_trees() if lm.kind == "forest" else 1
        return values / scale, float(base) / scale, margin / scale
    if lm.kind == "logistic":
        return _linear_contributions(lm.artifact["spec"], X)
    raise RiskdeskError(f"{lm.kind} models have no feature contributions (see the rules fired)")


def _linear_contributions(spec: dict, X) -> tuple[np.ndarray, float, np.ndarray]:
    design = models.logistic_design(X, spec)
    coef = np.asarray(spec["coef"])
    parts = design * coef
    names = list(spec["numeric"]) + [n for n, cats in spec["categories"].items() for _ in cats]
    out = np.zeros((len(X), len(X.columns)))
    index = {n: i for i, n in enumerate(X.columns)}
    for j, name in enumerate(names):
        out[:, index[name]] += parts[:, j]
    base = float(spec["intercept"])
    return out, base, base + out.sum(axis=1)


def probability(margin: np.ndarray) -> np.ndarray:
    """Probability from log-odds."""
    return 1 / (1 + np.exp(-np.clip(margin, -50, 50)))


# -- reasons --------------------------------------------------------------------------------------

# Feature-specific sentences (English, Chinese). Binary templates apply only when the flag is 1.
REASONS = {
    "amount_to_mean_30d": ("amount is {x:.1f}× this customer's 30-day average", "金额是该客户近 30 天平均金额的 {x:.1f} 倍"),
    "amount_zscore_30d": ("amount is {x:.1f} standard deviations from this customer's 30-day mean",
                          "金额偏离该客户近 30 天均值 {x:.1f} 个标准差"),
    "amount_to_balance": ("amount is {x:.0%} of the balance before the transaction", "金额占交易前余额的 {x:.0%}"),
    "balance_after_to_before": ("{x:.0%} of the balance remains afterwards", "交易后仅剩余额的 {x:.0%}"),
    "cust_count_1h": ("{x:.0f} transactions by this customer within one hour", "该客户 1 小时内交易 {x:.0f} 笔"),
    "cust_count_1d": ("{x:.0f} transactions by this customer within 24 hours", "该客户 24 小时内交易 {x:.0f} 笔"),
    "cust_devices_7d": ("{x:.0f} different devices used by this customer in 7 days", "该客户 7 天内使用 {x:.0f} 台不同设备"),
    "cp_fraud_share_30d": ("{x:.0%} of this counterparty's confirmed transactions in 30 days were fraud",
                           "该交易对手近 30 天已确认交易中 {x:.0%} 为欺诈"),
    "cp_fraud_share_7d": ("{x:.0%} of this counterparty's confirmed transactions in 7 days were fraud",
                          "该交易对手近 7 天已确认交易中 {x:.0%} 为欺诈"),
    "cp_customers_7d": ("the counterparty was paid by {x:.0f} different customers in 7 days",
                        "该交易对手 7 天内收到 {x:.0f} 个不同客户的付款"),
    "cp_customers_1d": ("the counterparty was paid by {x:.0f} different customers in 24 hours",
                        "该交易对手 24 小时内收到 {x:.0f} 个不同客户的付款"),
    "dev_customers_30d": ("this device was used by {x:.0f} customers in 30 days", "该设备 30 天内被 {x:.0f} 个客户使用"),
    "secs_since_prev": ("{minutes} after the customer's previous transaction", "距该客户上一笔交易仅 {minutes_zh}"),
    "new_device": ("first use of this device by the customer", "客户首次使用该设备"),
    "new_channel": ("first use of this channel by the customer", "客户首次使用该渠道"),
    "new_counterparty": ("first payment to this counterparty", "首次向该交易对手付款"),
    "drained": ("the account is almost empty afterwards", "交易后账户几乎被清空"),
    "is_night": ("made at night (00:00–06:59)", "发生在夜间（00:00–06:59）"),
    "balance_mismatch": ("balances before and after do not match the amount", "交易前后余额与金额不符"),
}
BINARY = {"new_device", "new_channel", "new_counterparty", "drained", "is_night", "balance_mismatch"}


def _duration(seconds: float, lang: str) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s" if lang == "en" else f"{seconds:.0f} 秒"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min" if lang == "en" else f"{seconds / 60:.0f} 分钟"
    return f"{seconds / 3600:.1f} h" if lang == "en" else f"{seconds / 3600:.1f} 小时"


def format_value(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    if isinstance(value, (int, np.integer)) or (isinstance(value, float) and float(value).is_integer()):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def reason(feature: str, value, shap_value: float, catalogue: dict, lang: str = "en") -> str:
    """One plain-language sentence for a contribution."""
    up = shap_value > 0
    template = REASONS.get(feature)
    numeric = isinstance(value, (int, float, np.integer, np.floating)) and not (
        isinstance(value, float) and np.isnan(value))
    if template and numeric and (feature not in BINARY or value == 1):
        text = template[1 if lang == "zh" else 0]
        x = float(value)
        sentence = text.format(x=x, minutes=_duration(x, "en"), minutes_zh=_duration(x, "zh"))
    else:
        entry = catalogue.get(feature, {})
        label = entry.get("zh" if lang == "zh" else "en", feature)
        sentence = t("reason.generic", lang, feature=label, value=format_value(value))
    return t("reason.raises" if up else "reason.lowers", lang, sentence=sentence)


def reasons(contribs: list[dict], raising: bool, catalogue: dict, lang: str = "en", n: int = 5,
            minimum: int = 3) -> list[str]:
    """3–5 sentences from the largest contributions in the direction of the score (towards
    fraud when the score is above the base value, towards normal otherwise)."""
    same = [c for c in contribs if (c["shap"] > 0) == raising and c["shap"] != 0]
    chosen = same[:n]
    if len(chosen) < minimum:
        chosen += [c for c in contribs if c not in chosen][:minimum - len(chosen)]
    return [reason(c["feature"], c["value"], c["shap"], catalogue, lang) for c in chosen]


# -- one transaction ----------------------------------------------------------------------------------

def transaction(store: Store, ds: dict, transaction_id: str) -> dict:
    rows = store.dicts(f"SELECT * FROM {quote_ident(ds['table'])} WHERE CAST(transaction_id AS VARCHAR) = ?",
                       [str(transaction_id)])
    if not rows:
        raise NotFound(f"no transaction {transaction_id!r} in dataset {ds['name']!r}")
    row = rows[0]
    row.pop("source_row", None)
    # extra columns under the names the file gave them (x_3 -> "V4"), never hiding a role
    for e in ds["extras"]:
        if e["column"] in row:
            name = e["source"] if e["source"] not in row else f"extra: {e['source']}"
            row[name] = row.pop(e["column"])
    return row


def history(store: Store, ds: dict, tx: dict, days: int = 30, limit: int = 200):
    """The customer's transactions in the `days` before this one, up to and including it."""
    return store.df(f"""
        SELECT * EXCLUDE (source_row), CAST(transaction_id AS VARCHAR) = ? AS is_this
        FROM {quote_ident(ds['table'])}
        WHERE customer_id = ? AND timestamp <= ? AND timestamp >= ? - INTERVAL {int(days)} DAY
        ORDER BY timestamp DESC, transaction_id DESC LIMIT {int(limit)}""",
                    [str(tx["transaction_id"]), tx["customer_id"], tx["timestamp"], tx["timestamp"]]
                    ).iloc[::-1].reset_index(drop=True)


def rules_fired(store: Store, lm: Loaded, transaction_id: str, rules: list[dict] | None = None) -> list[dict]:
    """The enabled rules (current versions, or the model's own for a rules model) that fire."""
    active = rules if rules is not None else rules_mod.current_rules(store, include_disabled=False)
    fired = rules_mod.fired_for(store, lm.fs, active, transaction_id)
    return [{k: r[k] for k in ("rule_id", "version", "name", "expression", "action", "score")}
            for r in active if r["rule_id"] in fired]


def explain(store: Store, model_id: str, transaction_id: str, dataset: str | None = None, lang: str = "en",
            with_history: bool = True) -> dict:
    """Everything the transaction view and the case exports show for one transaction."""
    lm = load(store, model_id, dataset)
    tx = transaction(store, lm.ds, transaction_id)
    rules_now = rules_mod.current_rules(store, include_disabled=False)
    catalogue = {f["name"]: f for f in lm.fs["catalogue"]}
    out = {"transaction_id": str(transaction_id), "model_id": model_id, "model_kind": lm.kind,
           "dataset": lm.ds["name"], "dataset_id": lm.ds["id"], "source_sha256": lm.ds["source_sha256"],
           "feature_version": lm.fs["version"], "transaction": tx,
           "model_test_metrics": {k: lm.model["metrics"]["test"].get(k) for k in
                                  ("auc", "average_precision", "ks", "rows", "frauds")},
           "thresholds": {"verify": lm.model["threshold"], "block": lm.model["block_threshold"]}}
    if lm.kind == "rules":
        fired = rules_fired(store, lm, transaction_id, lm.artifact["rules"])
        score = float(sum(r["score"] for r in fired))
        out.update(score=score, margin=score, base_value=0.0, contributions=[],
                   reasons=[t("reason.rule", lang, name=r["name"], expression=r["expression"]) for r in fired])
        blocked = any(r["action"] == "BLOCK" for r in fired)
        out["decision"] = "BLOCK" if blocked else ("VERIFY" if fired else "PASS")
        out["rules_fired"] = fired
    else:
        X, raw = feature_rows(store, lm, [transaction_id])
        values, base, margin = contributions(lm, X)
        contribs = ranked_contributions(lm.names, values[0], raw.iloc[0])
        score = float(probability(margin)[0])
        fired = rules_fired(store, lm, transaction_id, rules_now)
        out.update(score=score, margin=float(margin[0]), base_value=base, contributions=contribs,
                   reasons=reasons(contribs, margin[0] >= base, catalogue, lang), rules_fired=fired,
                   base_probability=float(probability(np.array([base]))[0]))
        out["decision"] = metrics.decide([score], lm.model["threshold"], lm.model["block_threshold"],
                                         [any(r["action"] == "BLOCK" for r in fired)])[0]
    if with_history:
        out["history"] = history(store, lm.ds, tx)
    return out


def ranked_contributions(names: list[str], shap_row, raw_row) -> list[dict]:
    """One row's contributions, largest |SHAP| first: feature, raw value, shap."""
    return sorted(({"feature": n, "value": _plain(raw_row[n]), "shap": float(v)} for n, v in zip(names, shap_row)),
                  key=lambda c: -abs(c["shap"]))


def _plain(value):
    if value is None or type(value).__name__ == "NAType":     # pandas' missing value
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else float(value)
    return str(value) if not isinstance(value, (int, bool)) else value


# -- global views ------------------------------------------------------------------------------------

def global_view(store: Store, model_id: str, sample: int = 2000, seed: int = 0, progress=None) -> dict:
    """SHAP on a sample of the model's test period (real rows only), in chunks with progress:
    mean |SHAP| per feature, and the sampled values and contributions for the beeswarm and
    dependence plots."""
    import pandas as pd
    lm = load(store, model_id)
    if lm.kind not in EXPLAINABLE:
        raise RiskdeskError(f"{lm.kind} models have no feature contributions")
    ids = [r[0] for r in store.rows("SELECT transaction_id FROM model_scores WHERE model_id = ? AND part = 'test' "
                                    "ORDER BY hash(transaction_id || ?) LIMIT ?", [model_id, str(seed), int(sample)])]
    if not ids:
        raise RiskdeskError(f"model {model_id} has no scored test rows to explain")
    parts, raws = [], []
    for start in range(0, len(ids), CHUNK):
        X, raw = feature_rows(store, lm, ids[start:start + CHUNK])
        values, base, _ = contributions(lm, X)
        parts.append(values)
        raws.append(raw)
        if progress:
            progress(min(1.0, (start + CHUNK) / len(ids)), f"{min(start + CHUNK, len(ids)):,}/{len(ids):,}")
    values = np.vstack(parts)
    raw = pd.concat(raws)
    importance = pd.DataFrame({"feature": lm.names, "mean_abs_shap": np.abs(values).mean(axis=0)}
                              ).sort_values("mean_abs_shap", ascending=False).reset_index(drop=True)
    return {"importance": importance, "shap": pd.DataFrame(values, columns=lm.names, index=raw.index),
            "values": raw, "base_value": base, "rows": len(ids)}
