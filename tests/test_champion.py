"""The champion: one model per dataset, promoted by a named person with a reason, rolled back
to the previous one; every step in the (append-only) history and the audit log."""
import pytest

from core import champion, models
from core.errors import RiskdeskError
from core.ingest import ingest
from core.store import Store


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_demo_csv):
    """Its own workspace (champion history is append-only: it must not leak into other tests)."""
    store = Store(tmp_path_factory.mktemp("champion") / "ws")
    ingest(store, small_demo_csv, "demo")
    result = models.train(store, "demo", kinds=["default", "tuned", "logistic"], trials=1)
    yield store, result
    store.close()


def test_promotion_and_rollback_keep_a_history_and_an_audit_trail(trained):
    store, result = trained
    by_kind = {m["kind"]: m["model_id"] for m in result["models"]}
    assert champion.champion(store, "demo") is None
    champion.promote(store, "demo", by_kind["default"], "alice", "best AP at launch")
    champion.promote(store, "demo", by_kind["tuned"], "bob", "tuned beats default on April")
    assert champion.champion(store, "demo")["model_id"] == by_kind["tuned"]
    champion.rollback(store, "demo", "carol", "alert volume doubled")
    assert champion.champion(store, "demo")["model_id"] == by_kind["default"]
    past = champion.history(store, "demo")
    assert [(r["action"], r["model_id"], r["person"]) for r in past] == [
        ("rollback", by_kind["default"], "carol"), ("promote", by_kind["tuned"], "bob"),
        ("promote", by_kind["default"], "alice")]
    audit = store.rows("SELECT action, actor, model_id FROM audit_log WHERE action LIKE 'champion_%' ORDER BY id")
    assert audit[-3:] == [("champion_promote", "alice", by_kind["default"]), ("champion_promote", "bob", by_kind["tuned"]),
                          ("champion_rollback", "carol", by_kind["default"])]


@pytest.mark.parametrize("person, reason, words", [
    ("", "why", "name of the person"), ("alice", "  ", "needs a reason")])
def test_a_promotion_needs_a_person_and_a_reason(trained, person, reason, words):
    store, result = trained
    with pytest.raises(RiskdeskError, match=words):
        champion.promote(store, "demo", result["models"][0]["model_id"], person, reason)


def test_a_model_of_another_dataset_cannot_be_champion(trained, small_demo_csv):
    store, result = trained
    ingest(store, small_demo_csv, "other", replace=True)
    with pytest.raises(RiskdeskError, match="trained on another dataset"):
        champion.promote(store, "other", result["models"][0]["model_id"], "alice", "why")
    with pytest.raises(RiskdeskError, match="no champion to roll back"):
        champion.rollback(store, "other", "alice", "why")


def test_champion_history_is_append_only_in_code():
    from conftest import ROOT
    text = (ROOT / "core" / "champion.py").read_text().upper()
    assert "UPDATE CHAMPIONS" not in text and "DELETE FROM CHAMPIONS" not in text


@pytest.fixture(scope="module")
def medium(tmp_path_factory):
    """20,000 generated transactions (enough frauds in the test period to compare models)."""
    from core.sample import write_sample
    base = tmp_path_factory.mktemp("challenger")
    write_sample(base / "d.csv", rows=20000, seed=11)
    store = Store(base / "ws")
    ingest(store, base / "d.csv", "d")
    result = models.train(store, "d", kinds=["default", "logistic"], trials=1)
    yield store, {m["kind"]: m["model_id"] for m in result["models"]}
    store.close()


def test_a_better_challenger_is_offered_and_a_worse_one_is_not(medium):
    store, ids = medium
    champion.promote(store, "d", ids["logistic"], "alice", "baseline")
    better = champion.compare_with_champion(store, "d", ids["default"], resamples=60)
    assert better["enough"] and better["frauds"] >= champion.MIN_FRAUDS
    assert better["average_precision_difference"] > 0 and better["offer"], better
    lo, hi = better["average_precision_difference_ci"]
    assert lo <= better["average_precision_difference"] <= hi
    champion.promote(store, "d", ids["default"], "alice", "better on the test period")
    worse = champion.compare_with_champion(store, "d", ids["logistic"], resamples=60)
    assert not worse["offer"] and "worse" in worse["reason"]


def test_thin_evidence_is_said_plainly(trained):
    store, result = trained
    by_kind = {m["kind"]: m["model_id"] for m in result["models"]}
    if champion.champion(store, "demo") is None:
        champion.promote(store, "demo", by_kind["default"], "alice", "start")
    challenger = by_kind["logistic"] if champion.champion(store, "demo")["model_id"] != by_kind["logistic"] \
        else by_kind["tuned"]
    report = champion.compare_with_champion(store, "demo", challenger, resamples=20)
    assert report["frauds"] < champion.MIN_FRAUDS and not report["enough"] and not report["offer"]
    assert "too few" in report["reason"]


def test_champion_bands_come_from_capacity_and_precision(medium):
    store, ids = medium
    target = ids["logistic"] if champion.champion(store, "d")["model_id"] != ids["logistic"] else ids["default"]
    champion.promote(store, "d", target, "bob", "bands", capacity_k=20, precision_target=0.8)
    bands = champion.bands(store, "d")
    assert bands["capacity_k"] == 20 and bands["precision_target"] == 0.8
    assert bands["verify_threshold"] < bands["block_threshold"]      # a VERIFY band that is not empty
    from core.datasets import get_dataset
    valid = store.df(f"SELECT s.score, CAST(t.timestamp AS DATE) AS day FROM model_scores s JOIN {get_dataset(store, 'd')['table']} t "
                     "ON s.transaction_id = t.transaction_id WHERE s.model_id = ? AND s.part = 'valid'",
                     [bands["model_id"]])
    per_day = (valid["score"] >= bands["verify_threshold"]).sum() / valid["day"].nunique()
    assert per_day == pytest.approx(20, abs=1)
    with pytest.raises(RiskdeskError, match="precision target"):
        champion.derive_bands(store, ids["default"], 20, 1.5)


def test_retraining_a_challenger_uses_review_decisions_and_compares_on_the_latest_labelled_days(
        tmp_path, small_demo_csv):
    import pandas as pd
    from core import cases
    from core.datasets import get_dataset
    store = Store(tmp_path / "ws")
    frame = pd.read_csv(small_demo_csv, dtype=str, keep_default_na=False).sort_values("trans_time", kind="stable")
    cut = int(len(frame) * 0.8)
    frame.iloc[:cut].to_csv(tmp_path / "a.csv", index=False)
    unlabelled = frame.iloc[cut:].assign(label="")           # a new batch arrives without labels
    unlabelled.to_csv(tmp_path / "b.csv", index=False)
    ingest(store, tmp_path / "a.csv", "d")
    first = models.train(store, "d", kinds=["default"], trials=1)["models"][0]
    champion.promote(store, "d", first["model_id"], "alice", "first model")
    ingest(store, tmp_path / "b.csv", "d", append=True)
    ds = get_dataset(store, "d")
    new = frame.iloc[cut:]
    decided = new[(new["label"] == "1") | (new.index % 20 == 0)]     # reviewers decide alerts and a sample
    for _, row in decided.iterrows():
        cases.record(store, ds["id"], row["trans_id"], "confirmed_fraud" if row["label"] == "1" else "legitimate",
                     "bob")
    out = champion.retrain_challenger(store, "d", "carol", trials=1)
    challenger, verdict = out["challenger"], out["verdict"]
    assert challenger["kind"] == "default" and challenger["model_id"] != first["model_id"]
    assert challenger["split"]["test"][1] == decided["trans_time"].max()[:10]    # the newest labelled day
    assert verdict["champion"] == first["model_id"] and verdict["challenger"] == challenger["model_id"]
    assert verdict["period"] == {"start": challenger["split"]["test"][0], "end": challenger["split"]["test"][1]}
    assert verdict["offer"] is False or verdict["enough"] is True        # never offered on thin evidence
    audit = store.rows("SELECT actor, model_id FROM audit_log WHERE action = 'retrain_challenger'")
    assert audit == [("carol", challenger["model_id"])]
    store.close()
