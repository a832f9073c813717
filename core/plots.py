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
