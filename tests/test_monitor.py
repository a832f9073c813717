"""Monitoring: score PSI equals a hand computation; the command line's JSON contract; bad
periods are one clear line."""
import json

import numpy as np
import pytest

from conftest import run_cli
from core import monitor


def test_score_psi_matches_a_hand_computation(trained):
    store, result = trained
    model = next(m for m in result["models"] if m["kind"] == "default")
    from core.features import build_features
    from core.models import feature_config
    fs_table = build_features(store, "demo", feature_config(model))["table"]
    report = monitor.report(store, model["model_id"], *model["split"]["test"])
    scores = store.df(f"SELECT CAST(f.timestamp AS DATE) AS day, s.score FROM {fs_table} f JOIN model_scores s "
                      f"ON s.transaction_id = CAST(f.transaction_id AS VARCHAR) "
                      f"WHERE s.model_id = ? AND s.part = 'all'", [model["model_id"]])
    day = scores["day"].astype(str)
    ref = scores["score"][(day >= model["split"]["train"][0]) & (day <= model["split"]["train"][1])].to_numpy()
    cur = scores["score"][(day >= model["split"]["test"][0]) & (day <= model["split"]["test"][1])].to_numpy()
    cuts = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
    pa = np.clip(np.bincount(np.searchsorted(cuts, ref, side="left"), minlength=len(cuts) + 1) / len(ref), 1e-4, None)
    pb = np.clip(np.bincount(np.searchsorted(cuts, cur, side="left"), minlength=len(cuts) + 1) / len(cur), 1e-4, None)
    assert report["score_psi"] == pytest.approx(float(((pb - pa) * np.log(pb / pa)).sum()), rel=1e-9)
    assert report["reference"] == {"start": model["split"]["train"][0], "end": model["split"]["train"][1]}
    assert [f["psi"] for f in report["features"]] == sorted((f["psi"] for f in report["features"]), reverse=True)
    assert sum(a["transactions"] for a in report["alerts"]) == model["metrics"]["test"]["rows"]


def test_monitor_command_line_contract(tmp_path, small_demo_csv):
    home = tmp_path / "ws"
    assert run_cli(home, "ingest", str(small_demo_csv), "--dataset", "d").returncode == 0
    trained = json.loads(run_cli(home, "train", "--dataset", "d", "--models", "default,rules", "--trials", "1",
                             "--json").stdout)
    model = next(m for m in trained["models"] if m["kind"] == "default")["model_id"]
    proc = run_cli(home, "monitor", "--dataset", "d", "--model", model, "--start", "2024-04-01", "--end", "2024-04-30",
               "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {"reference", "current", "score_psi", "features", "alerts"} <= set(out)
    assert out["current"] == {"start": "2024-04-01", "end": "2024-04-30"}
    assert out["reference"] == {"start": trained["split"]["train"][0], "end": trained["split"]["train"][1]}
    assert all(set(f) == {"feature", "psi", "band"} and f["band"] in ("stable", "watch", "shift") for f in out["features"])
    given = json.loads(run_cli(home, "monitor", "--model", model, "--start", "2024-04-01", "--end", "2024-04-30",
                           "--reference-start", "2024-03-01", "--reference-end", "2024-03-31", "--json").stdout)
    assert given["reference"] == {"start": "2024-03-01", "end": "2024-03-31"}
    for args, words in ((["--start", "2024-04-30", "--end", "2024-04-01"], "ends before it starts"),
                        (["--start", "2024-04-01", "--end", "2024-04-30", "--reference-start", "2024-03-01"],
                         "give both --reference-start and --reference-end")):
        proc = run_cli(home, "monitor", "--model", model, *args, "--json")
        assert proc.returncode != 0 and proc.stdout == "" and words in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    rules = next(m for m in trained["models"] if m["kind"] == "rules")["model_id"]
    proc = run_cli(home, "monitor", "--model", rules, "--start", "2024-04-01", "--end", "2024-04-30")
    assert proc.returncode != 0 and "scoring model" in proc.stderr
