"""Training labels: the file's label, overridden by the latest conclusive review decision.

A transaction's reviewed label is 1 when its latest conclusive decision (confirmed fraud or
legitimate; "escalate" is not conclusive) is confirmed fraud, 0 when it is legitimate, NULL
when nobody has decided. Training uses coalesce(reviewed, file label). This module only reads
`decisions`; recording them is core.cases.
"""
from __future__ import annotations

from .store import Store


def latest_conclusive_sql(dataset_id_param: str = "?") -> str:
    """SELECT transaction_id, latest (decision) over a dataset's conclusive decisions."""
    return (f"SELECT transaction_id, arg_max(decision, decision_id) AS latest FROM decisions "
            f"WHERE dataset_id = {dataset_id_param} AND decision IN ('confirmed_fraud', 'legitimate') "
            f"GROUP BY transaction_id")


def confirmed_label_count(store: Store, dataset_id: int) -> int:
    """Transactions with a conclusive review decision (confirmed fraud or legitimate), usable
    as labels in the next training."""
    return int(store.scalar(f"SELECT count(*) FROM ({latest_conclusive_sql()})", [dataset_id]) or 0)


def label_sql(dataset_id: int) -> tuple[str, list]:
    """A join that gives each transaction's reviewed label (NULL when none): training uses
    coalesce(reviewed, label)."""
    return (f"LEFT JOIN (SELECT transaction_id, CASE latest WHEN 'confirmed_fraud' THEN 1 ELSE 0 END AS reviewed_label "
            f"FROM ({latest_conclusive_sql()})) reviewed USING (transaction_id)", [dataset_id])


def known_labels_sql(table: str, dataset_id: int) -> str:
    """A relation: the dataset's rows with `known_label`, the reviewed label where a conclusive
    decision exists, else the file's label (what label-delayed features count), and `_row`,
    the table's row id (`table` is a table)."""
    return (f"(SELECT t.*, t.rowid AS _row, coalesce(r.reviewed_label, t.label) AS known_label FROM {table} t LEFT JOIN "
            f"(SELECT transaction_id, CASE latest WHEN 'confirmed_fraud' THEN 1 ELSE 0 END AS reviewed_label "
            f"FROM ({latest_conclusive_sql(str(int(dataset_id)))})) r "
            f"ON r.transaction_id = CAST(t.transaction_id AS VARCHAR))")


def reviewed_labels(store: Store, dataset_id: int) -> dict[str, int]:
    """Each reviewed transaction's label (1 confirmed fraud, 0 legitimate): what
    `known_labels_sql` puts in place of the file's label."""
    return {str(tid): int(latest == "confirmed_fraud")
            for tid, latest in store.rows(latest_conclusive_sql(), [dataset_id])}


def newest_decision(store: Store, dataset_id: int) -> int:
    """The id of the dataset's newest review decision (0 when none): a revision of its labels."""
    return int(store.scalar("SELECT coalesce(max(decision_id), 0) FROM decisions WHERE dataset_id = ?",
                            [dataset_id]))


def waiting_count(store: Store, dataset_id: int, model_id: str) -> int:
    """Conclusive decisions recorded after the model was registered: labels the next training
    will use that the model has not seen."""
    return int(store.scalar(
        f"SELECT count(*) FROM ({latest_conclusive_sql()}) l WHERE l.transaction_id IN "
        "(SELECT transaction_id FROM decisions WHERE dataset_id = ? AND decided_at > "
        "(SELECT created_at FROM models WHERE model_id = ?))",
        [dataset_id, dataset_id, model_id]) or 0)
