"""The model registry: entries, their artifacts (checked by SHA-256; nothing is unpickled) and
scoring a dataset with one."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .. import config, metrics
from .. import rules as rules_mod
from ..datasets import get_dataset
from ..errors import NotFound, RiskdeskError
from ..features import FeatureConfig, build_features, feature_names
from ..store import Store
from .frames import encode_categories, load_frame
from .learners import predict_logistic


def artifact_path(store: Store, model_id: str, suffix: str) -> Path:
    return store.home / "models" / f"{model_id}{suffix}"


def artifact_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
    if artifact_sha(path) != model["artifact_sha256"]:
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
    frame = load_frame(store, fs, (str(start), str(end)) if start and end else None, labelled=False)
    if start and not end or end and not start:
        raise RiskdeskError("give both --start and --end, or neither")
    if model["kind"] == "rules":
        ev = rules_mod.evaluate(store, fs, artifact["rules"], start, end)
        out = ev[["transaction_id", "rule_score", "rule_decision"]].rename(
            columns={"rule_score": "score", "rule_decision": "decision"})
        return out
    X = encode_categories(frame.X, model["params"]["categories"])
    s = (predict_logistic(artifact["spec"], X) if model["kind"] == "logistic"
         else artifact.predict(X, num_threads=config.threads()))
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
        from ..export import safe_csv_bytes
        out.write_bytes(safe_csv_bytes(frame))
    else:
        frame.to_parquet(out, index=False)
    return {"out": str(out), "rows": int(len(frame)),
            "decisions": {k: int(v) for k, v in frame["decision"].value_counts().items()}}
