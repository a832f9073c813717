"""The REST API, served beside the UI by one process (serve.py): keys and roles, point-in-time
scoring that stores nothing and equals the case after the same rows are appended, case JSON and
exports, decisions under the key's user, and 4xx (never 5xx) for bad requests."""
import pandas as pd
import pytest
import requests

from conftest import ROOT
from serve import background


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The demo's January–April minus its last 40 rows, a champion, an analyst's and an
    auditor's key, and the server running on it; yields (url, keys, held-back rows, home)."""
    from core import champion, models, people
    from core.ingest import ingest
    from core.store import Store
    tmp = tmp_path_factory.mktemp("api")
    frame = pd.read_csv(ROOT / "sample_data" / "demo_transactions.csv", dtype=str, keep_default_na=False)
    base, held = frame.iloc[:-40], frame.iloc[-40:]
    base.to_csv(tmp / "base.csv", index=False)
    held.to_csv(tmp / "held.csv", index=False)
    store = Store(tmp / "ws")
    ingest(store, tmp / "base.csv", "bank")
    base.iloc[:5000].to_csv(tmp / "other.csv", index=False)
    ingest(store, tmp / "other.csv", "other")
    model = models.train(store, "bank", kinds=["default"])["models"][0]
    champion.promote(store, "bank", model["model_id"], "alice", "first model")
    keys = {}
    for name, role in (("ana", "analyst"), ("aud", "auditor")):
        people.add_user(store, name, role, None)
        keys[role] = people.create_key(store, name)["key"]
    store.close()
    with background(tmp / "ws", log=tmp / "server.log", threads=1) as url:
        yield url + "/api/v1", keys, held, tmp
    assert "Traceback" not in (tmp / "server.log").read_text()


def call(method, url, key=None, **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.request(method, url, headers=headers, timeout=120, **kw)


def as_request(rows: pd.DataFrame) -> list[dict]:
    return [{"transaction_id": r.trans_id, "customer_id": r.user_id, "timestamp": r.trans_time,
             "amount": float(r.amount), "balance_before": float(r.pre_balance), "balance_after": float(r.post_balance),
             "channel": r.channel, "transaction_type": r.trans_type, "device_id": r.device_id or None,
             "counterparty_id": r.counterparty} for r in rows.itertuples()]


def test_health_needs_no_key_and_everything_else_does(served):
    api, keys, _, _ = served
    assert call("GET", f"{api}/health").json() == {"status": "ok"}
    for key in (None, "rdk_not-a-key", keys["analyst"] + "x"):
        r = call("GET", f"{api}/datasets", key)
        assert r.status_code == 401 and "API key" in r.json()["error"]
    r = call("GET", f"{api}/datasets", keys["auditor"])
    assert r.status_code == 200 and {d["name"] for d in r.json()["datasets"]} == {"bank", "other"}
    models = call("GET", f"{api}/datasets/bank/models", keys["auditor"]).json()["models"]
    assert [m["champion"] for m in models] == [True]
    assert "/score" in call("GET", f"{api}/openapi.json").json()["paths"]


def test_scoring_stores_nothing_and_equals_the_case_after_the_rows_are_appended(served):
    api, keys, held, tmp = served
    r = call("POST", f"{api}/score", keys["auditor"], json={"dataset": "bank", "transactions": as_request(held)})
    assert r.status_code == 200, r.text
    scored = {x["transaction_id"]: x for x in r.json()["results"]}
    assert list(scored) == list(held["trans_id"])
    assert all(x["decision"] in ("PASS", "VERIFY", "BLOCK") and len(x["reasons"]) >= 3 for x in scored.values())
    assert call("GET", f"{api}/cases/bank/{held.iloc[0]['trans_id']}", keys["auditor"]).status_code == 404
    with open(tmp / "held.csv", "rb") as f:
        refused = call("POST", f"{api}/datasets/bank/batches", keys["auditor"], files={"file": ("held.csv", f)})
    assert refused.status_code == 403
    with open(tmp / "held.csv", "rb") as f:
        added = call("POST", f"{api}/datasets/bank/batches", keys["analyst"], files={"file": ("held.csv", f)})
    assert added.status_code == 201 and added.json()["rows_loaded"] == 40, added.text
    for tid in list(scored)[::7]:
        case = call("GET", f"{api}/cases/bank/{tid}", keys["auditor"]).json()
        assert case["score"] == pytest.approx(scored[tid]["score"], abs=1e-12)
        assert case["base_value"] + sum(c["shap"] for c in case["contributions"]) == pytest.approx(case["margin"])
    again = call("POST", f"{api}/score", keys["analyst"], json={"dataset": "bank", "transactions": as_request(held[:1])})
    assert again.status_code == 422 and "already in dataset 'bank'" in again.json()["error"]


def test_decisions_carry_the_keys_user_and_auditors_cannot_record_them(served):
    api, keys, _, _ = served
    body = {"dataset": "bank", "transaction_id": "T000000005", "decision": "legitimate", "note": "<b>called</b>"}
    assert call("POST", f"{api}/decisions", keys["auditor"], json=body).status_code == 403
    r = call("POST", f"{api}/decisions", keys["analyst"], json=body)
    assert r.status_code == 201 and r.json()["reviewer"] == "ana"
    case = call("GET", f"{api}/cases/bank/T000000005", keys["auditor"]).json()
    assert [(d["reviewer"], d["decision"]) for d in case["review_decisions"]] == [("ana", "legitimate")]
    pdf = call("GET", f"{api}/cases/bank/T000000005/export?format=pdf", keys["auditor"])
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    html = call("GET", f"{api}/cases/bank/T000000005/export?format=html", keys["auditor"]).text
    assert "<b>called</b>" not in html and "&lt;b&gt;called&lt;/b&gt;" in html


@pytest.mark.parametrize("body, status, words", [
    ("{not json", 422, "JSON"),
    ({"dataset": "bank", "transactions": []}, 422, "transactions"),
    ({"dataset": "bank", "transactions": [{"transaction_id": 7, "timestamp": "2024-05-01 10:00:00", "amount": 1}]},
     422, "transaction_id: Input should be a valid string"),
    ({"dataset": "bank", "transactions": [{"transaction_id": "x", "timestamp": "2024-05-01 10:00:00",
                                           "amount": 1}] * 10_000}, 422, "transactions"),
    ({"dataset": "nope", "transactions": [{"transaction_id": "x", "timestamp": "2024-05-01 10:00:00", "amount": 1}]},
     404, "no dataset 'nope'"),
    ({"dataset": "bank", "transactions": [{"transaction_id": "x", "timestamp": "yesterday", "amount": 1}]},
     422, "is not a date and time"),
    ({"dataset": "bank", "transactions": [{"transaction_id": "x", "timestamp": "2024-05-01 10:00:00+08:00",
                                           "amount": 1}]}, 422, "no time zone"),
    ({"dataset": "bank", "transactions": [{"transaction_id": "x'; DROP TABLE datasets; --",
                                           "customer_id": "<script>alert(1)</script>",
                                           "timestamp": "2024-05-01 10:00:00", "amount": 1, "colour": "red"}]},
     422, "unknown field 'colour'"),
    ({"dataset": "bank", "model_id": "x' OR '1'='1", "transactions": [
        {"transaction_id": "x", "timestamp": "2024-05-01 10:00:00", "amount": 1}]}, 404, "no model"),
])
def test_bad_requests_get_a_4xx_with_a_message_and_change_nothing(served, body, status, words):
    api, keys, _, tmp = served
    before = call("GET", f"{api}/datasets", keys["auditor"]).json()
    kw = {"data": body, "headers": {"Content-Type": "application/json", "Authorization": f"Bearer {keys['analyst']}"}} \
        if isinstance(body, str) else {"json": body}
    r = requests.post(f"{api}/score", timeout=120, **kw) if isinstance(body, str) else \
        call("POST", f"{api}/score", keys["analyst"], **kw)
    assert r.status_code == status and words in r.json()["error"], r.text
    assert call("GET", f"{api}/datasets", keys["auditor"]).json() == before


def test_sql_and_html_in_text_fields_are_only_data(served):
    api, keys, _, _ = served
    nasty = "x'); DELETE FROM decisions; --<img src=x onerror=alert(1)>"
    r = call("POST", f"{api}/score", keys["analyst"], json={"dataset": "bank", "transactions": [
        {"transaction_id": nasty, "customer_id": nasty, "channel": nasty, "device_id": nasty, "counterparty_id": nasty,
         "transaction_type": nasty, "timestamp": "2024-05-01 10:00:00", "amount": 12.5}]})
    assert r.status_code == 200 and r.json()["results"][0]["transaction_id"] == nasty
    model_id = call("GET", f"{api}/datasets/bank/models", keys["auditor"]).json()["models"][0]["model_id"]
    only_in_bank = served[2].iloc[0]["trans_id"]          # appended to bank by the scoring test
    for path in (f"cases/bank/{requests.utils.quote(nasty, safe='')}",
                 f"cases/other/{only_in_bank}?model_id={model_id}",      # a case id from another dataset
                 f"cases/{requests.utils.quote(nasty, safe='')}/T000000005"):
        r = call("GET", f"{api}/{path}", keys["auditor"])
        assert r.status_code == 404 and r.json()["error"].startswith("no "), (path, r.text)


def test_the_data_pages_own_address_opens_it_at_the_root(served):
    api, _, _, _ = served
    site = api.removesuffix("/api/v1")
    r = requests.get(f"{site}/data?lang=zh", allow_redirects=False, timeout=60)
    assert r.status_code == 307 and r.headers["location"] == "/?lang=zh"
    assert requests.get(f"{site}/compare", allow_redirects=False, timeout=60).status_code == 200
