"""AppTest smoke tests of every page in both languages, and the demo-data flow."""
import pytest
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from core import jobs

APP = str(ROOT / "app.py")
PagesManager.uses_pages_directory = False     # as serve.py does: pages run only through app.py's navigation
PAGES = ["pages/data.py", "pages/explore.py", "pages/rules.py", "pages/compare.py", "pages/monitor.py",
         "pages/queue.py", "pages/case.py", "pages/audit.py", "pages/people.py"]


def sign_in_as(at, name="tester", role="admin"):
    """A signed-in session for `name` (the account is created if the workspace lacks it)."""
    from core import people, sessions
    from core.store import open_store
    db = open_store()
    if people.get_user(db, name) is None:
        people.add_user(db, name, role, None)
    at.session_state["user"] = {"name": name, "role": people.get_user(db, name)["role"],
                                "session": sessions.session_id(sessions.start(db, name))}
    return at


def run_app(lang="en", page=None, user="tester", role="admin"):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["lang"] = lang
    if user:
        sign_in_as(at, user, role)
    at.run()
    if page:
        at.switch_page(page).run()
    return at


def finish_jobs(at):
    for job in list(jobs._jobs.values()):
        jobs.wait(job, 120)
    return at.run()


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_empty_workspace(home, lang, page):
    at = run_app(lang, page)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title


def test_demo_data_flow_and_catalogue(home):
    at = run_app("en")
    assert at.button(key="load_demo").label == "Load demo data"
    at.button(key="load_demo").click().run()
    finish_jobs(at)
    assert not at.exception
    assert any("Demo data loaded" in s.value for s in at.success)
    catalogue = at.dataframe[0].value
    assert list(catalogue["name"]) == ["demo"] and int(catalogue["rows"][0]) > 90_000
    # A second click finds the same file and does not load it again.
    at.button(key="load_demo").click().run()
    finish_jobs(at)
    assert any("already loaded" in i.value for i in at.info)
    # Chinese UI on the same session.
    at.session_state["lang"] = "zh"
    at.run()
    assert at.title[0].value == "数据" and not at.exception


@pytest.fixture
def demo_workspace(home, small_demo_csv):
    from core.ingest import ingest
    from core.store import open_store
    ingest(open_store(home), small_demo_csv, "demo")
    return home


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_explore_builds_features_and_renders_every_tab(demo_workspace, lang):
    at = run_app(lang, "pages/explore.py")
    finish_jobs(at)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.tabs) >= 6, ([i.value for i in at.info], [e.value for e in at.error], [m.value for m in at.markdown],
                               [c.value for c in at.caption], [j.status for j in jobs._jobs.values()])
    assert any("Feature set" in c.value or "特征集" in c.value for c in at.caption)
    ranking = at.dataframe[0].value
    assert {"feature", "auc", "ks", "iv", "missing_rate"} <= set(ranking.columns)
    assert len(ranking) > 40
    # Another feature and the log scale.
    box = at.selectbox(key="explore_feature")
    box.select_index(next(i for i, o in enumerate(box.options) if o.startswith("amount_to_mean_30d"))).run()
    assert at.selectbox(key="explore_feature").value == "amount_to_mean_30d"
    at.toggle(key="explore_log").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture
def trained_app(trained, monkeypatch):
    store, result = trained
    monkeypatch.setenv("RISKDESK_HOME", str(store.home))
    return store, result


def test_compare_page_leaderboard_threshold_and_cost(trained_app):
    store, result = trained_app
    at = run_app("en", "pages/compare.py")
    assert not at.exception, [e.value for e in at.exception]
    board = next(df.value for df in at.dataframe if "average_precision" in df.value.columns)
    assert len(board) == len(result["models"])
    assert list(board["average_precision"]) == sorted(board["average_precision"], reverse=True)
    assert [b.label for b in at.get("download_button")][:1] == ["Download the leaderboard (CSV)"]
    # threshold slider drives the confusion matrix figures; the cost panel can set it
    model_id = at.selectbox(key="threshold_model").value
    at.slider(key=f"thr_{model_id}").set_value(0.0).run()
    alerts = next(m for m in at.metric if m.label == "Alerts")
    assert alerts.value.replace(",", "") == str(board.loc[board["model_id"] == model_id, "test_rows"].iloc[0])
    at.button(key="use_suggested").click().run()
    suggested = float(next(m for m in at.metric if m.label == "Suggested threshold").value)
    assert at.slider(key=f"thr_{model_id}").value == pytest.approx(suggested, rel=1e-3)
    bands = next(df.value for df in at.dataframe if "band" in df.value.columns)
    assert list(bands["band"]) == ["PASS", "VERIFY", "BLOCK"] and bands["share"].sum() == pytest.approx(1.0)
    # a random split asks for it explicitly and warns
    at.radio(key="split_method").set_value("random").run()
    assert any("Random split" in w.value for w in at.warning)


def test_compare_page_names_the_split_periods_in_chinese(trained_app):
    at = run_app("zh", "pages/compare.py")
    assert not at.exception, [e.value for e in at.exception]
    counts = next(df.value for df in at.dataframe if "fraud_rate" in df.value.columns)
    assert list(counts["part"]) == ["训练期", "验证期", "测试期"]


def train_from_page(lang, kinds):
    """Train the given model kinds (their labels in `lang`) from the compare page and wait."""
    at = run_app(lang, "pages/compare.py")
    at.multiselect(key=f"train_kinds_{lang}").set_value(kinds).run()
    at.button(key="train_start").click().run()
    finish_jobs(at)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_compare_page_trains_in_the_background(trained_app):
    store, result = trained_app
    at = train_from_page("zh", ["规则集"])
    assert any("已训练 1 个模型" in s.value for s in at.success)
    assert len({m["run_id"] for m in store.dicts("SELECT run_id FROM models")}) == 2


def test_rules_page_parse_error_new_version_and_backtest(trained_app):
    store, _ = trained_app
    at = run_app("en", "pages/rules.py")
    sign_in_as(at, "alice")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    before = next(m for m in at.metric if m.label == "Hits").value
    at.selectbox(key="rules_choice").set_value("R001").run()
    version = store.scalar("SELECT max(version) FROM rules WHERE rule_id = 'R001'")
    expr_key = f"rule_expr_R001_{version}"
    at.text_area(key=expr_key).set_value("amount_zscore_30d > > 3").run()
    assert any("Column 21" in e.value for e in at.error)
    assert any(c.value.endswith("^") for c in at.code)
    assert at.button(key="rule_save").disabled
    at.text_area(key=expr_key).set_value("amount_zscore_30d > 1").run()
    assert not at.error and not at.button(key="rule_save").disabled
    at.button(key="rule_save").click().run()
    assert any("it takes effect when a second person approves it" in s.value for s in at.success)
    assert store.scalar("SELECT max(version) FROM rules WHERE rule_id = 'R001'") == version      # not yet
    request_id = store.scalar("SELECT max(id) FROM change_requests")
    assert at.button(key=f"approval_ok_{request_id}").disabled                  # not by its maker
    checker = run_app("en", "pages/rules.py", user="bob", role="analyst")
    checker.button(key=f"approval_ok_{request_id}").click().run()
    assert not checker.exception, [e.value for e in checker.exception]
    assert any(f"Approved #{request_id}" in s.value for s in checker.success)
    assert store.rows("SELECT version, author, approved_by FROM rules WHERE rule_id = 'R001' ORDER BY version DESC "
                      "LIMIT 1") == [(version + 1, "alice", "bob")]
    after = next(m for m in checker.metric if m.label == "Hits").value
    assert after != before


def test_queue_and_case_pages(trained_app):
    store, result = trained_app
    tuned = next(m for m in result["models"] if m["kind"] == "tuned")
    at = run_app("en", "pages/queue.py")
    finish_jobs(at)                      # scoring every transaction runs in the background once
    assert not at.exception, [e.value for e in at.exception]
    queue = next(df.value for df in at.dataframe if "score" in df.value.columns)
    assert len(queue) == 50 and list(queue["score"]) == sorted(queue["score"], reverse=True)
    assert all(isinstance(t, str) and t != "None" for t in queue["reviewed_at"])   # blank when not reviewed
    assert any(c.value.startswith(f"{tuned['metrics']['test']['rows']:,} transactions") for c in at.caption)
    at.multiselect(key="queue_bands_en").set_value(["BLOCK"]).run()
    blocked = next(df.value for df in at.dataframe if "score" in df.value.columns)
    assert set(blocked["band"]) == {"BLOCK"}
    top = str(blocked["transaction_id"].iloc[0])
    at.button(key="queue_open").click().run()     # opens the transaction view on the chosen id
    assert not at.exception, [e.value for e in at.exception]

    at = run_app("zh", "pages/case.py")
    sign_in_as(at, "王审核")
    at.text_input(key="case_txid").set_value(top).run()
    assert not at.exception, [e.value for e in at.exception]
    assert next(m for m in at.metric if m.label == "决策").value == "拦截"
    assert any(md.value.startswith("- ▲") for md in at.markdown)
    at.radio(key="decision_choice").set_value("confirmed_fraud")
    at.text_area(key="decision_note").set_value("客户确认非本人操作")
    at.button[[b.label for b in at.button].index("记录决定")].click().run()
    assert not at.exception, [e.value for e in at.exception]
    rows = store.dicts("SELECT * FROM decisions WHERE transaction_id = ? AND reviewer = '王审核'", [top])
    assert len(rows) == 1 and rows[0]["decision"] == "confirmed_fraud" and rows[0]["model_id"] == tuned["model_id"]


def test_training_switches_the_sidebar_model_to_the_new_run(trained_app):
    store, result = trained_app
    at = train_from_page("en", ["Default GBDT (XGBoost defaults)"])
    newest = store.scalar("SELECT model_id FROM models WHERE kind = 'default' ORDER BY created_at DESC LIMIT 1")
    assert at.session_state["model_request"] == newest


@pytest.fixture
def ulb_workspace(home, tmp_path):
    """A ULB-like dataset: no transaction id, no customer, offsets for times. (Streamlit's caches
    are keyed by table names, which repeat across the tests' workspaces: start them empty.)"""
    import streamlit as st
    from conventions import ulb_like
    st.cache_data.clear()
    from core.ingest import ingest
    from core.store import open_store
    path = tmp_path / "creditcard.csv"
    ulb_like(path, rows=800)
    ingest(open_store(home), path, "creditcard")
    return home


@pytest.mark.parametrize("lang, words", [
    ("en", ["holds offsets, not dates", "No transaction id column", "Feature families left out"]),
    ("zh", ["是偏移量而非日期", "没有交易流水号列", "因缺少角色而未计算的特征族"]),
])
def test_data_page_health_report_in_both_languages(ulb_workspace, lang, words):
    at = run_app(lang)
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(m.value for m in at.markdown)
    for word in words:
        assert word in text, word
    assert "客户号" in text if lang == "zh" else "Customer id" in text


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_missing_roles_are_said_on_the_rules_and_explore_pages(ulb_workspace, lang):
    at = run_app(lang, "pages/explore.py")
    finish_jobs(at)
    assert not at.exception, [e.value for e in at.exception]
    note = " ".join(i.value for i in at.info)
    assert ("Not available for this dataset" if lang == "en" else "本数据集不可用") in note
    at.switch_page("pages/rules.py").run()
    assert not at.exception, [e.value for e in at.exception]
    listed = at.dataframe[0].value
    assert (listed["name"] == ("Large amount at night" if lang == "en" else "夜间大额交易")).any()
    applies = dict(zip(listed["rule_id"], listed["applicable"]))
    assert applies["R008"] == ("yes" if lang == "en" else "是")
    assert "cust_count_1h" in applies["R004"]
    info = " ".join(i.value for i in at.info)
    assert ("left out of this backtest" if lang == "en" else "未参与本次回测") in info


def test_batches_tab_lists_batches_and_takes_back_the_newest(home, tmp_path, small_demo_csv):
    import pandas as pd
    from core.datasets import get_dataset
    from core.ingest import ingest
    from core.store import open_store
    store = open_store(home)
    frame = pd.read_csv(small_demo_csv, dtype=str, keep_default_na=False)
    frame.iloc[:2000].to_csv(tmp_path / "jan.csv", index=False)
    frame.iloc[2000:].to_csv(tmp_path / "feb.csv", index=False)
    ingest(store, tmp_path / "jan.csv", "d")
    ingest(store, tmp_path / "feb.csv", "d", append=True)
    at = run_app("zh")
    assert not at.exception, [e.value for e in at.exception]
    table = next(d.value for d in at.dataframe if "批次" in d.value.columns)
    assert list(table["批次"]) == [1, 2] and list(table["源文件"]) == ["jan.csv", "feb.csv"]
    key = f"del_batch_{get_dataset(store, 'd')['id']}"
    at.text_input(key=key).set_value("d").run()
    at.button(key=key.replace("del_batch_", "del_batch_btn_")).click().run()
    assert not at.exception and get_dataset(store, "d")["rows"] == 2000


def test_promote_a_champion_from_the_registry_tab(home, small_demo_csv):
    from core import champion, models
    from core.ingest import ingest
    from core.store import open_store
    store = open_store(home)
    ingest(store, small_demo_csv, "d")
    result = models.train(store, "d", kinds=["default", "tuned"], trials=1)
    default = next(m["model_id"] for m in result["models"] if m["kind"] == "default")
    at = run_app("en", "pages/compare.py")
    sign_in_as(at, "alice")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("No champion yet" in c.value for c in at.caption)
    at.selectbox(key="champion_pick").set_value(default).run()
    at.text_input(key="champion_reason").set_value("steadier on April").run()
    at.button(key="champion_promote").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert champion.champion(store, "d") is None                  # until a second administrator approves
    request_id = store.scalar("SELECT max(id) FROM change_requests")
    checker = run_app("en", "pages/compare.py", user="rita", role="admin")
    checker.button(key=f"approval_ok_{request_id}").click().run()
    assert not checker.exception, [e.value for e in checker.exception]
    assert champion.champion(store, "d")["model_id"] == default
    at.run()
    assert any(f"In production for this dataset: {default}" in c.value for c in at.caption)
    tuned = next(m["model_id"] for m in result["models"] if m["kind"] == "tuned")
    at.selectbox(key="champion_pick").set_value(tuned).run()
    assert at.button(key="champion_promote").disabled          # not before a comparison says so
    at.button(key="champion_compare").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Too little evidence" in w.value for w in at.warning)
    assert at.button(key="champion_promote").disabled
    at.button(key="champion_retrain").click().run()
    finish_jobs(at)
    assert not at.exception, [e.value for e in at.exception]
    challenger = models.list_models(store, "d")[0]
    assert challenger["kind"] == "default" and challenger["model_id"] not in (default, tuned)
    assert at.selectbox(key="champion_pick").value == challenger["model_id"]
    assert any(f"Challenger {challenger['model_id']} trained on" in c.value for c in at.caption)
    assert any("Too little evidence" in w.value for w in at.warning)        # the small demo is thin
    fresh = run_app("en", "pages/queue.py")        # a new session opens the queue on the champion
    assert fresh.session_state["active_model"] == default


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_monitor_page_shows_drift_alerts_and_performance(trained_app, lang):
    at = run_app(lang, "pages/monitor.py")
    finish_jobs(at)
    assert not at.exception, [e.value for e in at.exception]
    labels = [m.label for m in at.metric]
    assert ("Score PSI" if lang == "en" else "得分 PSI") in labels
    drift = next(d.value for d in at.dataframe if "PSI" in d.value.columns)
    assert len(drift) > 10 and list(drift["PSI"]) == sorted(drift["PSI"], reverse=True)
    at.selectbox(key="monitor_pick").set_value(drift.iloc[0, 0]).run()
    assert not at.exception, [e.value for e in at.exception]


def test_scoring_the_newest_batch_opens_the_queue_on_its_alerts(home, tmp_path, small_demo_csv):
    import pandas as pd
    from core import champion, models
    from core.datasets import get_dataset
    from core.ingest import ingest
    from core.store import open_store
    store = open_store(home)
    frame = pd.read_csv(small_demo_csv, dtype=str, keep_default_na=False).sort_values("trans_time", kind="stable")
    frame.iloc[:2600].to_csv(tmp_path / "base.csv", index=False)
    frame.iloc[2600:].to_csv(tmp_path / "new.csv", index=False)
    ingest(store, tmp_path / "base.csv", "d")
    model = models.train(store, "d", kinds=["default"], trials=1)["models"][0]["model_id"]
    champion.promote(store, "d", model, "alice", "launch")
    ingest(store, tmp_path / "new.csv", "d", append=True)
    at = run_app("en")
    ds_id = get_dataset(store, "d")["id"]
    at.button(key=f"score_batch_{ds_id}").click().run()
    finish_jobs(at)
    assert not at.exception, [e.value for e in at.exception]
    period = at.session_state[f"queue_period_{model}"]
    assert str(period[0]) >= str(frame.iloc[2600]["trans_time"])[:10]
    from core.i18n import t
    assert at.session_state["queue_bands_en"] == [t("band.BLOCK"), t("band.VERIFY")]


def test_a_new_workspace_asks_for_the_first_administrator(home):
    at = run_app("en", user=None).run()     # the second run has the page the navigation resolved
    assert not at.exception, [e.value for e in at.exception]
    assert [s.value for s in at.subheader] == ["Create the first administrator"]
    at.text_input(key="first_name").set_value("root")
    at.text_input(key="first_password").set_value("long enough password")
    at.text_input(key="first_again").set_value("long enough password")
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["user"]["name"] == "root" and at.session_state["user"]["role"] == "admin"
    assert [c.value for c in at.caption][-1] == "Signing in…"     # the browser goes to set the session cookie
    at.run()
    assert [t.value for t in at.title] == ["Data"]          # the app, signed in


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_sign_in_with_a_local_account(home, lang):
    from core import people
    from core.store import open_store
    people.add_user(open_store(), "ana", "analyst", "correct horse battery")
    at = run_app(lang, user=None).run()
    assert at.title[0].value == ("Sign in to riskdesk" if lang == "en" else "登录 riskdesk")
    at.text_input(key="auth_name").set_value("ana")
    at.text_input(key="auth_password").set_value("wrong horse battery")
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["wrong user name or password"] and "user" not in at.session_state
    at.text_input(key="auth_password").set_value("correct horse battery")
    at.button[0].click().run()
    assert at.session_state["user"]["role"] == "analyst"
    assert "correct horse" not in repr(at.session_state)    # not kept for the next person at this screen


def test_an_auditor_can_read_a_case_but_not_record_a_decision_or_save_a_rule(trained_app):
    at = run_app("en", "pages/case.py", user="audrey", role="auditor")
    at.text_input(key="case_txid").set_value("T000000005").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Your role (auditor) may not record review decisions." in i.value for i in at.info)
    record = next(b for b in at.button if b.label == "Record decision")
    assert record.disabled
    rules = run_app("en", "pages/rules.py", user="audrey", role="auditor")
    assert any("may not change rules" in i.value for i in rules.info)
    assert rules.button(key="rule_save").disabled


def test_the_audit_log_filters_by_person_and_exports_neutralised_csv(home):
    from core import people
    from core.store import open_store
    db = open_store()
    people.add_user(db, "ana", "analyst", None, actor="=cmd|' /C calc'!A0")
    people.add_user(db, "bob", "auditor", None, actor="root")
    at = run_app("en", "pages/audit.py")
    assert not at.exception, [e.value for e in at.exception]
    assert any("entries match" in c.value for c in at.caption)
    at.selectbox(key="audit_person").set_value("root").run()
    shown = next(d.value for d in at.dataframe)
    assert list(shown["actor"]) == ["root"] and list(shown["object_id"]) == ["bob"]
    at.selectbox(key="audit_person").set_value(at.selectbox(key="audit_person").options[0]).run()
    from core import auditlog
    text = auditlog.export_csv(db).decode("utf-8-sig")
    assert "'=cmd|' /C calc'!A0" in text and "\n=cmd" not in text and ",=cmd" not in text


def test_an_administrator_adds_a_person_and_a_key_shown_once_and_an_analyst_may_not(home):
    from core import people
    from core.store import open_store
    at = run_app("en", "pages/people.py", user="root", role="admin")
    assert not at.exception, [e.value for e in at.exception]
    at.text_input(key="people_name").set_value("ana")
    at.selectbox(key="people_role").set_value("analyst")
    at.text_input(key="people_password").set_value("correct horse battery")
    next(b for b in at.button if b.label == "Add").click().run()
    assert people.get_user(open_store(), "ana")["role"] == "analyst"
    at.selectbox(key="people_key_owner").set_value("ana")
    at.button(key="people_key_create").click().run()
    key = at.code[0].value
    assert people.authenticate_key(open_store(), key) == {"name": "ana", "role": "analyst"}
    at.run()
    assert not at.code                                   # shown once
    at.button(key="people_key_revoke").click().run()
    with pytest.raises(people.NotSignedIn):
        people.authenticate_key(open_store(), key)
    analyst = run_app("en", "pages/people.py", user="ana", role="analyst")
    assert any("may not manage people and keys" in i.value for i in analyst.info)
    assert not analyst.dataframe
