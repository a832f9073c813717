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


# Largest upload the app accepts, in MB (mirrors .streamlit/config.toml server.maxUploadSize).
UPLOAD_LIMIT_MB = 1024
