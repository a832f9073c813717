"""Feature rows as model inputs: a period's features and labels (review decisions override the
file's), categorical encoding, and SMOTE on training rows only."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..features import feature_names
from ..labels import label_sql
from ..store import Store, quote_ident
from .splits import Split, random_part


@dataclass
class Frame:
    X: object          # pandas DataFrame
    y: np.ndarray
    amount: np.ndarray
    day: np.ndarray
    ids: np.ndarray
    reviewed: np.ndarray | None = None   # the label came from a review decision, not the file
    weight: np.ndarray | None = None     # sampled training rows: how many rows each stands for


# What one row of a model's input costs in memory, per feature: pandas' float64 column, a copy
# while encoding, LightGBM's dataset and working space.
BYTES_PER_VALUE = 8 * 4


def frame_filters(fs: dict, period, split, part, labelled) -> tuple[str, list, list, str]:
    join, join_params = label_sql(fs["dataset_id"])
    label = "coalesce(reviewed_label, label)"
    where, params = [], []
    if period:
        where.append("CAST(timestamp AS DATE) BETWEEN ? AND ?")
        params += list(period)
    if labelled:
        where.append(f"{label} IS NOT NULL")
    if split is not None and split.method == "random":
        where.append(random_part(split, part))
    source = f"(SELECT * FROM {fs['table']} {join})" + (" WHERE " + " AND ".join(where) if where else "")
    return source, join_params, params, label


def frame_bytes(fs: dict, rows: int) -> int:
    """Memory that `rows` rows of this feature set take as a model's input."""
    return int(rows) * (len(feature_names(fs)) + 6) * BYTES_PER_VALUE


def sampling_plan(store: Store, fs: dict, period, row_limit: int, seed: int = 42, split: Split | None = None,
                  part: str = "train") -> dict | None:
    """For a training period larger than `row_limit` labelled rows: keep every fraud and the
    same share of each day's normal transactions (time-stratified), weighted so that they stand
    for all of that day's normals and scores stay calibrated. None when every row fits."""
    source, join_params, params, label = frame_filters(fs, period, split, part, True)
    rows, frauds = store.rows(f"SELECT count(*), coalesce(sum({label}), 0) FROM {source}", join_params + params)[0]
    if rows <= row_limit:
        return None
    normals = rows - frauds
    keep = max(row_limit - frauds, min(normals, 1000))
    return {"row_limit": int(row_limit), "rows": int(rows), "frauds": int(frauds), "normals": int(normals),
            "normal_share": keep / normals, "seed": int(seed), "method": "all frauds; per day, the same share of "
            "normal transactions (hash of the id), each weighted by its day's normals / kept normals"}


def load_frame(store: Store, fs: dict, period: tuple[str, str] | None, split: Split | None = None, part: str = "",
               labelled: bool = True, sample: dict | None = None) -> Frame:
    """A period's features and labels (a conclusive review decision overrides the file's label),
    in time order; with a `sample` plan (sampling_plan), its sampled rows and their weights."""
    names = feature_names(fs)
    cols = ", ".join(quote_ident(n) for n in names)
    source, join_params, params, label = frame_filters(fs, period, split, part, labelled)
    base = (f"SELECT transaction_id, timestamp, amount, CAST(timestamp AS DATE) AS day, {label} AS label, "
            f"reviewed_label IS NOT NULL AS reviewed, {cols} FROM {source}")
    if sample is None:
        sql = f"SELECT *, 1.0 AS weight FROM ({base})"
    else:
        share = float(sample["normal_share"])
        kept = f"greatest(1, round({share} * _day_normals))"
        sql = (f"SELECT * EXCLUDE (_rank, _day_normals), CASE WHEN label = 1 THEN 1.0 ELSE _day_normals / {kept} "
               f"END AS weight FROM (SELECT *, row_number() OVER (PARTITION BY day, label = 1 ORDER BY "
               f"hash(CAST(transaction_id AS VARCHAR), {int(sample['seed'])})) AS _rank, "
               f"count(*) OVER (PARTITION BY day, label = 1) AS _day_normals FROM ({base})) "
               f"WHERE label = 1 OR _rank <= {kept}")
    df = store.df(sql + " ORDER BY timestamp, transaction_id", join_params + params)
    X = df[names]
    for f in fs["catalogue"]:
        if f["kind"] == "numeric":
            X[f["name"]] = X[f["name"]].astype("float64")
    return Frame(X, df["label"].to_numpy(dtype=float), df["amount"].to_numpy(dtype=float),
                 df["day"].to_numpy(), df["transaction_id"].to_numpy(), df["reviewed"].to_numpy(dtype=bool),
                 df["weight"].to_numpy(dtype=float) if sample is not None else None)


def categorical_names(fs: dict) -> list[str]:
    return feature_names(fs, "categorical")


def encode_categories(X, categories: dict[str, list]):
    """Categorical columns as pandas categories with the training categories (unseen -> NaN)."""
    import pandas as pd
    X = X.copy(deep=False)         # copy-on-write: the caller's frame stays as it was
    for name, cats in categories.items():
        if pd.api.types.is_string_dtype(X[name].dtype) and all(isinstance(c, str) for c in cats):
            X[name] = _text_categories(X[name], cats)
        else:
            X[name] = pd.Categorical(X[name].astype("object"), categories=cats)
    return X


def _text_categories(column, cats: list[str]):
    """A text column as pandas categories, its codes looked up in Arrow: the same as
    pd.Categorical(column.astype(object), cats), without a Python object per row (which held
    the GIL for 40-60 ms per column on 100k rows while scoring a dataset)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    values = pa.array(column, type=pa.string(), from_pandas=True)
    codes = pc.index_in(values, value_set=pa.array(cats, pa.string())).fill_null(-1)
    return pd.Categorical.from_codes(codes.to_numpy(zero_copy_only=False).astype("int64"), categories=cats)


def fit_categories(X, names: list[str]) -> dict[str, list]:
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


def subset_frame(frame: Frame, mask: np.ndarray) -> Frame:
    return Frame(frame.X[mask].reset_index(drop=True), frame.y[mask], frame.amount[mask], frame.day[mask],
                 frame.ids[mask], None if frame.reviewed is None else frame.reviewed[mask],
                 None if frame.weight is None else frame.weight[mask])
