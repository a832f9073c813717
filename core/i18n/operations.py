"""Catalogue of day-to-day operations: batches appended to a dataset and review decisions
waiting to become training labels."""
from __future__ import annotations

EN: dict[str, str] = {
    "reason.duplicate_in_dataset": "transaction id is already in the dataset (an earlier batch)",
    "queue.feedback": "{waiting} review decisions since this model was trained are waiting to become training labels; this model learned from {decisions} labels from decisions and {file} from the file.",
    "data.tab.batches": "Batches",
    "data.batches.batch": "batch",
    "data.batches.help": "A new batch must have the same columns as the first file; it is read with this dataset's mapping, and a transaction id the dataset already has is rejected. Features are rebuilt from all rows on next use.",
    "data.batches.upload": "Next batch (same columns)",
    "data.batches.append": "Add the batch",
    "data.batches.appended": "Batch {batch}: loaded {loaded} rows, rejected {rejected}; the dataset now has {total} rows.",
    "data.batches.confirm": "Type the dataset name to take back its newest batch",
    "data.batches.delete": "Delete the newest batch",
    "data.batches.deleted": "Batch {batch} removed ({rows} rows).",
}

ZH: dict[str, str] = {
    "reason.duplicate_in_dataset": "交易流水号已存在于数据集中（更早的批次）",
    "queue.feedback": "自本模型训练以来有 {waiting} 条审核决策等待成为训练标签；本模型训练时使用了 {decisions} 个来自审核决策的标签和 {file} 个来自文件的标签。",
    "data.tab.batches": "批次",
    "data.batches.batch": "批次",
    "data.batches.help": "新批次必须与首个文件列相同；按本数据集的映射读取，数据集中已有的交易流水号会被拒绝。特征会在下次使用时基于全部数据重新计算。",
    "data.batches.upload": "下一批次（列相同）",
    "data.batches.append": "追加批次",
    "data.batches.appended": "批次 {batch}：导入 {loaded} 行，拒绝 {rejected} 行；数据集现有 {total} 行。",
    "data.batches.confirm": "输入数据集名称以撤回最新批次",
    "data.batches.delete": "删除最新批次",
    "data.batches.deleted": "已删除批次 {batch}（{rows} 行）。",
}
