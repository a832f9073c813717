"""Exploration of a feature set: distributions by label, fraud rates, ranking (AUC, KS, IV,
missing rate), correlation, customer segments and population stability (PSI).

Aggregation happens in DuckDB. Statistics that need every value sorted (AUC, KS, IV,
correlation) use all fraud rows plus a weighted random sample of at most SAMPLE_NORMALS
normal rows, so they are exact on datasets up to that size and stay fast on millions.
"""
from __future__ import annotations

import math

import numpy as np

from . import metrics
from .errors import RiskdeskError
from .features import feature_names
from .store import Store, quote_ident

SAMPLE_NORMALS = 200_000
PSI_BANDS = (0.1, 0.25)
PSI_QUANTILE_ROWS = 200_000       # bins of a period larger than this are cut on a sample of it


def _feature(fs: dict, name: str) -> dict:
    for f in fs["catalogue"]:
        if f["name"] == name:
            return f
    raise RiskdeskError(f"feature set {fs['version']} has no feature {name!r}")


# -- one feature -----------------------------------------------------------------------------

def distribution(store: Store, fs: dict, name: str, bins: int = 30, log: bool = False):
    """Counts by bin and label (DataFrame: bin, lo, hi, label, count, share). Numeric features
    use equal-width bins between the 0.5% and 99.5% quantiles (on log10(1 + x) if log);
    categorical ones their 20 most frequent values."""
    f = _feature(fs, name)
    col = quote_ident(name)
    table = fs["table"]
    if f["kind"] == "categorical":
        return store.df(f"""
            WITH top AS (SELECT {col} AS v FROM {table} GROUP BY 1 ORDER BY count(*) DESC LIMIT 20),
            counted AS (SELECT coalesce(CAST({col} AS VARCHAR), '(missing)') AS bin, label, count(*) AS count
                        FROM {table} WHERE {col} IN (SELECT v FROM top) OR {col} IS NULL GROUP BY 1, 2)
            SELECT bin, label, count, count / sum(count) OVER (PARTITION BY label) AS share
            FROM counted ORDER BY bin, label""")
    distinct, integral = store.rows(f"SELECT approx_count_distinct({col}), bool_and({col} = floor({col})) "
                                    f"FROM {table}")[0]
    if not log and integral and distinct <= 48:
        frame = store.df(f"""
            SELECT CAST({col} AS DOUBLE) AS bin, label, count(*) AS count,
                   count(*) / sum(count(*)) OVER (PARTITION BY label) AS share
            FROM {table} WHERE {col} IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2""")
        frame.insert(1, "lo", frame["bin"] - 0.5)
        frame.insert(2, "hi", frame["bin"] + 0.5)
        return frame
    x = f"log10(1 + greatest({col}, 0))" if log else f"CAST({col} AS DOUBLE)"
    lo, hi = store.rows(f"SELECT approx_quantile({x}, 0.005), approx_quantile({x}, 0.995) FROM {table}")[0]
    if lo is None:
        raise RiskdeskError(f"feature {name} has no values")
    if hi <= lo:
        hi = lo + 1
    width = (hi - lo) / bins
    frame = store.df(f"""
        SELECT b AS bin, label, count(*) AS count, count(*) / sum(count(*)) OVER (PARTITION BY label) AS share
        FROM (SELECT CAST(least(greatest(floor(({x} - ?) / ?), 0), ? - 1) AS INTEGER) AS b, label
              FROM {table} WHERE {col} IS NOT NULL)
        GROUP BY b, label ORDER BY b, label""", [lo, width, bins])
    frame.insert(1, "lo", lo + frame["bin"] * width)
    frame.insert(2, "hi", lo + (frame["bin"] + 1) * width)
    return frame


def box_stats(store: Store, fs: dict, name: str):
    """Quantiles of a numeric feature per label (DataFrame: label, n, p05, p25, p50, p75, p95, mean)."""
    col = quote_ident(name)
    return store.df(f"""
        SELECT label, count({col}) AS n, approx_quantile({col}, 0.05) AS p05, approx_quantile({col}, 0.25) AS p25,
               approx_quantile({col}, 0.5) AS p50, approx_quantile({col}, 0.75) AS p75,
               approx_quantile({col}, 0.95) AS p95, avg({col}) AS mean
        FROM {fs['table']} WHERE label IS NOT NULL GROUP BY label ORDER BY label""")


DIMENSIONS = {
    "hour": "hour(timestamp)",
    "day_of_week": "isodow(timestamp) - 1",
    "channel": "channel",
    "transaction_type": "transaction_type",
}


def rate_by(store: Store, ds: dict, dimension: str):
    """Transactions, frauds and fraud rate by hour, weekday, channel or transaction type."""
    if dimension not in DIMENSIONS:
        raise RiskdeskError(f"unknown dimension {dimension!r}")
    if dimension in ("channel", "transaction_type") and dimension not in ds["mapping"]:
        return None
    expr = DIMENSIONS[dimension]
    return store.df(f"""
        SELECT {expr} AS value, count(*) AS transactions, coalesce(sum(label), 0) AS frauds,
               avg(label) AS fraud_rate
        FROM {ds['table']} GROUP BY 1 ORDER BY {'1' if dimension in ('hour', 'day_of_week') else '2 DESC'}
        LIMIT 50""")


def daily(store: Store, ds: dict):
    """Transactions, frauds and fraud rate per day."""
    return store.df(f"""
        SELECT CAST(timestamp AS DATE) AS day, count(*) AS transactions, coalesce(sum(label), 0) AS frauds,
               avg(label) AS fraud_rate, sum(amount) AS amount
        FROM {ds['table']} GROUP BY 1 ORDER BY 1""")


# -- ranking and correlation on a stratified sample ----------------------------------------------

def labelled_sample(store: Store, fs: dict, columns: list[str], limit: int = SAMPLE_NORMALS):
    """All fraud rows and up to `limit` normal rows (seeded), with a weight per row that
    restores the full data's class balance. Returns (DataFrame, weights)."""
    cols = ", ".join(quote_ident(c) for c in columns)
    normals = store.scalar(f"SELECT count(*) FROM {fs['table']} WHERE label = 0") or 0
    take = min(limit, normals)
    frame = store.df(f"""
        SELECT label, {cols} FROM {fs['table']} WHERE label = 1
        UNION ALL
        SELECT label, {cols} FROM (SELECT label, {cols} FROM {fs['table']} WHERE label = 0
                                   ORDER BY hash(transaction_id) LIMIT {int(take)})""")
    weights = np.where(frame["label"].to_numpy() == 1, 1.0, normals / take if take else 1.0)
    return frame, weights


def _auc_ks(values: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Weighted ROC AUC (ties count half) and KS of one feature, missing values left out."""
    ok = ~np.isnan(values)
    return metrics.roc_auc(labels[ok], values[ok], weights[ok]), metrics.ks(labels[ok], values[ok], weights[ok])


def _iv(values: np.ndarray, labels: np.ndarray, weights: np.ndarray, bins: int = 10) -> float:
    """Information value over quantile bins plus a missing bin (WOE with 0.5 smoothing)."""
    missing = np.isnan(values)
    edges = np.unique(np.nanquantile(values, np.linspace(0, 1, bins + 1)[1:-1])) if (~missing).any() else []
    # bin i holds edge[i-1] < v <= edge[i]
    codes = np.where(missing, -1, np.searchsorted(edges, np.nan_to_num(values), side="left"))
    pos_total = weights[labels == 1].sum()
    neg_total = weights[labels == 0].sum()
    iv = 0.0
    for code in np.unique(codes):
        m = codes == code
        p = (weights[m & (labels == 1)].sum() + 0.5) / (pos_total + 0.5)
        n = (weights[m & (labels == 0)].sum() + 0.5) / (neg_total + 0.5)
        iv += (p - n) * math.log(p / n)
    return float(iv)


def ranking(store: Store, fs: dict):
    """Every feature's univariate separation of fraud from normal (DataFrame: feature,
    family, auc, direction, ks, iv, missing_rate), most separating first. Categorical features
    are scored by their categories' fraud rates. AUC is shown as max(AUC, 1 - AUC) with the
    direction in which the feature points to fraud."""
    import pandas as pd
    names = feature_names(fs)
    frame, weights = labelled_sample(store, fs, names)
    labels = frame["label"].to_numpy()
    missing = store.rows("SELECT " + ", ".join(f"avg(CAST({quote_ident(n)} IS NULL AS INTEGER))" for n in names)
                         + f" FROM {fs['table']}")[0]
    rows = []
    for f, miss in zip(fs["catalogue"], missing):
        col = frame[f["name"]]
        if f["kind"] == "categorical":
            key = col.astype("string").fillna("(missing)")
            rate = pd.Series(labels * weights).groupby(key.to_numpy()).sum() / pd.Series(weights).groupby(key.to_numpy()).sum()
            values = key.map(rate).to_numpy(dtype=float)
        else:
            values = col.to_numpy(dtype=float)
        auc, ks = _auc_ks(values, labels, weights)
        rows.append({"feature": f["name"], "family": f["family"],
                     "auc": max(auc, 1 - auc) if auc == auc else auc,
                     "direction": "higher" if auc >= 0.5 else "lower", "ks": ks,
                     "iv": _iv(values, labels, weights), "missing_rate": miss})
    out = pd.DataFrame(rows)
    return out.sort_values(["auc", "iv"], ascending=False, na_position="last").reset_index(drop=True)


def correlation(store: Store, fs: dict, names: list[str]):
    """Spearman correlation of numeric features on the labelled sample (DataFrame)."""
    numeric = [n for n in names if _feature(fs, n)["kind"] == "numeric"]
    frame, _ = labelled_sample(store, fs, numeric, limit=50_000)
    return frame[numeric].astype(float).corr(method="spearman")


# -- customer segments ---------------------------------------------------------------------------

PROFILE = {
    "transactions": "count(*)",
    "log_mean_amount": "avg(ln(1 + greatest(amount, 0)))",
    "night_share": "avg(CAST(hour(timestamp) <= 6 AS DOUBLE))",
    "active_days": "count(DISTINCT CAST(timestamp AS DATE))",
}


def segments(store: Store, ds: dict, k: int = 5, as_of=None, days: int = 90, seed: int = 0) -> dict:
    """KMeans segments of customers on point-in-time profiles: each customer's behaviour in
    the `days` before `as_of` (default: the end of the data), nothing after. Returns the
    segment table and a sample of points for a scatter."""
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    if not 2 <= k <= 12:
        raise RiskdeskError("the number of segments must be between 2 and 12")
    extra = {}
    if "channel" in ds["mapping"]:
        extra["channels"] = "count(DISTINCT channel)"
    if "counterparty_id" in ds["mapping"]:
        extra["counterparties"] = "count(DISTINCT counterparty_id)"
    profile = {**PROFILE, **extra}
    end = as_of or store.scalar(f"SELECT max(timestamp) FROM {ds['table']}")
    frame = store.df(f"""
        SELECT customer_id, {', '.join(f'{sql} AS {name}' for name, sql in profile.items())},
               count(label) AS labelled, coalesce(sum(label), 0) AS frauds
        FROM {ds['table']} WHERE timestamp <= ? AND timestamp > CAST(? AS TIMESTAMP) - INTERVAL {int(days)} DAY
        GROUP BY customer_id""", [end, end])
    if len(frame) < k:
        raise RiskdeskError(f"only {len(frame)} customers were active in the {days} days before {end}")
    x = frame[list(profile)].astype(float).to_numpy()
    x[:, 0] = np.log1p(x[:, 0])
    x = StandardScaler().fit_transform(np.nan_to_num(x))
    fit_rows = np.random.default_rng(seed).permutation(len(x))[:50_000]
    model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x[fit_rows])
    frame["segment"] = model.predict(x)
    table = frame.groupby("segment").agg(
        customers=("customer_id", "size"), transactions=("transactions", "sum"),
        frauds=("frauds", "sum"), labelled=("labelled", "sum"),
        **{f"mean_{c}": (c, "mean") for c in profile if c != "transactions"}).reset_index()
    table["fraud_rate"] = table["frauds"] / table["labelled"].where(table["labelled"] > 0)
    table["share"] = table["customers"] / table["customers"].sum()
    points = frame.sample(min(len(frame), 3000), random_state=seed)
    return {"as_of": end, "days": days, "table": table.sort_values("segment"), "points": points,
            "profile": list(profile)}


# -- population stability --------------------------------------------------------------------------

def psi(store: Store, fs: dict, a: tuple, b: tuple, names: list[str] | None = None):
    """PSI of each feature between period a = (start, end) and period b, on ten bins cut at
    the deciles of period a (of a sample of PSI_QUANTILE_ROWS of its rows when it has more),
    plus a missing bin; categories for categorical features.
    Dates are inclusive days. Returns DataFrame: feature, psi, band (stable/watch/shift).
    One query for every feature: binning, counting and the sum run in DuckDB."""
    import pandas as pd
    names = names or feature_names(fs)
    table = fs["table"]
    in_a, in_b = "CAST(timestamp AS DATE) BETWEEN $1 AND $2", "CAST(timestamp AS DATE) BETWEEN $3 AND $4"
    params = [str(a[0]), str(a[1]), str(b[0]), str(b[1])]   # the periods may overlap: each is counted on its own
    sizes = store.rows(f"SELECT count(*) FILTER (WHERE {in_a}), count(*) FILTER (WHERE {in_b}) FROM {table} "
                       f"WHERE {in_a} OR {in_b}", params)[0]
    if not sizes[0] or not sizes[1]:
        raise RiskdeskError("each period must contain transactions")
    numeric = [n for n in names if _feature(fs, n)["kind"] == "numeric"]
    deciles = [x / 10 for x in range(1, 10)]
    edges = {}
    if numeric:
        # the deciles of a large period from a sample of it (blocks of rows, spread over time):
        # 9.4 s on the 7M rows of a 10M-row dataset's training period, 0.4 s from 1% of them
        share = 100.0 * PSI_QUANTILE_ROWS / sizes[0]
        sample = f" USING SAMPLE {share!r}% (system, 42)" if share < 100 else ""
        row = store.rows("SELECT " + ", ".join(f"approx_quantile({quote_ident(n)}, {deciles})" for n in numeric)
                         + f" FROM (SELECT * FROM {table} WHERE {in_a}){sample}", params[:2])[0]
        edges = {n: sorted(set(e for e in (q or []) if e is not None)) for n, q in zip(numeric, row)}
    branches = []
    for i, n in enumerate(names):
        col = quote_ident(n)
        if n in edges:
            bin_sql = bins_sql(col, edges[n], [f"'{k}'" for k in range(len(edges[n]) + 1)], "'-1'")
        else:
            bin_sql = f"coalesce(CAST({col} AS VARCHAR), '(missing)')"
        branches.append(f"SELECT {i} AS feature, {bin_sql} AS bin, count(*) FILTER (WHERE in_a) AS na, "
                        f"count(*) FILTER (WHERE in_b) AS nb FROM rows GROUP BY 2")
    if not branches:
        return pd.DataFrame({"feature": [], "psi": [], "band": []})
    values = dict(store.rows(f"""
        WITH rows AS MATERIALIZED (SELECT *, {in_a} AS in_a, {in_b} AS in_b FROM {table} WHERE {in_a} OR {in_b}),
             counts AS ({" UNION ALL ".join(branches)})
        SELECT feature, sum((pb - pa) * ln(pb / pa)) FROM (
            SELECT feature, greatest(na / {int(sizes[0])}, 1e-4) AS pa, greatest(nb / {int(sizes[1])}, 1e-4) AS pb
            FROM counts)
        GROUP BY feature""", params))
    results = [{"feature": n, "psi": float(values[i]), "band": psi_band(float(values[i]))} for i, n in enumerate(names)]
    return pd.DataFrame(results).sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)


def bins_sql(column: str, cuts: list[float], labels: list[str], missing: str) -> str:
    """A CASE expression putting `column` in the bin of the first cut it does not exceed, or
    above them all in the last; `labels` (SQL literals) name the len(cuts) + 1 bins, `missing`
    the bin of NULL."""
    return (f"CASE WHEN {column} IS NULL THEN {missing} "
            + "".join(f"WHEN {column} <= {float(c)!r} THEN {label} " for c, label in zip(cuts, labels))
            + f"ELSE {labels[len(cuts)]} END")


def psi_band(value: float) -> str:
    return "stable" if value < PSI_BANDS[0] else ("watch" if value < PSI_BANDS[1] else "shift")
