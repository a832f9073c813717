"""Training runs: each chosen kind on one split, evaluated on the test period and registered
with its validation and test scores."""
from __future__ import annotations

import json
import math
import time
import uuid
from datetime import date, datetime
from typing import Callable

import numpy as np

from .. import config, metrics
from .. import rules as rules_mod
from ..datasets import get_dataset
from ..errors import RiskdeskError
from ..features import FeatureConfig, build_features, feature_names
from ..store import Store
from .frames import (Frame, categorical_names, encode_categories, fit_categories, frame_bytes, frame_filters,
                     load_frame, sampling_plan, subset_frame)
from .learners import (SMOTE_MAX_RATIO, TUNE_EARLY_STOP, TUNE_MAX_ROUNDS, Binned, fit_logistic, lgb_params,
                       predict_logistic, train_lgb)
from .registry import artifact_path, artifact_sha, get_model
from .splits import Split, check_split, make_split

KINDS = ("rules", "default", "tuned", "logistic", "forest")
DEFAULT_KINDS = ("rules", "default", "tuned")
IMBALANCE = ("none", "class_weight", "smote", "search")
XGBOOST_DEFAULTS = {"max_depth": 6, "learning_rate": 0.3, "num_boost_round": 100, "lambda_l2": 1.0,
                    "min_sum_hessian_in_leaf": 1.0}
Progress = Callable[[float, str], None]


def _thresholds(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """VERIFY at the best-F1 score on validation, BLOCK where validation precision reaches 90%."""
    verify = metrics.best_f1_threshold(y, s)
    block = max(verify, metrics.precision_threshold(y, s, 0.9, fallback=float(np.quantile(s, 0.999))))
    return verify, block


def _labelled_rows(store: Store, fs: dict, split: Split, part: str) -> int:
    period = getattr(split, part)
    if period is None:
        return 0
    source, join_params, params, _ = frame_filters(fs, None if split.method == "random" else period, split, part, True)
    return int(store.scalar(f"SELECT count(*) FROM {source}", join_params + params))


def _sampling(store: Store, fs: dict, split: Split, seed: int) -> dict | None:
    """The training sample when the training period is larger than RISKDESK_TRAIN_ROWS or than
    what the memory cap leaves beside the validation and test periods, which always use every
    row (raises before loading anything when even those do not fit)."""
    evaluated = _labelled_rows(store, fs, split, "valid") + _labelled_rows(store, fs, split, "test")
    budget = config.memory_limit() - frame_bytes(fs, evaluated)
    if budget < frame_bytes(fs, 10_000):
        raise RiskdeskError(f"the validation and test periods ({evaluated:,} labelled rows) need about "
                            f"{frame_bytes(fs, evaluated) / 2 ** 30:.1f} GiB as model input, more than the memory cap "
                            f"({config.memory_limit() / 2 ** 30:.1f} GiB, RISKDESK_MEMORY): raise it or choose "
                            "shorter periods")
    limit = min(config.train_row_limit(), budget // frame_bytes(fs, 1))
    period = None if split.method == "random" else split.train
    return sampling_plan(store, fs, period, limit, seed, split, "train")


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
    check_split(store, fs, split)
    categorical = categorical_names(fs)

    report(0.05, "loading periods")
    sample = _sampling(store, fs, split, seed)
    if split.method == "random":
        parts = {p: load_frame(store, fs, None, split, p, sample=sample if p == "train" else None)
                 for p in ("train", "valid", "test")}
        fit_part, val_part = parts["train"], parts["valid"]
    else:
        train_frame = load_frame(store, fs, split.train, sample=sample)
        test_frame = load_frame(store, fs, split.test)
        if split.valid:
            fit_part, val_part = train_frame, load_frame(store, fs, split.valid)
        else:  # tune on the last fifth of the training period, refit on all of it afterwards
            cut = np.quantile(np.array(train_frame.day, dtype="datetime64[D]").astype(int), 0.8)
            days = np.array(train_frame.day, dtype="datetime64[D]").astype(int)
            fit_part, val_part = subset_frame(train_frame, days <= cut), subset_frame(train_frame, days > cut)
        parts = {"train": train_frame, "valid": val_part, "test": test_frame}
    categories = fit_categories(parts["train"].X, categorical)
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
        results.append(_register(store, entry, fs, ds, split, run_id, actor, capacity_k, parts, sample))
    report(1.0, "done")
    return {"run_id": run_id, "split": split.public(), "models": results, "skipped": skipped}


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
        params = lgb_params({"learning_rate": 0.3, "max_depth": 6, "num_leaves": 64, "lambda_l2": 1.0,
                              "min_sum_hessian_in_leaf": 1.0, "min_data_in_leaf": 1, "max_bin": 255}, seed,
                             len(parts["train"].y))
        booster, _ = train_lgb(params, 100, parts["train"], categorical, seed=seed)
        return {"kind": kind, "booster": booster,
                "params": {**{k: v for k, v in params.items() if k != "num_threads"}, "num_boost_round": 100,
                           "note": "XGBoost defaults; LightGBM grows leaf-wise, with num_leaves = 2^max_depth"}}
    if kind == "forest":
        params = lgb_params({"boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.632,
                              "feature_fraction": 0.6, "num_leaves": 63, "min_data_in_leaf": 20}, seed,
                             len(parts["train"].y))
        booster, _ = train_lgb(params, 100, parts["train"], categorical, seed=seed)
        return {"kind": kind, "booster": booster,
                "params": {**{k: v for k, v in params.items() if k != "num_threads"}, "num_boost_round": 100}}
    if kind == "logistic":
        spec = fit_logistic(parts["train"], fs, balanced=imbalance != "none", seed=seed)
        return {"kind": kind, "logistic": spec, "params": {"C": 1.0, "class_weight": "balanced" if imbalance != "none"
                                                            else None, "standardised": True}}
    return _tune(fit_part, val_part, parts, split, categorical, trials, imbalance, time_budget, seed, step, pos, neg)


def _tune(fit_part, val_part, parts, split, categorical, trials, imbalance, time_budget, seed, step, pos, neg):
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fit_pos = max(fit_part.y.sum(), 1)
    fit_neg = fit_part.weight[fit_part.y == 0].sum() if fit_part.weight is not None else len(fit_part.y) - fit_pos
    ratio_max = max(1.0, fit_neg / fit_pos)
    history = []
    best = {"ap": -1.0}
    binned = Binned(fit_part, categorical, val_part, seed)

    def objective(trial):
        strategy = (trial.suggest_categorical("imbalance", ["none", "class_weight", "smote"])
                    if imbalance == "search" else imbalance)
        params = lgb_params({
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
        booster, synthetic = train_lgb(params, TUNE_MAX_ROUNDS, fit_part, categorical, val_part, TUNE_EARLY_STOP, strategy, smote_ratio,
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
        booster, synthetic = train_lgb(best["params"], rounds, parts["train"], categorical, None, None,
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
        import pandas as pd
        days = np.array(frame.day, dtype="datetime64[D]")
        ev = rules_mod.evaluate(store, fs, entry["rules"], str(days.min()), str(days.max()))
        score = pd.Series(ev["rule_score"].to_numpy(dtype=float), index=ev["transaction_id"].astype(str).to_numpy())
        return score.reindex(frame.ids.astype(str), fill_value=0.0).to_numpy()
    if kind == "logistic":
        return predict_logistic(entry["logistic"], frame.X)
    return entry["booster"].predict(frame.X, num_iteration=entry.get("num_iteration"))


def _register(store: Store, entry: dict, fs: dict, ds: dict, split: Split, run_id: str, actor: str,
              capacity_k: int, parts: dict, sample: dict | None) -> dict:
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
        path = artifact_path(store, model_id, ".json")
        path.write_text(json.dumps({"kind": "rules", "rules": entry["rules"]}, ensure_ascii=False, indent=1))
    elif kind == "logistic":
        path = artifact_path(store, model_id, ".json")
        path.write_text(json.dumps({"kind": "logistic", "spec": entry["logistic"]}))
    else:
        path = artifact_path(store, model_id, ".txt")
        entry["booster"].save_model(str(path), num_iteration=entry.get("num_iteration"))
    train_part = parts["train"]
    from_decisions = int(train_part.reviewed.sum()) if train_part.reviewed is not None else 0
    params = {**entry["params"], "feature_config": fs["config"], "categories": _categories_of(entry, parts),
              "history": entry.get("history"),
              "labels": {"training_rows": int(len(train_part.y)), "from_decisions": from_decisions,
                         "from_file": int(len(train_part.y)) - from_decisions},
              "sampling": {**sample, "kept_rows": int(len(train_part.y))} if sample else None}
    row = [model_id, kind, ds["id"], ds["name"], ds["source_sha256"], fs["version"], json.dumps(split.public()),
           json.dumps(params, default=_json_default), json.dumps(result_metrics, default=_json_default),
           float(verify), float(block) if np.isfinite(block) else None, json.dumps(feature_names(fs)), path.name,
           artifact_sha(path), float(entry["train_seconds"]), run_id, datetime.now()]
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
