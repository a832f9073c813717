"""Rule grammar safety and round trips; metrics against scikit-learn."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from core import metrics
from core.rules import RuleSyntaxError, compile_sql, parse, shape, to_text

NAMES = {"amount", "is_night", "channel", "cust_count_1h", "drained"}


@pytest.mark.parametrize("text, position", [
    ("__import__('os').system('x')", None),    # calls and attribute access are not in the grammar
    ("amount.real > 1", None),
    ("amount > ", 9),
    ("amount >> 3", None),
    ("unknown_feature > 3", 0),
    ("channel = 'a' ; DROP TABLE datasets", 14),
    ("", 0),
])
def test_rejects_anything_outside_the_grammar(text, position):
    with pytest.raises(RuleSyntaxError) as err:
        parse(text, NAMES)
    if position is not None:
        assert err.value.position == position
    assert 0 <= err.value.position <= len(text)
    assert err.value.pointer().splitlines()[0] == text


def test_quotes_are_bound_values_not_sql():
    sql, params = compile_sql(parse("channel = 'x'' OR 1=1 --' and amount between 10 and 20", NAMES))
    assert "OR 1=1" not in sql and params == ["x' OR 1=1 --", 10.0, 20.0]
    assert sql.count("?") == 3


atoms = st.sampled_from(sorted(NAMES)).map(lambda n: n) | st.integers(-1000, 1000).map(str) | \
    st.text(alphabet="ab' ", max_size=5).map(lambda s: "'" + s.replace("'", "''") + "'")


@st.composite
def expressions(draw, depth=0):
    if depth > 2 or draw(st.booleans()):
        left, right = draw(atoms), draw(atoms)
        return f"{left} {draw(st.sampled_from(['=', '!=', '<', '>=']))} {right}"
    op = draw(st.sampled_from(["and", "or"]))
    return f"({draw(expressions(depth + 1))}) {op} not ({draw(expressions(depth + 1))})"


@settings(max_examples=200, deadline=None)
@given(expressions())
def test_round_trip(text):
    ast = parse(text, NAMES)
    assert shape(parse(to_text(ast), NAMES)) == shape(ast)


def test_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    y = (rng.random(3000) < 0.05).astype(int)
    s = np.round(rng.random(3000) + y * 0.4, 2)
    assert metrics.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert metrics.average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)



@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 6)), min_size=1, max_size=60), st.integers(0, 3))
def test_bootstrap_counting_draws_equals_resampling_rows(rows, seed):
    """AUC and AP intervals from sorted-once scores and draw counts are the intervals of
    recomputing each metric on every resampled set of rows (ties, one class, tiny sets)."""
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] / 4 for r in rows])
    fast = metrics.bootstraps(y, s, (metrics.roc_auc, metrics.average_precision), n=30, seed=seed)
    slow = metrics.bootstraps(y, s, (lambda a, b: metrics.roc_auc(a, b), lambda a, b: metrics.average_precision(a, b)),
                              n=30, seed=seed)
    assert np.allclose(fast, slow, rtol=0, atol=1e-12, equal_nan=True)

def test_precision_at_daily_capacity_by_hand():
    y = [1, 0, 0, 1, 0, 1]
    s = [0.9, 0.8, 0.1, 0.2, 0.7, 0.6]
    days = ["d1", "d1", "d1", "d2", "d2", "d2"]
    out = metrics.at_daily_capacity(y, s, days, k=1)     # reviews 0.9 (fraud) and 0.7 (normal)
    assert (out["reviewed"], out["caught"], out["precision"], out["recall"]) == (2, 1, 0.5, pytest.approx(1 / 3))
