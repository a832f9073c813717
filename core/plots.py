"""Pure plotting functions: data in, plotly Figure out (shown in pages, embedded in HTML
exports). Text goes through core.i18n; nothing here touches Streamlit or the database."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .i18n import t

FRAUD = "#d62728"
NORMAL = "#1f5fbf"
LAYOUT = dict(template="plotly_white", margin=dict(l=50, r=20, t=50, b=40), height=360,
              legend=dict(orientation="h", yanchor="bottom", y=1.02, x=1, xanchor="right"))


def _class_name(label, lang):
    return t("plot.fraud", lang) if int(label) == 1 else t("plot.normal", lang)


def distribution_by_label(frame, feature: str, lang: str = "en", log: bool = False) -> go.Figure:
    """Share of each class per bin (so the rare fraud class stays visible)."""
    fig = go.Figure()
    for label, color in ((0, NORMAL), (1, FRAUD)):
        part = frame[frame["label"] == label]
        if part.empty:
            continue
        if "lo" in part and part["lo"].notna().any():
            x = (part["lo"] + part["hi"]) / 2
            width = (part["hi"] - part["lo"]).iloc[0]
        else:
            x, width = part["bin"], None
        fig.add_bar(x=x, y=part["share"], name=_class_name(label, lang), marker_color=color, opacity=0.6,
                    width=width, customdata=part["count"],
                    hovertemplate="%{x}<br>" + t("plot.share", lang) + " %{y:.2%}<br>n = %{customdata:,}")
    xtitle = f"log10(1 + {feature})" if log else feature
    fig.update_layout(barmode="overlay", title=t("plot.distribution_title", lang, feature=feature),
                      xaxis_title=xtitle, yaxis_title=t("plot.share_of_class", lang), **LAYOUT)
    fig.update_yaxes(tickformat=".0%")
    return fig


def box_by_label(stats, feature: str, lang: str = "en", log: bool = False) -> go.Figure:
    """Box plot from precomputed quantiles (5th/95th percentile whiskers)."""
    fig = go.Figure()
    for _, row in stats.iterrows():
        label = int(row["label"])
        fig.add_trace(go.Box(name=_class_name(label, lang), x=[_class_name(label, lang)], q1=[row["p25"]], median=[row["p50"]], q3=[row["p75"]],
                             lowerfence=[row["p05"]], upperfence=[row["p95"]], mean=[row["mean"]],
                             marker_color=FRAUD if label == 1 else NORMAL, boxmean=True))
    fig.update_layout(title=t("plot.box_title", lang, feature=feature), yaxis_title=feature, showlegend=False,
                      **LAYOUT)
    if log:
        fig.update_yaxes(type="log")
    return fig


def volume_and_rate(frame, x: str, lang: str = "en", title: str = "") -> go.Figure:
    """Bars of transactions with the fraud rate as a line on a second axis."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_bar(x=frame[x].astype(str) if x != "day" else frame[x], y=frame["transactions"],
                name=t("plot.transactions", lang), marker_color="#9db4d9")
    fig.add_scatter(x=frame[x].astype(str) if x != "day" else frame[x], y=frame["fraud_rate"],
                    name=t("plot.fraud_rate", lang), mode="lines+markers", marker_color=FRAUD, secondary_y=True)
    fig.update_layout(title=title, **LAYOUT)
    fig.update_yaxes(title_text=t("plot.transactions", lang), secondary_y=False)
    fig.update_yaxes(title_text=t("plot.fraud_rate", lang), tickformat=".1%", secondary_y=True, rangemode="tozero")
    return fig


def correlation_heatmap(corr, lang: str = "en") -> go.Figure:
    fig = go.Figure(go.Heatmap(z=corr.to_numpy(), x=list(corr.columns), y=list(corr.index), zmin=-1, zmax=1,
                               colorscale="RdBu", reversescale=True, text=corr.round(2).to_numpy(),
                               texttemplate="%{text}", hovertemplate="%{x} · %{y}: %{z:.2f}<extra></extra>"))
    fig.update_layout(title=t("plot.correlation_title", lang), **{**LAYOUT, "height": 520})
    fig.update_xaxes(tickangle=45)
    return fig


def segment_scatter(points, x: str, y: str, lang: str = "en") -> go.Figure:
    fig = go.Figure()
    for seg in sorted(points["segment"].unique()):
        part = points[points["segment"] == seg]
        fig.add_scatter(x=part[x], y=part[y], mode="markers", name=t("plot.segment", lang, n=int(seg)),
                        marker=dict(size=6, opacity=0.6), text=part["customer_id"],
                        hovertemplate="%{text}<br>" + x + " %{x:.2f}<br>" + y + " %{y:.2f}")
    fig.update_layout(title=t("plot.segments_title", lang), xaxis_title=x, yaxis_title=y, **LAYOUT)
    return fig


def psi_bars(frame, lang: str = "en", bands=(0.1, 0.25), top: int = 30) -> go.Figure:
    part = frame.head(top).iloc[::-1]
    colors = ["#2ca02c" if v < bands[0] else ("#ff7f0e" if v < bands[1] else FRAUD) for v in part["psi"]]
    fig = go.Figure(go.Bar(x=part["psi"], y=part["feature"], orientation="h", marker_color=colors))
    for b in bands:
        fig.add_vline(x=b, line_dash="dash", line_color="#888")
    fig.update_layout(title=t("plot.psi_title", lang), xaxis_title="PSI",
                      **{**LAYOUT, "height": max(360, 22 * len(part) + 120)})
    return fig


PERIOD_COLORS = {"train": "rgba(31,95,191,0.10)", "valid": "rgba(255,127,14,0.14)", "test": "rgba(44,160,44,0.14)"}


def split_timeline(frame, split: dict | None, lang: str = "en") -> go.Figure:
    """Transactions and fraud rate per day, with the training / validation / test periods shaded."""
    fig = volume_and_rate(frame, "day", lang, t("plot.timeline_title", lang))
    if split and split.get("method") == "time":
        for part in ("train", "valid", "test"):
            period = split.get(part)
            if not period:
                continue
            fig.add_vrect(x0=period[0], x1=f"{period[1]} 23:59:59", fillcolor=PERIOD_COLORS[part], line_width=0,
                          annotation_text=t(f"plot.period.{part}", lang), annotation_position="top left")
    return fig


_CURVE_AXES = {"roc": ("plot.fpr", "plot.tpr"), "pr": ("plot.recall", "plot.precision"),
               "gain": ("plot.reviewed_share", "plot.frauds_caught"), "lift": ("plot.reviewed_share", "plot.lift"),
               "calibration": ("plot.mean_score", "plot.observed_rate")}


def curve_overlay(curves: dict, which: str, lang: str = "en") -> go.Figure:
    """One curve per model: which is roc, pr, gain, lift or calibration; curves maps a model
    label to compare.curves() output."""
    fig = go.Figure()
    for name, c in curves.items():
        if which == "roc":
            x, y = c["roc"]
        elif which == "pr":
            x, y = c["pr"]
        elif which in ("gain", "lift"):
            share, gain, lift = c["gain"]
            x, y = share, (gain if which == "gain" else lift)
        else:
            if c["calibration"] is None:
                continue
            x, y = c["calibration"]
        x, y = _thin(x, y)
        fig.add_scatter(x=x, y=y, mode="lines+markers" if which == "calibration" else "lines", name=name)
    if which in ("roc", "gain", "calibration"):
        fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#999"), showlegend=False,
                        hoverinfo="skip")
    xt, yt = _CURVE_AXES[which]
    fig.update_layout(title=t(f"plot.curve.{which}", lang), xaxis_title=t(xt, lang), yaxis_title=t(yt, lang), **LAYOUT)
    if which == "calibration":
        fig.update_xaxes(type="log")
        fig.update_yaxes(type="log")
    return fig


def _thin_index(n: int, keep: int = 1500):
    """Evenly spaced row positions (first and last included) so long curves stay light."""
    import numpy as np
    if n <= keep:
        return np.arange(n)
    return np.unique(np.r_[np.linspace(0, n - 1, keep).astype(int), n - 1])


def _thin(x, y):
    import numpy as np
    idx = _thin_index(len(x))
    return np.asarray(x)[idx], np.asarray(y)[idx]


def score_distribution(frame, lang: str = "en", thresholds=()) -> go.Figure:
    """Histogram of scores per class (share of the class), with threshold lines."""
    fig = go.Figure()
    for label, color in ((0, NORMAL), (1, FRAUD)):
        part = frame[frame["label"] == label]["score"]
        fig.add_histogram(x=part, name=_class_name(label, lang), marker_color=color, opacity=0.6,
                          histnorm="probability", xbins=dict(start=0, end=float(max(frame["score"].max(), 1e-9)),
                                                             size=float(max(frame["score"].max(), 1e-9)) / 50))
    for value in thresholds:
        if value is not None:
            fig.add_vline(x=value, line_dash="dash", line_color="#555")
    fig.update_layout(barmode="overlay", title=t("plot.score_distribution", lang), xaxis_title=t("plot.score", lang),
                      yaxis_title=t("plot.share_of_class", lang), **LAYOUT)
    fig.update_yaxes(type="log")
    return fig


def confusion_matrix(at: dict, lang: str = "en") -> go.Figure:
    """2x2 matrix from metrics.at_threshold output."""
    z = [[at["tn"], at["fp"]], [at["fn"], at["tp"]]]
    labels = [t("plot.normal", lang), t("plot.fraud", lang)]
    fig = go.Figure(go.Heatmap(z=z, x=[t("plot.predicted", lang, label=v) for v in labels],
                               y=[t("plot.actual", lang, label=v) for v in labels], colorscale="Blues",
                               text=[[f"{v:,}" for v in row] for row in z], texttemplate="%{text}", showscale=False))
    fig.update_layout(title=t("plot.confusion", lang, threshold=f"{at['threshold']:.4g}"),
                      **{**LAYOUT, "height": 320})
    fig.update_yaxes(autorange="reversed")
    return fig


def cost_curve(curve, suggested: float | None, lang: str = "en") -> go.Figure:
    """Total cost, review cost and missed fraud amount against the number of transactions
    reviewed; the suggested (cheapest) threshold marked."""
    import numpy as np
    part = curve.iloc[_thin_index(len(curve))]
    fig = go.Figure()
    for column, key, line in (("cost", "plot.total_cost", dict(color=FRAUD)),
                              ("review_cost", "plot.review_cost", dict(dash="dot", color=NORMAL)),
                              ("missed_amount", "plot.missed_amount", dict(dash="dash", color="#ff7f0e"))):
        fig.add_scatter(x=np.maximum(part["reviewed"], 1), y=part[column], mode="lines", name=t(key, lang), line=line)
    if suggested is not None:
        row = curve.loc[curve["cost"].idxmin()]
        fig.add_scatter(x=[max(row["reviewed"], 1)], y=[row["cost"]], mode="markers",
                        marker=dict(size=12, color="black"), name=t("plot.suggested", lang, threshold=f"{suggested:.4g}"))
    fig.update_layout(title=t("plot.cost_title", lang), xaxis_title=t("plot.reviewed", lang),
                      yaxis_title=t("plot.cost", lang), **LAYOUT)
    fig.update_xaxes(type="log")
    return fig


def tuning_history(history: list[dict], lang: str = "en") -> go.Figure:
    """Validation average precision per Optuna trial, by imbalance strategy, with the best so far."""
    import pandas as pd
    frame = pd.DataFrame(history)
    fig = go.Figure()
    for strategy, part in frame.groupby("imbalance"):
        fig.add_scatter(x=part["trial"], y=part["average_precision"], mode="markers", name=str(strategy),
                        marker=dict(size=8))
    frame = frame.sort_values("trial")
    fig.add_scatter(x=frame["trial"], y=frame["average_precision"].cummax(), mode="lines",
                    name=t("plot.best_so_far", lang), line=dict(color="black", shape="hv"))
    fig.update_layout(title=t("plot.tuning_title", lang), xaxis_title=t("plot.trial", lang),
                      yaxis_title=t("plot.valid_ap", lang), **LAYOUT)
    return fig


def rule_overlap(overlap, lang: str = "en") -> go.Figure:
    """Transactions on which each pair of rules both fire (diagonal: the rule's hits)."""
    fig = go.Figure(go.Heatmap(z=overlap.to_numpy(), x=list(overlap.columns), y=list(overlap.index),
                               colorscale="Oranges", text=overlap.to_numpy(), texttemplate="%{text}",
                               hovertemplate="%{x} · %{y}: %{z}<extra></extra>"))
    fig.update_layout(title=t("plot.overlap_title", lang), **{**LAYOUT, "height": 380})
    fig.update_yaxes(autorange="reversed")
    return fig


def waterfall_items(explanation: dict, lang: str = "en", top: int = 10) -> list[tuple[str, float, str]]:
    """Steps of a waterfall as (label, value, measure): the base value, the top contributions
    by size (labels show feature values in original units), the rest summed into one step,
    and the model's margin. Shared by the plotly chart and the PDF's matplotlib chart."""
    from .explain import format_value
    contributions = explanation["contributions"]
    items = [(t("plot.base_value", lang), explanation["base_value"], "absolute")]
    items += [(f"{c['feature']} = {format_value(c['value'])}", c["shap"], "relative") for c in contributions[:top]]
    rest = contributions[top:]
    if rest:
        items.append((t("plot.other_features", lang, n=len(rest)), float(sum(c["shap"] for c in rest)), "relative"))
    items.append((t("plot.model_output", lang), explanation["margin"], "total"))
    return items


def waterfall(explanation: dict, lang: str = "en", top: int = 10) -> go.Figure:
    """Base value -> contributions -> the model's margin (log-odds), probability in the title."""
    items = waterfall_items(explanation, lang, top)   # in order: plotly sums steps in array order
    fig = go.Figure(go.Waterfall(orientation="h", y=[i[0] for i in items], x=[i[1] for i in items],
                                 measure=[i[2] for i in items], increasing=dict(marker=dict(color=FRAUD)),
                                 decreasing=dict(marker=dict(color=NORMAL)), totals=dict(marker=dict(color="#555")),
                                 base=0, text=[f"{i[1]:+.2f}" for i in items], textposition="auto",
                                 connector=dict(line=dict(color="#bbb"))))
    fig.update_layout(title=t("plot.waterfall_title", lang, score=f"{explanation['score']:.4f}",
                              margin=f"{explanation['margin']:.2f}"),
                      xaxis_title=t("plot.log_odds", lang), **{**LAYOUT, "height": 120 + 34 * len(items),
                                                                "margin": dict(l=260, r=40, t=60, b=40)})
    fig.update_yaxes(autorange="reversed")
    return fig


def customer_history(frame, lang: str = "en") -> go.Figure:
    """The customer's recent transactions (amount over time, by channel); this one highlighted."""
    fig = go.Figure()
    channel = frame["channel"].fillna("—") if "channel" in frame else None
    groups = frame.groupby(channel) if channel is not None else [(t("plot.transactions", lang), frame)]
    for name, part in groups:
        fig.add_scatter(x=part["timestamp"], y=part["amount"], mode="markers", name=str(name), marker=dict(size=8),
                        text=part["transaction_id"], hovertemplate="%{text}<br>%{x}<br>%{y:,.2f}<extra></extra>")
    this = frame[frame["is_this"]]
    fig.add_scatter(x=this["timestamp"], y=this["amount"], mode="markers", name=t("plot.this_transaction", lang),
                    marker=dict(size=18, symbol="star", color=FRAUD, line=dict(color="black", width=1)))
    fig.update_layout(title=t("plot.history_title", lang), yaxis_title=t("plot.amount", lang), **LAYOUT)
    fig.update_yaxes(type="log")
    return fig


def shap_importance(importance, lang: str = "en", top: int = 20) -> go.Figure:
    part = importance.head(top).iloc[::-1]
    fig = go.Figure(go.Bar(x=part["mean_abs_shap"], y=part["feature"], orientation="h", marker_color=NORMAL))
    fig.update_layout(title=t("plot.importance_title", lang), xaxis_title=t("plot.mean_abs_shap", lang),
                      **{**LAYOUT, "height": max(360, 22 * len(part) + 120)})
    return fig


def shap_beeswarm(view: dict, lang: str = "en", top: int = 15, seed: int = 0) -> go.Figure:
    """Each sampled transaction as a dot per feature: x its SHAP value, colour its feature value
    (rank within the feature, low blue to high red)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    features = list(view["importance"]["feature"].head(top))[::-1]
    fig = go.Figure()
    for i, name in enumerate(features):
        shap_values = view["shap"][name].to_numpy()
        raw = view["values"][name]
        numeric = raw.dtype.kind in "biuf"
        colour = (raw.rank(pct=True).fillna(0.5).to_numpy() if numeric else
                  raw.astype("category").cat.codes.to_numpy() / max(raw.nunique(), 1))
        fig.add_scatter(x=shap_values, y=i + rng.uniform(-0.3, 0.3, len(shap_values)), mode="markers",
                        marker=dict(size=4, color=colour, colorscale="RdBu", reversescale=True, cmin=0, cmax=1,
                                    opacity=0.7), name=name, showlegend=False,
                        text=[f"{name} = {v}" for v in raw.astype(str)], hovertemplate="%{text}<br>SHAP %{x:.3f}<extra></extra>")
    fig.update_layout(title=t("plot.beeswarm_title", lang), xaxis_title=t("plot.shap_value", lang),
                      **{**LAYOUT, "height": max(400, 28 * len(features) + 120)})
    fig.update_yaxes(tickvals=list(range(len(features))), ticktext=features)
    fig.add_vline(x=0, line_color="#999")
    return fig


def shap_dependence(view: dict, feature: str, colour_by: str | None, lang: str = "en") -> go.Figure:
    """SHAP value of a feature against its value, coloured by a second feature."""
    raw = view["values"]
    x = raw[feature]
    colour = None
    if colour_by and colour_by in raw:
        c = raw[colour_by]
        colour = c.rank(pct=True).to_numpy() if c.dtype.kind in "biuf" else c.astype("category").cat.codes.to_numpy()
    fig = go.Figure(go.Scatter(x=x, y=view["shap"][feature], mode="markers",
                               marker=dict(size=5, color=colour, colorscale="RdBu", reversescale=True, opacity=0.7,
                                           showscale=colour is not None,
                                           colorbar=dict(title=colour_by) if colour is not None else None)))
    fig.update_layout(title=t("plot.dependence_title", lang, feature=feature), xaxis_title=feature,
                      yaxis_title=t("plot.shap_value", lang), **LAYOUT)
    return fig


def period_overlay(frame, feature: str, lang: str = "en") -> go.Figure:
    """A feature's share per bin in the reference and the current period (the PSI drill-down)."""
    fig = go.Figure()
    for period, color in (("reference", NORMAL), ("current", FRAUD)):
        part = frame[frame["period"] == period]
        fig.add_bar(x=part["bin"], y=part["share"], name=t("monitor.reference" if period == "reference" else
                                                          "monitor.current_period", lang), marker_color=color,
                    opacity=0.6)
    fig.update_layout(barmode="group", title=t("monitor.overlay_title", lang, feature=feature),
                      yaxis_title=t("plot.share", lang), **LAYOUT)
    fig.update_yaxes(tickformat=".0%")
    return fig


def alerts_vs_capacity(alerts: list[dict], lang: str = "en") -> go.Figure:
    """Alerts per day against the team's daily review capacity."""
    days = [a["day"] for a in alerts]
    fig = go.Figure()
    fig.add_bar(x=days, y=[a["alerts"] for a in alerts], name=t("monitor.alerts", lang),
                marker_color=[FRAUD if a["over_capacity"] else NORMAL for a in alerts])
    fig.add_scatter(x=days, y=[a["capacity"] for a in alerts], mode="lines", name=t("monitor.capacity_line", lang),
                    line=dict(color="black", dash="dash"))
    fig.update_layout(title=t("monitor.alerts_title", lang), **LAYOUT)
    return fig


def rule_hits_over_time(rows: list[dict], lang: str = "en") -> go.Figure:
    """Each rule's hit rate per day."""
    fig = go.Figure()
    rules = [k for k in (rows[0] if rows else {}) if k != "day"]
    for rule in rules:
        fig.add_scatter(x=[r["day"] for r in rows], y=[r[rule] for r in rows], mode="lines", name=rule)
    fig.update_layout(title=t("monitor.rules_title", lang), yaxis_title=t("rules.m.hit_rate", lang), **LAYOUT)
    fig.update_yaxes(tickformat=".1%")
    return fig
