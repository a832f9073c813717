"""Loading transaction files into the workspace. The rooms, in the order a file passes them:

* `read`   - file kind, encoding, delimiter, sheets, headers; the file as a DuckDB relation
* `infer`  - role suggestions from headers and values; how to read times and numbers
* `parse`  - SQL that parses values (amounts, times, offsets, labels) and the parse preview
* `health` - warnings about what the data means for the analysis, and what riskdesk did
* `load`   - the atomic load with rejects and its catalogue entry

Callers import from `core.ingest`; these are its public names.
"""
from .health import render as render_warning
from .infer import Inference, Suggestion, TimeReading, infer, profile_columns, read_time, suggest
from .load import (default_dataset_name, describe_reason, drop_dataset_tables, find_by_sha, ingest,
                   refresh_catalogue, reject_summary, save_upload)
from .parse import DEFAULT_TIME_ORIGIN, TIME_UNITS, ParseOptions, preview_mapping
from .read import ENCODING_CHOICES, ENCODING_NAMES, SourceInfo, inspect_source, sample_rows

__all__ = ["DEFAULT_TIME_ORIGIN", "ENCODING_CHOICES", "ENCODING_NAMES", "Inference", "ParseOptions", "SourceInfo",
           "Suggestion", "TIME_UNITS", "TimeReading", "default_dataset_name", "describe_reason",
           "drop_dataset_tables", "find_by_sha", "infer", "ingest", "inspect_source", "preview_mapping",
           "profile_columns", "read_time", "refresh_catalogue", "reject_summary", "render_warning", "sample_rows", "save_upload",
           "suggest"]
