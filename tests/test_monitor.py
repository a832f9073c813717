"""Monitoring: score PSI equals a hand computation; the command line's JSON contract; bad
periods are one clear line."""
import json

import numpy as np
import pandas as pd
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


def test_feature_psi_and_rule_hit_rates_match_hand_computations(trained):
    from core import explore
    from core import rules as rules_mod
    from core.features import build_features
    from core.models import feature_config
    store, result = trained
    model = next(m for m in result["models"] if m["kind"] == "default")
    fs = build_features(store, "demo", feature_config(model))
    reference, current = tuple(model["split"]["train"]), tuple(model["split"]["test"])
    frame = store.df(f"SELECT CAST(timestamp AS DATE) AS day, tx_amount, channel FROM {fs['table']}")
    day = frame["day"].astype(str)
    a = frame[(day >= reference[0]) & (day <= reference[1])]
    b = frame[(day >= current[0]) & (day <= current[1])]

    def psi(bins_a, bins_b):
        pa = bins_a.value_counts(normalize=True)
        pb = bins_b.value_counts(normalize=True)
        pa, pb = pa.reindex(pa.index.union(pb.index), fill_value=0), pb.reindex(pa.index.union(pb.index), fill_value=0)
        pa, pb = pa.clip(lower=1e-4), pb.clip(lower=1e-4)
        return float(((pb - pa) * np.log(pb / pa)).sum())

    drift = explore.psi(store, fs, reference, current, ["tx_amount", "channel"]).set_index("feature")["psi"]
    # numeric: ten bins cut at the reference period's (approximate) deciles, plus one for NULL
    cuts = sorted(set(store.rows(f"SELECT approx_quantile(tx_amount, {[x / 10 for x in range(1, 10)]}) "
                                 f"FROM {fs['table']} WHERE CAST(timestamp AS DATE) BETWEEN ? AND ?", list(reference))[0][0]))
    binned = [np.where(part["tx_amount"].isna(), -1, np.searchsorted(cuts, part["tx_amount"], side="left")) for part in (a, b)]
    assert drift["tx_amount"] == pytest.approx(psi(pd.Series(binned[0]), pd.Series(binned[1])), rel=1e-9)
    assert drift["channel"] == pytest.approx(psi(a["channel"].fillna("(missing)"), b["channel"].fillna("(missing)")), rel=1e-9)

    hits = monitor.rule_hits_by_day(store, fs, current)
    fired = rules_mod.evaluate(store, fs, rules_mod.current_rules(store, include_disabled=False), *current)
    ids = [r["rule_id"] for r in rules_mod.applicable(rules_mod.current_rules(store, include_disabled=False), fs)[0]]
    expected = fired.groupby(fired["timestamp"].dt.date.astype(str))[ids].mean()
    assert [h["day"] for h in hits] == list(expected.index)
    for h in hits:
        assert [h[i] for i in ids] == pytest.approx(list(expected.loc[h["day"]]), abs=1e-12)
