"""Training, comparison and the model registry.

Kinds: ``rules`` (the current rule set scored by the sum of its rules' scores), ``default``
(LightGBM with XGBoost's documented defaults), ``tuned`` (LightGBM tuned with Optuna's TPE
on validation average precision, imbalance strategy included), ``logistic`` and ``forest``
(teaching baselines; the forest is LightGBM's random-forest mode).

Splits are out of time by default; random splits only on request. SMOTE only ever touches
training rows: synthetic rows are added to the training matrix; validation, test, metrics and
thresholds use real rows. Artifacts are LightGBM text files or our own JSON, verified by
SHA-256 before loading; nothing is unpickled.

Parts: `splits` (periods), `frames` (features and labels as model inputs), `learners`
(LightGBM, logistic regression), `registry` (entries, artifacts, scoring), `training` (runs).
"""
from .frames import Frame, encode_categories, load_frame, resample_training
from .learners import logistic_design
from .registry import (delete_model, feature_config, get_model, list_models, load_artifact, model_dataset, score,
                       write_scores)
from .splits import Split, labelled_split, make_split, split_counts, timeline
from .training import DEFAULT_KINDS, IMBALANCE, KINDS, XGBOOST_DEFAULTS, train

__all__ = ["DEFAULT_KINDS", "IMBALANCE", "KINDS", "XGBOOST_DEFAULTS", "Frame", "Split", "delete_model",
           "encode_categories", "feature_config", "get_model", "labelled_split", "list_models", "load_artifact",
           "load_frame", "logistic_design", "make_split", "model_dataset", "resample_training", "score",
           "split_counts", "timeline", "train", "write_scores"]
