"""Comparing registered models on their held-out periods: the leaderboard, scored test rows for
curves and thresholds, cost-based threshold suggestions and decision bands. Scores come from
the registry (written at training time), so nothing here retrains or rescores."""
from __future__ import annotations

import numpy as np

from . import metrics
from .errors import RiskdeskError
from .models import get_model
from .store import Store, quote_ident

LEADERBOARD_COLUMNS = ["model_id", "kind", "average_precision", "average_precision_ci", "auc", "auc_ci", "ks",
                       "precision", "recall", "f1", "capacity_precision", "capacity_recall", "fraud_amount_caught",
                       "threshold", "train_seconds", "test_rows", "test_frauds"]


def leaderboard(store: Store, model_ids: list[str]):
    """One row per model with its test-period metrics, sorted by average precision (best first).
    Precision, recall, F1 and fraud amount caught are at the model's own threshold; capacity
    figures at the daily review capacity it was trained with."""
    import pandas as pd
    rows = []
    for model_id in model_ids:
        m = get_model(store, model_id)
        test = m["metrics"]["test"]
        rows.append({"model_id": model_id, "kind": m["kind"], "average_precision": test["average_precision"],
                     "average_precision_ci": _ci(test.get("average_precision_ci")), "auc": test["auc"],
                     "auc_ci": _ci(test.get("auc_ci")), "ks": test["ks"],
                     "precision": test["at_threshold_precision"], "recall": test["at_threshold_recall"],
                     "f1": test["at_threshold_f1"], "capacity_precision": test.get("capacity_precision"),
                     "capacity_recall": test.get("capacity_recall"),
                     "fraud_amount_caught": test.get("at_threshold_fraud_amount_caught"),
                     "threshold": m["threshold"], "train_seconds": m["train_seconds"], "test_rows": test["rows"],
                     "test_frauds": test["frauds"]})
    frame = pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS)
    return frame.sort_values("average_precision", ascending=False, na_position="last").reset_index(drop=True)


def _ci(pair) -> str:
    if not pair or pair[0] is None or (isinstance(pair[0], float) and np.isnan(pair[0])):
        return ""
    return f"{pair[0]:.3f} – {pair[1]:.3f}"


def scored(store: Store, model_id: str, part: str = "test"):
    """The model's scores on its validation or test period joined to the real rows: DataFrame
    transaction_id, timestamp, day, amount, label, score, rule_block (an enabled BLOCK rule
    fires), in time order."""
    if part not in ("valid", "test"):
        raise RiskdeskError("part must be 'valid' or 'test'")
    model = get_model(store, model_id)
    table = store.scalar("SELECT table_name FROM datasets WHERE id = ?", [model["dataset_id"]])
    if table is None:
        raise RiskdeskError(f"the dataset of model {model_id} was deleted")
    frame = store.df(f"""
        SELECT s.transaction_id, t.timestamp, CAST(t.timestamp AS DATE) AS day, t.amount, t.label, s.score
        FROM model_scores s JOIN {quote_ident(table)} t ON CAST(t.transaction_id AS VARCHAR) = s.transaction_id
        WHERE s.model_id = ? AND s.part = ? ORDER BY t.timestamp, s.transaction_id""", [model_id, part])
    frame["rule_block"] = frame["transaction_id"].isin(_blocked(store, model, frame))
    return frame


def _blocked(store: Store, model: dict, frame) -> set:
    from . import rules
    from .models import feature_config
    from .features import build_features
    from .models import model_dataset
    if frame.empty:
        return set()
    fs = build_features(store, model_dataset(store, model)["name"], feature_config(model))
    return rules.blocked_ids(store, fs, frame["day"].min(), frame["day"].max())


def suggest_threshold(frame, review_cost: float) -> dict:
    """The score threshold with the lowest cost (reviews x cost per review + missed fraud
    amount) on the scored rows, with the cost curve it came from."""
    y, s, amount = frame["label"].to_numpy(int), frame["score"].to_numpy(float), frame["amount"].to_numpy(float)
    curve = metrics.cost_curve(y, s, amount, review_cost)
    best = curve.loc[curve["cost"].idxmin()]
    nothing = curve.iloc[-1]
    return {"threshold": float(best["threshold"]), "cost": float(best["cost"]), "reviewed": int(best["reviewed"]),
            "caught": int(best["caught"]), "missed_amount": float(best["missed_amount"]),
            "cost_without_review": float(nothing["cost"]), "curve": curve}


def bands(frame, verify: float, block: float | None):
    """Share of traffic, frauds and fraud amount in PASS / VERIFY / BLOCK under the hybrid
    decision (BLOCK rules first, then the score bands)."""
    import pandas as pd
    decision = metrics.decide(frame["score"], verify, block, frame["rule_block"])
    y = frame["label"].fillna(0).to_numpy(int)
    amount = frame["amount"].to_numpy(float)
    total_amount = amount[y == 1].sum()
    rows = []
    for band in ("PASS", "VERIFY", "BLOCK"):
        mask = decision == band
        rows.append({"band": band, "transactions": int(mask.sum()), "share": float(mask.mean()) if len(mask) else 0.0,
                     "frauds": int(y[mask].sum()), "fraud_share": float(y[mask].sum() / max(y.sum(), 1)),
                     "fraud_amount_share": float(amount[mask & (y == 1)].sum() / total_amount) if total_amount else 0.0,
                     "fraud_rate": float(y[mask].mean()) if mask.any() else 0.0})
    return pd.DataFrame(rows)


def curves(frame) -> dict:
    """ROC, PR, gain and calibration points of one scored frame (for the overlay charts)."""
    y, s = frame["label"].to_numpy(int), frame["score"].to_numpy(float)
    fpr, tpr = metrics.roc_curve(y, s)
    recall, precision, _ = metrics.pr_curve(y, s)
    share, gain, lift = metrics.gain_curve(y, s)
    return {"roc": (fpr, tpr), "pr": (recall, precision), "gain": (share, gain, lift),
            "calibration": metrics.calibration(y, s) if (s.min() >= 0 and s.max() <= 1) else None}


def remove_model(store: Store, model_id: str, actor: str = "app") -> None:
    """Delete a model from the registry (audited) and drop it from the explanation cache."""
    from . import explain, models
    models.delete_model(store, model_id, actor)
    explain.forget(model_id)
