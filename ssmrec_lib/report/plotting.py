"""Figures for the notebooks. Every function returns a matplotlib Figure (the notebook shows and saves it);
axes carry units; nothing here reads files or trains models.

Alternative text: every figure here is a `ReportFigure`, which tells Jupyter a text description of itself (the
output's metadata `image/png.alt`, IPython's `_repr_mimebundle_` protocol); the HTML reports write it as the
<img> alt (templates/ssmrec). The text is the figure's `alt` where a function sets one, else `describe(fig)`:
each panel's title, "y against x" from its axis labels, and its legend entries.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib

if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "inline"):
    matplotlib.use("Agg")  # headless (papermill, CI); Jupyter keeps its inline backend
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure
import pandas as pd
import seaborn as sns

sns.set_theme(style="whitegrid", context="notebook")


MAX_LEGEND = 8  # legend entries named in a description


def describe(fig: Figure) -> str:
    """A figure in words for readers who cannot see it: the suptitle, then per panel its title, "y against x"
    and the legend's entries (panels with neither a title nor both axis labels, such as colour bars, are left out)."""
    parts = [fig.get_suptitle()] if fig.get_suptitle() else []
    for ax in fig.axes:
        title, x, y = ax.get_title(), ax.get_xlabel(), ax.get_ylabel()
        if not title and not (x and y):
            continue
        text = title + (f"{': ' if title else ''}{y} against {x}" if x and y else "")
        leg = ax.get_legend()
        names = [t.get_text() for t in leg.get_texts()] if leg is not None else []
        if names:
            text += f" ({', '.join(names[:MAX_LEGEND])}{', ...' if len(names) > MAX_LEGEND else ''})"
        parts.append(text)
    return "; ".join(parts) or "figure without titles or axis labels"


class ReportFigure(Figure):
    """A Figure that gives Jupyter its alternative text: displaying it adds {"image/png": {"alt": ...}} to the
    output's metadata (the PNG itself still comes from the inline backend's formatter)."""

    alt: str = ""  # set by a plotting function where its titles say too little; else describe(self)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {}, {"image/png": {"alt": self.alt or describe(self)}}


def _fig(ncols: int = 1, width: float = 6.0, height: float = 4.0):
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False, constrained_layout=True,
                             FigureClass=ReportFigure)
    return fig, axes[0]


# ---------------------------------------------------------------- data exploration (01)

def sequence_length_distribution(lengths_by_dataset: dict[str, np.ndarray]) -> plt.Figure:
    """Histogram (log x) of interactions per user, one colour per dataset."""
    fig, (ax,) = _fig()
    df = pd.concat([pd.DataFrame({"dataset": k, "length": np.asarray(v)}) for k, v in lengths_by_dataset.items()])
    sns.histplot(df, x="length", hue="dataset", log_scale=True, element="step", stat="density",
                 common_norm=False, ax=ax)
    ax.set_xlabel("interactions per user (log scale)")
    ax.set_ylabel("density")
    ax.set_title("Sequence length distribution")
    return fig


def popularity_long_tail(counts_by_dataset: dict[str, np.ndarray]) -> plt.Figure:
    """Item interaction counts sorted by rank (log-log) and the cumulative share of interactions."""
    fig, (ax1, ax2) = _fig(2, width=5.5)
    for name, counts in counts_by_dataset.items():
        c = np.sort(np.asarray(counts))[::-1]
        c = c[c > 0]
        rank = np.arange(1, len(c) + 1)
        ax1.loglog(rank, c, label=name)
        ax2.plot(rank / len(c) * 100, np.cumsum(c) / c.sum() * 100, label=name)
    ax1.set_xlabel("item popularity rank")
    ax1.set_ylabel("interactions per item")
    ax1.set_title("Popularity long tail (log-log)")
    ax2.set_xlabel("top items (% of catalogue)")
    ax2.set_ylabel("share of interactions (%)")
    ax2.set_title("Concentration of interactions")
    ax1.legend()
    return fig


def activity_over_time(timestamps_by_dataset: dict[str, np.ndarray], freq: str = "MS") -> plt.Figure:
    """Interactions per period (timestamps in seconds since the epoch)."""
    fig, (ax,) = _fig(width=8)
    for name, ts in timestamps_by_dataset.items():
        s = pd.Series(1, index=pd.to_datetime(np.asarray(ts), unit="s")).resample(freq).sum()
        ax.plot(s.index, s.values, label=name)
    ax.set_xlabel("date")
    ax.set_ylabel("interactions per month" if freq == "MS" else f"interactions per {freq}")
    ax.set_title("Activity over time")
    ax.legend()
    return fig


# ---------------------------------------------------------------- results (03, 05)

def learning_curves(log: pd.DataFrame, metric: str = "valid_ndcg@10") -> plt.Figure:
    """Training loss and a validation metric per epoch (log.jsonl as a DataFrame)."""
    fig, (ax1, ax2) = _fig(2, width=5)
    if log.empty:  # a model fitted by counting (Pop) has no epochs
        for ax in (ax1, ax2):
            ax.text(0.5, 0.5, "no training epochs\n(model fitted by counting)", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_axis_off()
        return fig
    ax1.plot(log["epoch"], log["train_loss"], marker="o")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss (cross-entropy, nats)")
    ax1.set_title("Training loss")
    if metric in log:
        ax2.plot(log["epoch"], log[metric], marker="o", color="C1")
        best = log[metric].idxmax()
        ax2.axvline(log.loc[best, "epoch"], color="grey", ls="--", lw=1, label="best epoch")
        ax2.legend()
    ax2.set_xlabel("epoch")
    ax2.set_ylabel(metric.replace("_", " "))
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax2.set_title("Validation (early-stopping metric)")
    return fig


def learning_curves_by_model(logs: dict[str, pd.DataFrame], metric: str = "valid_ndcg@10") -> plt.Figure:
    """Several runs on one figure: training loss (left) and the validation metric (right) per epoch; the best
    epoch of each run is marked with a star. logs: model name -> tables.load_log(run_dir)."""
    fig, (ax1, ax2) = _fig(2, width=5.5)
    for i, (name, log) in enumerate(logs.items()):
        if log.empty:
            continue
        ax1.plot(log["epoch"], log["train_loss"], color=f"C{i}", label=name)
        if metric in log:
            ax2.plot(log["epoch"], log[metric], color=f"C{i}", label=name)
            best = log[metric].idxmax()
            ax2.plot(log.loc[best, "epoch"], log.loc[best, metric], marker="*", ms=12, color=f"C{i}")
    ax1.set_ylabel("training loss (cross-entropy, nats)")
    ax1.set_title("Training loss")
    ax2.set_ylabel(metric.replace("_", " "))
    ax2.set_title("Validation (early-stopping metric; star = best epoch)")
    for ax in (ax1, ax2):
        ax.set_xlabel("epoch")
        ax.legend(fontsize="small")
    return fig


def compare_curves(curves: pd.DataFrame, metric: str = "valid_ndcg@10") -> plt.Figure:
    """Validation metric against training steps, one panel per model, one line per training path (bench training
    --compare: the old and the new path from the same seed). curves: model, path, step, <metric>."""
    models = list(dict.fromkeys(curves["model"]))
    fig, axes = _fig(max(1, len(models)), width=3.6, height=3.2)
    for ax, name in zip(axes, models):
        for i, (path, g) in enumerate(curves[curves["model"] == name].groupby("path", sort=False)):
            ax.plot(g["step"], g[metric], marker="o", color=f"C{i}", label=path)
        ax.set_title(name)
        ax.set_xlabel("training steps")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.legend(fontsize="small")
    axes[0].set_ylabel(metric.replace("_", " "))
    return fig


def quality_vs_latency(df: pd.DataFrame, quality: str = "ndcg@10", latency: str = "latency_ms") -> plt.Figure:
    """Scatter of a quality metric against batch-1 latency, one point per model (mean over seeds)."""
    fig, (ax,) = _fig(width=7)
    g = df.groupby("model", as_index=False)[[quality, latency]].mean()
    sns.scatterplot(g, x=latency, y=quality, hue="model", s=120, ax=ax)
    for _, r in g.iterrows():
        ax.annotate(r["model"], (r[latency], r[quality]), textcoords="offset points", xytext=(6, 4))
    ax.set_xscale("log")
    ax.set_xlabel("batch-1 latency (ms, log scale)")
    ax.set_ylabel(quality.upper())
    ax.set_title("Quality vs latency")
    return fig


def metric_bars(df: pd.DataFrame, metrics: Sequence[str] = ("hr@10", "ndcg@10", "mrr@10")) -> plt.Figure:
    """Bars per model for each metric, with the spread over seeds as error bars (sd).

    `df`: one row per run (tables.collect_runs). Where a model ran in several configurations, only the one
    validation chose (tables.choose_variants) is drawn, so the error bar is a spread over seeds only."""
    from .tables import choose_variants

    df = choose_variants(df) if "valid_ndcg@10" in df else df
    long = df.melt(id_vars=["model"], value_vars=list(metrics), var_name="metric", value_name="value")
    fig, (ax,) = _fig(width=8)
    sns.barplot(long, x="metric", y="value", hue="model", errorbar="sd", ax=ax)
    ax.set_xlabel("")
    ax.set_ylabel("value (full ranking, test split)")
    ax.set_title("Test metrics per model (error bars: sd over seeds)")
    return fig


# ---------------------------------------------------------------- efficiency (04)

def training_cost(df: pd.DataFrame) -> plt.Figure:
    """Per model (bench/training.py bench_training rows): seconds per training epoch and peak memory growth."""
    fig, (ax1, ax2) = _fig(2, width=4.5)
    colors = [f"C{i}" for i in range(len(df))]
    ax1.bar(df["model"], df["sec_per_epoch"], color=colors)
    ax1.set_ylabel("seconds per training epoch")
    ax1.set_title(f"Training time ({df['dataset'].iloc[0]}, {df['profile'].iloc[0]} profile)")
    ax2.bar(df["model"], df["peak_mem_mb"], color=colors)
    ax2.set_ylabel("peak memory growth while training (MB)")
    ax2.set_title("Training memory")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", rotation=30)
    return fig


def latency_vs_length(df: pd.DataFrame, y: str = "latency_ms_median", ylabel: str = "batch-1 latency (ms)") -> plt.Figure:
    """Log-log lines of a cost against sequence length, one per model."""
    fig, (ax,) = _fig(width=7)
    sns.lineplot(df, x="length", y=y, hue="model", marker="o", ax=ax)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("sequence length L (log scale)")
    ax.set_ylabel(f"{ylabel} (log scale)")
    ax.set_title(f"{ylabel} vs sequence length")
    return fig


def heatmap(matrix: np.ndarray, title: str, xlabel: str = "source position s", ylabel: str = "output position t",
            center: float | None = 0.0) -> plt.Figure:
    """A (L, L) mixing matrix (semiseparable / quasiseparable / attention) as a heatmap."""
    fig, (ax,) = _fig(width=5.5, height=4.5)
    sns.heatmap(np.asarray(matrix), cmap="RdBu_r", center=center, square=True, ax=ax,
                cbar_kws={"label": "weight"})
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


# ---------------------------------------------------------------- SSM theory (02)

def discretization_responses(df: pd.DataFrame, ylabel: str = "step response y(t)") -> plt.Figure:
    """One panel per discretisation method: the discrete response for each dt against the exact curve."""
    methods = [m for m in df["method"].unique() if m != "exact"]
    fig, axes = _fig(len(methods), width=4.2, height=3.6)
    exact = df[df["method"] == "exact"]
    for ax, m in zip(axes, methods):
        ax.plot(exact["t"], exact["y"], color="black", lw=2, label="exact (continuous)")
        for i, (dt, g) in enumerate(df[df["method"] == m].groupby("dt")):
            ax.step(g["t"], g["y"], where="post", color=f"C{i}", label=f"dt = {dt:g}")
        ax.set_title(m)
        ax.set_xlabel("time t (units of 1/|a|)")
    axes[0].set_ylabel(ylabel)
    axes[-1].legend(fontsize="small")
    dts = ", ".join(f"{dt:g}" for dt in sorted(df.loc[df["method"] != "exact", "dt"].unique()))
    fig.alt = (f"{ylabel} of the discretised SSM against time, one panel per rule ({', '.join(methods)}), "
               f"for dt = {dts}, each against the exact continuous response")
    return fig


def recurrence_vs_convolution(res: dict) -> plt.Figure:
    """The same LTI SSM run as a recurrence and as a convolution: the two curves coincide."""
    fig, (ax,) = _fig(width=8, height=3.5)
    ax.plot(res["t"], res["y_recurrence"], lw=3, alpha=0.5, label="recurrence h_k = Ab h_{k-1} + Bb x_k")
    ax.plot(res["t"], res["y_convolution"], "k--", lw=1, label="convolution y = K * x")
    ax.set_xlabel("step k")
    ax.set_ylabel("output y_k")
    ax.set_title(f"Recurrence == convolution (max |difference| = {res['max_abs_diff']:.1e})")
    ax.legend()
    return fig


def selectivity(df: pd.DataFrame) -> plt.Figure:
    """State of an LTI vs a selective SSM on a stream with reset tokens, and the selective step size."""
    fig, axes = plt.subplots(2, 1, figsize=(8, 5), sharex=True, constrained_layout=True, FigureClass=ReportFigure)
    axes[0].plot(df["t"], df["h_lti"], label="LTI (fixed dt)")
    axes[0].plot(df["t"], df["h_selective"], label="selective (dt depends on x_t)")
    for t in df.loc[df["is_reset"], "t"]:
        for ax in axes:
            ax.axvline(t, color="grey", ls=":", lw=1)
    axes[0].set_ylabel("state h_t")
    axes[0].set_title("Selectivity: forgetting on demand (dotted lines: reset tokens)")
    axes[0].legend()
    axes[1].plot(df["t"], df["dt_selective"], color="C2")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("dt_t (log scale)")
    axes[1].set_xlabel("position t")
    return fig


def cost_curves(df: pd.DataFrame) -> plt.Figure:
    """Leading-term multiply-adds against L (log-log) for attention and the SSM forms."""
    fig, (ax,) = _fig(width=7)
    for col in df.columns:
        ax.loglog(df.index, df[col], marker="o", label=col)
    ax.set_xlabel("sequence length L (log scale)")
    ax.set_ylabel("multiply-adds per sequence (log scale)")
    ax.set_title("Token-mixing cost vs sequence length")
    ax.legend()
    return fig


def streaming_vs_reencode(df: pd.DataFrame) -> plt.Figure:
    """Per model: ms for one new event with a stored state (solid; dotted: the Python step where a fused C++ step
    exists) vs re-encoding the history (dashed), log-log."""
    fig, (ax,) = _fig(width=7.5)
    for i, (model, g) in enumerate(df.groupby("model", sort=False)):
        g = g.sort_values("length")
        fused = "step" in g and (g["step"] == "fused C++").any()
        ax.plot(g["length"], g["update_ms"], marker="o", color=f"C{i}",
                label=f"{model}: update with state" + (" (fused C++)" if fused else ""))
        if fused:
            ax.plot(g["length"], g["update_python_ms"], marker=".", ls=":", color=f"C{i}",
                    label=f"{model}: update (Python step)")
        ax.plot(g["length"], g["reencode_ms"], marker="s", ls="--", color=f"C{i}", label=f"{model}: re-encode")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("history length L (log scale)")
    ax.set_ylabel("ms per new event, batch " + str(int(df["batch"].iloc[0])) + " (log scale)")
    ax.set_title("Streaming inference: stored state vs re-encoding")
    ax.legend(fontsize="small", ncol=2)
    return fig


# ---------------------------------------------------------------- hyperparameter studies (05)

def study_history(trials: pd.DataFrame, importances: dict[str, float] | None = None,
                  title: str = "") -> plt.Figure:
    """Left: each trial's validation NDCG@10 (pruned trials at their last reported value, hollow) and the best so
    far; right: parameter importances (fANOVA) when given. `trials`: tune.trials_table(study)."""
    fig, axes = _fig(2 if importances else 1, width=5.5)
    ax = axes[0]
    done = trials[trials["state"] == "COMPLETE"]
    ax.plot(done["number"], done["value"], "o", color="C0", label="completed")
    pruned = trials[trials["state"] == "PRUNED"]
    if len(pruned) and "value" in pruned:
        ax.plot(pruned["number"], pruned["value"], "o", mfc="none", color="C1", label="pruned")
    if len(done):
        best = done.sort_values("number")["value"].cummax()
        ax.step(done.sort_values("number")["number"], best, where="post", color="C2", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation NDCG@10")
    ax.set_title(title or "Search history")
    ax.legend(frameon=False)
    if importances:
        names = list(importances)[::-1]
        axes[1].barh(names, [importances[n] for n in names], color="C0")
        axes[1].set_xlabel("importance (fANOVA, share of variance)")
        axes[1].set_title("Parameter importance")
    return fig
