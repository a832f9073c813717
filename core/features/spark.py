"""The same feature definitions on Apache Spark, for data that has outgrown one machine.

Nothing is written twice: the Spark SQL is generated from the one Definition (definitions.py).
The full-build SELECT is transpiled from DuckDB's dialect with sqlglot, after rewriting what
Spark lacks: time-range frames become numeric RANGE frames over the timestamp in microseconds
(`(t - n, t]` is `n - 1 µs PRECEDING AND CURRENT ROW`; EXCLUDE GROUP, the same-time peers,
ends at `1 PRECEDING`), a named window extended with a ROWS frame is written out in full,
`count(DISTINCT x) OVER w` becomes `size(collect_set(x) OVER w)`, ISO weekdays come from
`weekday()`, and epoch seconds keep their microseconds. The rows come from the dataset exported
as Parquet, with their known labels (core.labels). pyspark is imported only here.
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from ..errors import RiskdeskError
from ..labels import known_labels_sql
from ..store import Store
from .definitions import CARRY_TYPES, Definition, definition, select_sql

VIEW = "riskdesk_rows"
SECOND_US, DAY_US = 10 ** 6, 86_400 * 10 ** 6


def _frame(partition: str, seconds: int, end_days: int, exclude: str) -> str:
    if exclude == "GROUP" and not end_days:
        end = "1 PRECEDING"                 # the same-time peers (equal microseconds) left out
    elif exclude == "NO OTHERS":
        end = f"{end_days * DAY_US} PRECEDING" if end_days else "CURRENT ROW"
    else:
        raise RiskdeskError(f"no Spark form for a window excluding {exclude} with an end {end_days} days back")
    return f"PARTITION BY {partition} ORDER BY _ts_us RANGE BETWEEN {seconds * SECOND_US - 1} PRECEDING AND {end}"


def _to_spark(node):
    import sqlglot.expressions as exp
    if isinstance(node, exp.TimeToUnix):                 # epoch(): seconds with their fraction
        micros = exp.Anonymous(this="UNIX_MICROS", expressions=[exp.cast(node.this, "TIMESTAMP")])
        return exp.Div(this=exp.cast(micros, "DOUBLE"), expression=exp.Literal.number(1000000))
    if isinstance(node, exp.DayOfWeekIso):               # Monday 1 .. Sunday 7
        return exp.Add(this=exp.Anonymous(this="WEEKDAY", expressions=[node.this]), expression=exp.Literal.number(1))
    if isinstance(node, exp.Window) and isinstance(node.this, exp.Count) and isinstance(node.this.this, exp.Distinct):
        window = node.copy()
        window.set("this", exp.Anonymous(this="COLLECT_SET", expressions=list(node.this.this.expressions)))
        return exp.Anonymous(this="SIZE", expressions=[window])
    return node


def spark_sql(d: Definition, view: str = VIEW) -> str:
    """The full-build feature SELECT of a definition, in Spark SQL, over a view of the dataset's
    rows with `known_label` and `_ts_us` (the timestamp in microseconds)."""
    import sqlglot
    windows = {name: _frame(*d.frames[name]) if name in d.frames else spec for name, spec in d.windows.items()}
    nulls = "".join(f", NULL::{CARRY_TYPES.get(c, 'INTEGER')} AS {c}" for c in sorted(d.carry))
    sql = select_sql(dataclasses.replace(d, windows=windows), f"(SELECT *{nulls} FROM {view})")
    for name, spec in windows.items():              # Spark cannot extend a named window with a frame
        sql = re.sub(rf"\({name} (ROWS|RANGE) ", lambda m, spec=spec: f"({spec} {m.group(1)} ", sql)
    tree = sqlglot.parse_one(sql, read="duckdb").transform(_to_spark)
    return tree.sql(dialect="spark", identify=True)


def session():
    """A Spark session: local on every core unless RISKDESK_SPARK_MASTER names a cluster."""
    import sys

    from pyspark.sql import SparkSession
    # Python workers (mapInPandas) run this interpreter, with its pandas, pyarrow and LightGBM
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    return (SparkSession.builder.master(os.environ.get("RISKDESK_SPARK_MASTER") or "local[*]")
            .appName("riskdesk-features").config("spark.sql.session.timeZone", "UTC")
            .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "8").getOrCreate())


def export_rows(store: Store, ds: dict, out: Path) -> Path:
    """The dataset's rows with their known labels, as the Parquet file Spark reads."""
    out.parent.mkdir(parents=True, exist_ok=True)
    store.to_parquet(f"SELECT * FROM {known_labels_sql(ds['table'], ds['id'])}", out)
    return out


def spark_features(store: Store, ds: dict, config, out: Path, work: Path) -> dict:
    """Compute a dataset's feature set on Spark and write transaction_id and one column per
    feature to `out` (Parquet)."""
    try:
        from pyspark.sql import functions as F
    except ImportError:
        raise RiskdeskError("the Spark engine needs pyspark (pip install pyspark) and Java 17") from None
    d = definition(config, ds, store)
    rows = export_rows(store, ds, work / f"rows_{ds['id']}.parquet")
    spark = session()
    frame = spark.read.parquet(str(rows))
    frame.withColumn("_ts_us", F.unix_micros(F.col("timestamp").cast("timestamp"))).createOrReplaceTempView(VIEW)
    result = spark.sql(spark_sql(d)).select("transaction_id", *[f"`{f.name}`" for f in d.features])
    result.coalesce(1).write.mode("overwrite").parquet(str(work / "spark_out"))
    part = next((work / "spark_out").glob("part-*.parquet"))
    out.parent.mkdir(parents=True, exist_ok=True)
    part.replace(out)
    return {"out": str(out), "features": len(d.features), "engine": "spark",
            "master": spark.sparkContext.master}


def _lightgbm_scorer(model_text: str, names: list[str], categories: dict[str, list]):
    """The function mapInPandas runs on each partition: the model from its text (no pickle), the
    columns encoded as in training (core.models.encode_categories), a probability per row. Only
    pandas and LightGBM are needed where it runs."""
    def score(batches):
        import lightgbm as lgb
        import pandas as pd
        booster = lgb.Booster(model_str=model_text)
        for pdf in batches:
            X = pdf[names].copy()
            for name in names:
                if name in categories:
                    X[name] = pd.Categorical(X[name].astype("object"), categories=categories[name])
                else:
                    X[name] = X[name].astype("float64")
            yield pd.DataFrame({"transaction_id": pdf["transaction_id"].astype(str),
                                "score": booster.predict(X)})
    return score


def spark_score(store: Store, model: dict, ds: dict, config, out: Path, work: Path) -> dict:
    """Score every transaction of a dataset on Spark: the features from the same definitions,
    then the model's LightGBM text applied in mapInPandas. Writes transaction_id, score and the
    band decision (PASS / VERIFY / BLOCK from the model's thresholds; BLOCK rules are applied by
    `score` on DuckDB only) to `out` (Parquet)."""
    from pyspark.sql import functions as F
    if model["kind"] not in ("default", "tuned", "forest"):
        raise RiskdeskError(f"Spark scoring takes LightGBM models; {model['model_id']} is {model['kind']}")
    from ..models import load_artifact
    load_artifact(store, model)                          # its SHA-256 checked against the registry
    text = (store.home / "models" / model["artifact"]).read_text(encoding="utf-8")
    d = definition(config, ds, store)
    missing = [n for n in model["features"] if n not in {f.name for f in d.features}]
    if missing:
        raise RiskdeskError(f"dataset {ds['name']!r} lacks features the model needs: {', '.join(missing[:5])}")
    rows = export_rows(store, ds, work / f"rows_{ds['id']}.parquet")
    spark = session()
    spark.read.parquet(str(rows)).withColumn("_ts_us", F.unix_micros(F.col("timestamp").cast("timestamp"))) \
        .createOrReplaceTempView(VIEW)
    features = spark.sql(spark_sql(d)).select("transaction_id", *[f"`{n}`" for n in model["features"]])
    scored = features.mapInPandas(_lightgbm_scorer(text, model["features"], model["params"]["categories"]),
                                  "transaction_id string, score double")
    verify, block = model["threshold"], model["block_threshold"]
    decision = F.when(F.col("score") >= F.lit(block if block is not None else float("inf")), "BLOCK") \
        .when(F.col("score") >= F.lit(verify), "VERIFY").otherwise("PASS")
    scored.withColumn("decision", decision).coalesce(1).write.mode("overwrite").parquet(str(work / "spark_scores"))
    out.parent.mkdir(parents=True, exist_ok=True)
    next((work / "spark_scores").glob("part-*.parquet")).replace(out)
    return {"out": str(out), "rows": ds["rows"], "engine": "spark", "master": spark.sparkContext.master}
