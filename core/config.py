"""Settings read from the environment: workspace location, thread counts and the memory cap."""
from __future__ import annotations

import os
import re
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


# Above this many labelled rows in the training period, models train on every fraud and a
# weighted, time-stratified sample of normal transactions (RISKDESK_TRAIN_ROWS overrides it).
TRAIN_ROWS = 2_000_000


def train_row_limit() -> int:
    """Training rows above which the training period is sampled (RISKDESK_TRAIN_ROWS)."""
    from .errors import RiskdeskError
    text = os.environ.get("RISKDESK_TRAIN_ROWS")
    if not text:
        return TRAIN_ROWS
    if not text.strip().isdigit() or int(text) < 1000:
        raise RiskdeskError(f"RISKDESK_TRAIN_ROWS={text!r} must be a whole number of at least 1000")
    return int(text)


# Largest upload the app accepts, in MB (mirrors .streamlit/config.toml server.maxUploadSize).
UPLOAD_LIMIT_MB = 1024


# DuckDB's memory cap when RISKDESK_MEMORY is not set: this share of the machine's RAM (DuckDB's
# own default is 80%, which leaves too little for pandas, LightGBM and the browser beside it).
MEMORY_SHARE = 0.5
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib|k|m|g|t)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
          "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}


def machine_memory() -> int:
    """Physical memory of this machine, in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_limit() -> int:
    """The memory riskdesk plans to stay within, in bytes: RISKDESK_MEMORY (4GB, 512MB, 2.5GiB),
    default MEMORY_SHARE of the machine's RAM. DuckDB is capped at it and spills to the
    workspace's tmp/ folder beyond it; steps that hold data in Python check it before starting."""
    from .errors import RiskdeskError
    text = os.environ.get("RISKDESK_MEMORY")
    if not text:
        return int(machine_memory() * MEMORY_SHARE)
    m = _SIZE_RE.match(text)
    if not m:
        raise RiskdeskError(f"RISKDESK_MEMORY={text!r} is not a size like 4GB or 512MB")
    size = int(float(m.group(1)) * _UNITS[(m.group(2) or "b").lower()])
    if size < 256 * 2 ** 20:
        raise RiskdeskError(f"RISKDESK_MEMORY={text!r} is below the 256MB riskdesk needs")
    return size


def duckdb_config(workspace: Path | None = None) -> dict:
    """Settings for every DuckDB connection: threads, the memory cap, spilling to the
    workspace's tmp/duckdb folder, and memory handed back to the system once freed (without
    the allocator's background threads, a 10M-row sort left 1.4 GB of freed memory held)."""
    spill = Path(workspace or home()) / "tmp" / "duckdb"
    return {"threads": threads(), "memory_limit": f"{memory_limit() // 2 ** 20}MiB", "temp_directory": str(spill),
            "allocator_background_threads": True}
