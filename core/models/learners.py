"""The learners: LightGBM (binned once per tuning study) and a logistic regression kept as
JSON."""
from __future__ import annotations

import os

import numpy as np

from .. import config
from ..features import feature_names
from .frames import Frame, categorical_names, resample_training

# OpenMP threads that spin while waiting collapse when another process holds a core
# (design.md, Threads); passive waiting keeps LightGBM usable on a busy 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def lgb_params(extra: dict, seed: int, rows: int) -> dict:
    return {"objective": "binary", "verbosity": -1, "seed": seed, "deterministic": True, "force_row_wise": True,
            "num_threads": config.model_threads(rows), "feature_pre_filter": False, **extra}


SMOTE_MAX_RATIO = 0.5
# Per trial: at most this many rounds, stopping when validation AP has not improved for
# TUNE_EARLY_STOP rounds (keeps 30 trials on the demo data near a minute on one core).
TUNE_MAX_ROUNDS, TUNE_EARLY_STOP = 200, 20


class Binned:
    """LightGBM datasets binned once and reused by every trial that trains on the real rows
    (binning is a large share of a small trial's time); SMOTE trials bin their own. SMOTE runs
    once at the largest ratio: its synthetic rows are independent draws, so the first n of
    them are a SMOTE sample of size n, and each trial takes the prefix its ratio needs."""

    def __init__(self, train: Frame, categorical: list[str], valid: Frame | None, seed: int = 42):
        self.train, self.categorical, self.valid, self.seed = train, categorical, valid, seed
        self._data = self._valid = self._pool = None

    def resampled(self, ratio: float):
        """(X, y, weights or None, synthetic rows) for a SMOTE ratio of fraud to normal training
        rows (by weight: a sampled normal row stands for several). Synthetic rows weigh 1."""
        if self._pool is None:
            self._pool = resample_training(self.train.X, self.train.y, self.categorical, SMOTE_MAX_RATIO, self.seed)
        X, y, made = self._pool
        w = self.train.weight
        pos = int((self.train.y == 1).sum())
        neg = float(w[self.train.y == 0].sum()) if w is not None else int((self.train.y == 0).sum())
        take = max(0, min(made, int(min(ratio, SMOTE_MAX_RATIO) * neg) - pos))
        keep = len(self.train.y) + take
        return X.iloc[:keep], y[:keep], None if w is None else np.r_[w, np.ones(take)], take

    def datasets(self, X=None, y=None, weight=None):
        import lightgbm as lgb
        cats = self.categorical or "auto"
        if X is not None:   # resampled training rows: a fresh dataset, validation binned like it
            data = lgb.Dataset(X, y, weight=weight, categorical_feature=cats, free_raw_data=False)
            return data, self._valid_for(data)
        if self._data is None:
            self._data = lgb.Dataset(self.train.X, self.train.y, weight=self.train.weight, categorical_feature=cats,
                                     free_raw_data=False)
            self._valid = self._valid_for(self._data)
        return self._data, self._valid

    def _valid_for(self, data):
        import lightgbm as lgb
        if self.valid is None:
            return None
        return lgb.Dataset(self.valid.X, self.valid.y, reference=data, categorical_feature=self.categorical or "auto")


def train_lgb(params: dict, rounds: int, train: Frame, categorical: list[str], valid: Frame | None = None,
               early_stopping: int | None = None, imbalance: str = "none", smote_ratio: float = 0.1,
               scale_pos_weight: float = 1.0, seed: int = 42, binned: Binned | None = None):
    import lightgbm as lgb
    binned = binned or Binned(train, categorical, valid if early_stopping else None, seed)
    synthetic = 0
    if imbalance == "smote":
        X, y, weight, synthetic = binned.resampled(smote_ratio)
        data, valid_data = binned.datasets(X, y, weight)
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


def fit_logistic(train: Frame, fs: dict, balanced: bool, seed: int) -> dict:
    from sklearn.linear_model import LogisticRegression
    numeric = feature_names(fs, "numeric")
    X = train.X
    spec = {"numeric": numeric, "median": {}, "low": {}, "high": {}, "mean": {}, "scale": {},
            "categories": {n: [c for c in X[n].dropna().astype(str).value_counts().index[:20]] for n in categorical_names(fs)}}
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
    model.fit(logistic_design(X, spec), train.y.astype(int), sample_weight=train.weight)
    spec["coef"] = model.coef_[0].tolist()
    spec["intercept"] = float(model.intercept_[0])
    return spec


def predict_logistic(spec: dict, X) -> np.ndarray:
    z = logistic_design(X, spec) @ np.asarray(spec["coef"]) + spec["intercept"]
    return 1 / (1 + np.exp(-np.clip(z, -50, 50)))
