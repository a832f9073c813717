"""AppTest smoke tests of every page in both languages, and the demo-data flow."""
import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from core import jobs

APP = str(ROOT / "app.py")
PAGES = ["pages/data.py", "pages/explore.py"]


def run_app(lang="en", page=None):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["lang"] = lang
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
