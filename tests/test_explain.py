"""Explanations, review decisions and case exports."""
import io
import re
import json
import threading
import zipfile

import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader

from conftest import ROOT
from core import cases, explain, labels, models, report
from core.ingest import ingest
from core.store import Store


def test_contributions_add_up_to_the_model_output(trained):
    store, result = trained
    for m in result["models"]:
        if m["kind"] not in explain.EXPLAINABLE:
            continue
        # the highest and the lowest scores: saturated probabilities would hide a wrong link
        ids = [r[0] for r in store.rows(
            "(SELECT transaction_id FROM model_scores WHERE model_id = ? AND part = 'test' ORDER BY score DESC LIMIT 2) "
            "UNION ALL (SELECT transaction_id FROM model_scores WHERE model_id = ? AND part = 'test' "
            "ORDER BY abs(score - 0.5) LIMIT 1) UNION ALL (SELECT transaction_id FROM model_scores "
            "WHERE model_id = ? AND part = 'test' ORDER BY score LIMIT 1)", [m["model_id"]] * 3)]
        scores = dict(store.rows("SELECT transaction_id, score FROM model_scores WHERE model_id = ? AND part = 'test'",
                                 [m["model_id"]]))
        for txid in ids:
            e = explain.explain(store, m["model_id"], txid, with_history=False)
            total = e["base_value"] + sum(c["shap"] for c in e["contributions"])
            assert total == pytest.approx(e["margin"], abs=1e-6), m["kind"]
            assert e["score"] == pytest.approx(scores[txid], abs=1e-9), m["kind"]
            assert 3 <= len(e["reasons"]) <= 5
        lm = explain.load(store, m["model_id"])
        X, _ = explain.feature_rows(store, lm, ids)
        values, base, margin = explain.contributions(lm, X)
        assert np.allclose(values.sum(axis=1) + base, margin, atol=1e-6)


def test_reasons_from_a_hand_built_model():
    # a logistic model built by hand: two numeric features and one categorical
    spec = {"numeric": ["amount_to_mean_30d", "new_device"], "median": {"amount_to_mean_30d": 1.0, "new_device": 0.0},
            "low": {"amount_to_mean_30d": 0.0, "new_device": 0.0}, "high": {"amount_to_mean_30d": 100.0, "new_device": 1.0},
            "mean": {"amount_to_mean_30d": 1.0, "new_device": 0.1}, "scale": {"amount_to_mean_30d": 2.0, "new_device": 0.3},
            "categories": {"channel": ["ATM", "mobile_banking"]}, "coef": [0.5, 1.2, -0.4, 0.9], "intercept": -4.0}
    X = pd.DataFrame({"amount_to_mean_30d": [8.3], "new_device": [1.0], "channel": ["mobile_banking"]})
    values, base, margin = explain._linear_contributions(spec, X)
    assert values[0].tolist() == pytest.approx([0.5 * (8.3 - 1) / 2, 1.2 * (1 - 0.1) / 0.3, 0.9])
    assert base == -4.0 and margin[0] == pytest.approx(-4.0 + values[0].sum())
    catalogue = {"channel": {"en": "Channel", "zh": "渠道"}}
    contribs = sorted(({"feature": f, "value": v, "shap": s} for f, v, s in
                       zip(X.columns, [8.3, 1.0, "mobile_banking"], values[0])), key=lambda c: -abs(c["shap"]))
    assert explain.reasons(contribs, True, catalogue, "en") == [
        "▲ first use of this device by the customer",
        "▲ amount is 8.3× this customer's 30-day average",
        "▲ Channel: mobile_banking"]
    assert explain.reasons(contribs, True, catalogue, "zh")[1] == "▲ 金额是该客户近 30 天平均金额的 8.3 倍"
    # below the base value the reasons explain what lowers the risk (at least three are given)
    low = [{"feature": "new_device", "value": 0, "shap": -0.3}, {"feature": "hour", "value": 14, "shap": 0.1}]
    assert explain.reasons(low, False, {"hour": {"en": "Hour of day", "zh": "交易小时"}}, "en") == [
        "▼ new_device: 0", "▲ Hour of day: 14"]


def test_case_exports_pdf_html_json(trained, tmp_path):
    store, result = trained
    m = next(x for x in result["models"] if x["kind"] == "default")
    txid = store.scalar("SELECT transaction_id FROM model_scores WHERE model_id = ? AND part = 'test' ORDER BY score DESC "
                        "LIMIT 1", [m["model_id"]])
    ds_id = m["dataset_id"]
    cases.record(store, ds_id, txid, "escalate", "alice", "<script>alert('x')</script> =1+1", m["model_id"], 0.9)
    record = report.case_record(store, m["model_id"], txid)
    assert {"transaction_id", "model_id", "score", "margin", "base_value", "contributions", "reasons",
            "rules_fired"} <= set(record)
    assert record["base_value"] + sum(c["shap"] for c in record["contributions"]) == pytest.approx(record["margin"])
    assert report.content_hash(json.loads(report.to_json(record))) == record["content_sha256"]
    pdf = report.to_pdf(record)
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert txid in text and record["content_sha256"] in text.replace("\n", "") and m["model_id"] in text
    html = report.to_html(record).decode()
    assert "<script>alert(" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert not re.search(r"<script[^>]*\bsrc=", html) and record["content_sha256"] in html   # works offline
    zh = report.to_pdf(report.case_record(store, m["model_id"], txid, lang="zh"))
    # pypdf reads the embedded CJK font's two-byte codes with a NUL before each character
    zh_text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(zh)).pages).replace("\x00", "")
    assert "案件报告" in zh_text and txid in zh_text
    # the batch: one file per case and format, a shared plotly.js, a neutralised summary
    data = report.batch_zip(store, m["model_id"], [txid], ("pdf", "html", "json"))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        assert {f"case_{txid}.pdf", f"case_{txid}.html", f"case_{txid}.json", "summary.csv", "plotly.min.js"} <= names
        assert 'src="plotly.min.js"' in zf.read(f"case_{txid}.html").decode()


def test_summary_csv_neutralises_formulas(trained):
    store, result = trained
    m = next(x for x in result["models"] if x["kind"] == "tuned")
    txid = store.scalar("SELECT transaction_id FROM model_scores WHERE model_id = ? AND part = 'test' LIMIT 1",
                        [m["model_id"]])
    cases.record(store, m["dataset_id"], txid, "legitimate", "=cmd|' /C calc'!A0", "@SUM(A1:A9)", m["model_id"])
    data = report.batch_zip(store, m["model_id"], [txid], ("json",))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        summary = pd.read_csv(io.BytesIO(zf.read("summary.csv")), encoding="utf-8-sig")
    assert summary.loc[0, "reviewer"] == "'=cmd|' /C calc'!A0" and summary.loc[0, "note"] == "'@SUM(A1:A9)"


def test_decisions_survive_a_restart_and_concurrent_writers_lose_none(tmp_path, small_demo_csv):
    home = tmp_path / "ws"
    store = Store(home)
    ingest(store, small_demo_csv, "d")
    table = store.scalar("SELECT table_name FROM datasets")
    ids = [r[0] for r in store.rows(f"SELECT transaction_id FROM {table} ORDER BY transaction_id LIMIT 1000")]
    errors = []

    def worker(k):
        try:
            for txid in ids[k::8]:
                cases.record(store, 1, txid, cases.DECISIONS[k % 3], f"reviewer-{k}", f"note {k}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    store.close()
    store = Store(home)            # a restart: a new process would open the file the same way
    assert store.scalar("SELECT count(*) FROM decisions") == 1000
    assert store.scalar("SELECT count(DISTINCT decision_id) FROM decisions") == 1000
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'review_decision'") == 1000
    assert cases.history(store, 1, ids[0])[0]["reviewer"] == "reviewer-0"
    with pytest.raises(Exception, match="reviewer"):
        cases.record(store, 1, ids[0], "legitimate", "  ")
    with pytest.raises(Exception, match="no transaction"):
        cases.record(store, 1, "NOPE", "legitimate", "bob")
    store.close()


def test_decisions_are_append_only_in_code():
    for path in (ROOT / "core").glob("*.py"):
        text = path.read_text().upper()
        assert "UPDATE DECISIONS" not in text and "DELETE FROM DECISIONS" not in text, path.name
        assert "UPDATE AUDIT_LOG" not in text and "DELETE FROM AUDIT_LOG" not in text, path.name


def test_confirmed_decisions_become_training_labels(tmp_path, small_demo_csv):
    store = Store(tmp_path / "ws")
    ingest(store, small_demo_csv, "d")
    from core.features import build_features
    fs = build_features(store, "d")
    fraud, normal = (store.scalar(f"SELECT transaction_id FROM {fs['table']} WHERE label = {v} ORDER BY 1 LIMIT 1")
                     for v in (1, 0))
    cases.record(store, 1, fraud, "legitimate", "alice")
    cases.record(store, 1, normal, "confirmed_fraud", "alice")
    cases.record(store, 1, normal, "escalate", "bob")          # not conclusive: the confirmation stands
    assert labels.confirmed_label_count(store, 1) == 2
    frame = models.load_frame(store, fs, None)
    trained_on = dict(zip(frame.ids, frame.y))
    assert trained_on[fraud] == 0 and trained_on[normal] == 1
    store.close()


def test_queue_filters_are_consistent(trained):
    store, result = trained
    m = next(x for x in result["models"] if x["kind"] == "default")
    test = m["split"]["test"]
    everything = cases.queue(store, m["model_id"], test[0], test[1], limit=100000)
    rows = everything["rows"]
    assert everything["total"] == m["metrics"]["test"]["rows"] == len(rows)
    assert list(rows["score"]) == sorted(rows["score"], reverse=True)
    by_band = sum(cases.queue(store, m["model_id"], test[0], test[1], bands=[b], limit=1)["total"]
                  for b in ("PASS", "VERIFY", "BLOCK"))
    assert by_band == everything["total"]
    fp = cases.queue(store, m["model_id"], test[0], test[1], outcomes=["FP"], limit=100000)["rows"]
    assert (fp["label"] == 0).all() and (fp["score"] >= m["threshold"]).all()
    r7 = cases.queue(store, m["model_id"], test[0], test[1], rule="R007", limit=100000)["rows"]
    assert len(r7) and all("R007" in r for r in r7["rules_fired"])
    big = cases.queue(store, m["model_id"], test[0], test[1], min_amount=1000, limit=100000)["rows"]
    assert (big["amount"] >= 1000).all()


def test_cli_explain_json_contract(tmp_path, small_demo_csv):
    import os
    import subprocess
    import sys
    env = {**os.environ, "RISKDESK_HOME": str(tmp_path / "ws")}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
    assert run("ingest", str(small_demo_csv), "--dataset", "d").returncode == 0
    trained = json.loads(run("train", "--dataset", "d", "--models", "default", "--json").stdout)
    model_id = trained["models"][0]["model_id"]
    txid = pd.read_csv(small_demo_csv)["trans_id"].iloc[-1]
    out = tmp_path / "case.json"
    proc = run("explain", "--model", model_id, "--transaction", txid, "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    case = json.loads(out.read_text())
    assert case["transaction_id"] == txid and case["model_id"] == model_id
    assert case["base_value"] + sum(c["shap"] for c in case["contributions"]) == pytest.approx(case["margin"])
    assert {"feature", "value", "shap"} == set(case["contributions"][0])
    assert 0 <= case["score"] <= 1 and isinstance(case["reasons"], list) and isinstance(case["rules_fired"], list)
    assert json.loads(proc.stdout)["content_sha256"] == case["content_sha256"]
    proc = run("explain", "--model", model_id, "--transaction", txid, "--format", "pdf", "--out", str(tmp_path / "c.pdf"))
    assert proc.returncode == 0 and (tmp_path / "c.pdf").read_bytes().startswith(b"%PDF")
    for bad in (["--transaction", "NOPE", "--out", str(tmp_path / "x.json")],
                ["--transaction", txid, "--out", str(tmp_path / "x.txt")]):
        proc = run("explain", "--model", model_id, *bad, "--json")
        assert proc.returncode != 0 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1


def test_training_records_where_its_labels_came_from(tmp_path, small_demo_csv):
    store = Store(tmp_path / "ws")
    ingest(store, small_demo_csv, "d")
    from core.features import build_features
    fs = build_features(store, "d")
    early = [r[0] for r in store.rows(f"SELECT transaction_id FROM {fs['table']} WHERE label IS NOT NULL "
                                      f"ORDER BY timestamp LIMIT 3")]
    for txid in early:
        cases.record(store, 1, txid, "confirmed_fraud", "alice")
    result = models.train(store, "d", kinds=["default"], trials=1)
    model = result["models"][0]
    used = model["params"]["labels"]
    assert used["from_decisions"] == 3 and used["from_file"] == used["training_rows"] - 3
    assert labels.waiting_count(store, 1, model["model_id"]) == 0
    cases.record(store, 1, early[0], "legitimate", "bob")
    assert labels.waiting_count(store, 1, model["model_id"]) == 1
    store.close()


def test_threads_scoring_at_once_get_the_answers_of_one_at_a_time(trained):
    # LightGBM's pred_contrib is not safe on one Booster shared by threads: each thread
    # predicts on its own copy, and concurrent answers equal sequential ones
    store, result = trained
    model = next(m for m in result["models"] if m["kind"] == "tuned")
    lm = explain.load(store, model["model_id"])
    X = np.random.default_rng(7).normal(size=(64, len(lm.names)))
    expected = [explain.contributions(lm, X[i:i + 1]) for i in range(len(X))]
    answers, copies = [None] * len(X), set()

    def work(part):
        copies.add(id(lm.booster()))
        for i in part:
            for _ in range(5):
                answers[i] = explain.contributions(lm, X[i:i + 1])

    threads = [threading.Thread(target=work, args=(range(k, len(X), 8),)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(copies) == 8
    for (values, base, margin), (v, b, m) in zip(expected, answers):
        assert np.array_equal(values, v) and base == b and np.array_equal(margin, m)
