"""Data health at load: each warning appears when the data calls for it, says what was done,
and the columns it names are kept out of the features."""
import numpy as np
import pytest

from core.datasets import get_dataset
from core.features import build_features, feature_names
from core.ingest import ingest


def health_file(path, rows=600, seed=3):
    rng = np.random.default_rng(seed)
    lines = ["trans_id,user_id,trans_time,amount,pre_balance,post_balance,label,branch,email,memo,flag_after,score"]
    for i in range(rows):
        day = i * 30 // rows + (12 if i >= rows // 2 else 0)           # a 12-day hole in the middle
        fraud = int(rng.random() < 0.1)
        amount = 0 if i % 100 == 0 else round(float(rng.uniform(5, 500)), 2)
        before = 1000.0
        after = before - amount if i % 3 else before                       # a third do not add up
        label = fraud if i < rows * 0.6 else ""                            # labels stop before the end
        lines.append(f"T{i},U{i % 40},2024-01-{1 + day % 31:02d} 10:{i % 60:02d}:00,{amount},{before},{after},{label},"
                     f"HQ,user{i % 40}@example.com,note {i} {rng.integers(1e9)},{'chargeback' if fraud else 'none'},"
                     f"{rng.normal():.4f}")
    path.write_text("\n".join(lines) + "\n")


def test_health_warnings_say_what_was_done(store, tmp_path):
    path = tmp_path / "h.csv"
    health_file(path)
    result = ingest(store, path, "h")
    by_code = {}
    for w in result["warnings"]:
        by_code.setdefault(w["code"], []).append(w)
    assert {"time_gap", "partial_labels", "non_positive_amounts", "balance_mismatch", "constant_column",
            "personal_text", "high_cardinality_text", "label_leak"} <= set(by_code), sorted(by_code)
    assert by_code["constant_column"][0]["column"] == "branch"
    assert by_code["personal_text"][0]["column"] == "email"
    assert by_code["high_cardinality_text"][0]["column"] == "memo"
    assert by_code["label_leak"][0]["column"] == "flag_after"
    assert by_code["non_positive_amounts"][0]["params"]["rows"] == 6
    assert "Left out of the features" in by_code["label_leak"][0]["message"]
    gap = by_code["time_gap"][0]["params"]
    assert gap["days"] >= 7
    # stored with the dataset, and the features keep only the useful extra
    ds = get_dataset(store, "h")
    assert [w["code"] for w in ds["warnings"]] == [w["code"] for w in result["warnings"]]
    names = feature_names(build_features(store, "h"))
    assert "extra_score" in names
    assert not {"extra_branch", "extra_email", "extra_memo", "extra_flag_after"} & set(names)


@pytest.mark.parametrize("lang, word", [("en", "Left out of the features"), ("zh", "不作为特征")])
def test_warnings_render_in_both_languages(store, tmp_path, lang, word):
    from core.ingest import render_warning
    path = tmp_path / "h.csv"
    health_file(path, rows=200)
    result = ingest(store, path, "h")
    leak = next(w for w in result["warnings"] if w["code"] == "label_leak")
    assert word in render_warning(leak, lang)
