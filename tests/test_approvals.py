"""Maker-checker: rule changes and champion changes wait for a second person whose role allows
them; the maker cannot approve, an auditor cannot approve, a stale change is refused, and every
step is recorded."""
import pytest

from core import approvals, champion, models, people, rules
from core.errors import RiskdeskError
from core.ingest import ingest
from core.store import Store


@pytest.fixture
def team(store):
    for name, role in [("ana", "analyst"), ("bob", "analyst"), ("audrey", "auditor"), ("root", "admin"),
                       ("rita", "admin")]:
        people.add_user(store, name, role, None)
    rules.ensure_starter_rules(store)
    return store


def test_a_rule_change_takes_effect_only_when_a_second_person_approves_it(team):
    store = team
    before = rules.current_rules(store)
    asked = approvals.request_rule_change(store, "ana", "big night transfer", "amount > 5000 and hour < 6", "BLOCK", 80)
    assert asked["status"] == "pending" and rules.current_rules(store) == before        # nothing yet
    with pytest.raises(people.NotAllowed, match="second person"):
        approvals.approve(store, asked["id"], "ana")
    with pytest.raises(people.NotAllowed, match="auditor"):
        approvals.approve(store, asked["id"], "audrey")
    done = approvals.approve(store, asked["id"], "bob", "checked the backtest")
    assert done["status"] == "approved" and done["reviewer"] == "bob"
    new = next(r for r in rules.current_rules(store) if r["rule_id"] == done["result"]["rule_id"])
    assert (new["expression"], new["author"], new["approved_by"]) == ("amount > 5000 and hour < 6", "ana", "bob")
    with pytest.raises(RiskdeskError, match="already approved by bob"):
        approvals.reject(store, asked["id"], "root")
    log = store.rows("SELECT actor, action FROM audit_log WHERE action IN "
                     "('request_change', 'save_rule', 'approve_change') ORDER BY id")
    assert log == [("ana", "request_change"), ("ana", "save_rule"), ("bob", "approve_change")]


def test_a_change_to_a_rule_that_changed_since_is_refused_and_rejections_apply_nothing(team):
    store = team
    rule = rules.current_rules(store)[0]
    first = approvals.request_rule_change(store, "ana", rule["name"], rule["expression"], rule["action"], 10,
                                          rule_id=rule["rule_id"])
    second = approvals.request_rule_change(store, "bob", rule["name"], rule["expression"], rule["action"], 20,
                                           rule_id=rule["rule_id"])
    approvals.approve(store, first["id"], "bob")
    with pytest.raises(RiskdeskError, match="has changed since this request"):
        approvals.approve(store, second["id"], "ana")
    assert approvals.reject(store, second["id"], "ana", "stale")["status"] == "rejected"
    withdrawn = approvals.request_rule_change(store, "ana", rule["name"], rule["expression"], rule["action"], 30,
                                              rule_id=rule["rule_id"])
    assert approvals.reject(store, withdrawn["id"], "ana")["status"] == "withdrawn"
    assert rules.current_version(store, rule["rule_id"]) == 2 and rules.current_rules(store)[0]["score"] == 10
    assert [r["status"] for r in approvals.list_requests(store)] == ["withdrawn", "rejected", "approved"]
    assert approvals.list_requests(store, status="pending") == []


def test_requests_are_checked_when_made(team):
    store = team
    with pytest.raises(people.NotAllowed):
        approvals.request_rule_change(store, "audrey", "x", "amount > 1", "BLOCK", 10)
    with pytest.raises(RiskdeskError, match="syntax|unknown|expected"):
        approvals.request_rule_change(store, "ana", "x", "amount >", "BLOCK", 10)
    with pytest.raises(RiskdeskError, match="no rule"):
        approvals.request_rule_change(store, "ana", "x", "amount > 1", "BLOCK", 10, rule_id="R999")
    with pytest.raises(people.NotSignedIn):
        approvals.request_rule_change(store, "nobody", "x", "amount > 1", "BLOCK", 10)
    assert approvals.list_requests(store) == []


def test_a_promotion_and_a_rollback_need_a_second_administrator(tmp_path, small_demo_csv):
    store = Store(tmp_path / "ws")
    for name, role in [("ana", "analyst"), ("root", "admin"), ("rita", "admin")]:
        people.add_user(store, name, role, None)
    ingest(store, small_demo_csv, "demo")
    ids = [m["model_id"] for m in models.train(store, "demo", kinds=["default", "logistic"], trials=1)["models"]]
    with pytest.raises(people.NotAllowed):
        approvals.request_promotion(store, "ana", "demo", ids[0], "analysts cannot promote")
    asked = approvals.request_promotion(store, "root", "demo", ids[0], "best AP", capacity_k=20)
    assert champion.champion(store, "demo") is None
    with pytest.raises(people.NotAllowed):
        approvals.approve(store, asked["id"], "ana")
    approvals.approve(store, asked["id"], "rita")
    row = champion.history(store, "demo")[0]
    assert (row["model_id"], row["person"], row["approved_by"], row["capacity_k"]) == (ids[0], "root", "rita", 20)
    approvals.approve(store, approvals.request_promotion(store, "rita", "demo", ids[1], "simpler")["id"], "root")
    back = approvals.request_rollback(store, "root", "demo", "alert volume doubled")
    assert champion.champion(store, "demo")["model_id"] == ids[1]
    approvals.approve(store, back["id"], "rita")
    assert champion.champion(store, "demo")["model_id"] == ids[0]
    assert champion.history(store, "demo")[0]["action"] == "rollback"
    store.close()
