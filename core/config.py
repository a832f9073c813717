"""Settings read from the environment: workspace location and thread counts."""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The workspace directory (RISKDESK_HOME, default ./workspace)."""
    return Path(os.environ.get("RISKDESK_HOME") or "workspace").resolve()


def threads() -> int:
    """Threads for DuckDB, LightGBM and NumPy pools (RISKDESK_THREADS, default: usable cores)."""
    value = os.environ.get("RISKDESK_THREADS")
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# Below this many training rows LightGBM runs on one thread: the per-iteration synchronisation
# of OpenMP threads costs more than it saves (measured on the 60k-row demo training period:
# 1 thread 2.0 s; 2 threads 1.2 s idle but 5.2 s with another process on a core, or 4.2 s with
# passive waiting). Larger data uses threads().
SMALL_TRAINING_ROWS = 300_000


def model_threads(rows: int) -> int:
    """LightGBM threads for a training set of `rows` rows (RISKDESK_THREADS caps it)."""
    return 1 if rows < SMALL_TRAINING_ROWS else threads()


# Largest upload the app accepts, in MB (mirrors .streamlit/config.toml server.maxUploadSize).
UPLOAD_LIMIT_MB = 1024
