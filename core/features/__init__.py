"""Point-in-time features. The rooms:

* `definitions` - what each feature means: configurations, families, the one SQL definition
  (for every row, or for the rows a batch can change)
* `materialise` - feature sets stored per dataset and version, caught up after appends
* `columnar` - a full build's window calls computed beside DuckDB, by `kernels` (numba loops)
* `pyengine` - the same definitions in plain Python, for the few rows of a REST request
* `spark` - the same definitions on Apache Spark

Callers import from `core.features`; these are its public names.
"""
from .definitions import FAMILIES, HANDBOOK, NAMED, Feature, FeatureConfig, definition, feature_sql
from .materialise import (build_features, catch_up, export_features, feature_names, is_built,
                          unavailable_families)

__all__ = ["FAMILIES", "HANDBOOK", "NAMED", "Feature", "FeatureConfig", "build_features", "catch_up", "definition",
           "export_features", "feature_names", "feature_sql", "is_built", "unavailable_families"]
