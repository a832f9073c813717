"""Review decisions on transactions (append-only) and their use as labels."""
from __future__ import annotations

from .store import Store

DECISIONS = ("confirmed_fraud", "legitimate", "escalate")
# A transaction's label from its latest conclusive review decision.
DECISION_LABEL = {"confirmed_fraud": 1, "legitimate": 0}


def confirmed_label_count(store: Store, dataset_id: int) -> int:
    """Transactions whose latest decision is confirmed fraud or legitimate (usable as labels)."""
    return int(store.scalar("""
        SELECT count(*) FROM (
            SELECT arg_max(decision, decision_id) AS latest FROM decisions WHERE dataset_id = ?
            GROUP BY transaction_id) WHERE latest IN ('confirmed_fraud', 'legitimate')""", [dataset_id]) or 0)
