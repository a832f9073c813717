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


def load_frame(store: Store, fs: dict, period: tuple[str, str] | None, split: Split | None = None, part: str = "",
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
        where.append(random_part(split, part))
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


def categorical_names(fs: dict) -> list[str]:
    return feature_names(fs, "categorical")


def encode_categories(X, categories: dict[str, list]):
    """Categorical columns as pandas categories with the training categories (unseen -> NaN)."""
    import pandas as pd
    X = X.copy()
    for name, cats in categories.items():
        X[name] = pd.Categorical(X[name].astype("object"), categories=cats)
    return X


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
                 frame.ids[mask], None if frame.reviewed is None else frame.reviewed[mask])
