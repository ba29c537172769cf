"""The headline that opens outputs/<profile>/index.html: the answer before the list of reports.

Everything here is read from files the workbook's notebooks wrote into the profile folder (nothing is trained or
recomputed): results.csv (05_results: one row per run whose identity matches the code), with our mean test
metrics beside the paper's per dataset (tables.beside_paper), the protocol line each row carries, and the figures
05_quality_vs_latency.png and 04_streaming.png, linked as files beside the page.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from . import paper, tables

FIGURES = (("05_quality_vs_latency.png", "Quality against batch-1 latency (05_results)"),
           ("04_streaming.png", "Streaming inference: cost per new interaction as the history grows "
                                "(04_latency_profiling)"))
SHOWN = ["model", "source", "hr@10", "ndcg@10", "mrr@10", "params", "params_wo_emb", "backbone", "overrides"]


def read_results(out_dir: Path) -> pd.DataFrame:
    """results.csv of the profile (empty when 05_results has not written it). A file from before the
    `overrides` / `valid_ndcg@10` columns reads as one configuration per model."""
    path = Path(out_dir) / "results.csv"
    if not path.is_file():
        return pd.DataFrame()
    res = pd.read_csv(path)
    if "overrides" not in res:
        res["overrides"] = "{}"
    if "valid_ndcg@10" not in res:
        res["valid_ndcg@10"] = float("nan")
    res["overrides"] = res["overrides"].fillna("{}")
    return res


def _table_html(df: pd.DataFrame) -> str:
    df = df[[c for c in SHOWN if c in df]].copy()
    if "overrides" in df and (df["overrides"].fillna("{}") == "{}").all():
        df = df.drop(columns="overrides")  # one configuration everywhere: nothing to name
    fmt = {m: "{:.4f}".format for m in ("hr@10", "ndcg@10", "mrr@10")}
    fmt.update({c: "{:,.0f}".format for c in ("params", "params_wo_emb")})
    body = df.to_html(index=False, na_rep="-", formatters=fmt, border=0, classes="results", escape=True)
    return body


def headline_html(out_dir: str | Path) -> str:
    """The headline section: per dataset our numbers beside the paper's with the protocol, then the figures."""
    out_dir = Path(out_dir)
    res = read_results(out_dir)
    parts = ["<h2>Headline: our numbers beside the paper's</h2>"]
    if res.empty:
        parts.append("<p class='pending'>No results yet: <code>results.csv</code> is written by 05_results, the "
                     "workbook's last notebook.</p>")
    else:
        parts.append("<p>Test split, mean over seeds, every metric at 10; each <b>ours</b> row is read from "
                     "<a href='results.csv'>results.csv</a> (one row per run, each naming its run folder), each "
                     "<b>paper</b> row from the paper's tables. Where a model ran in several configurations, "
                     "validation NDCG@10 chose one (<code>overrides</code>).</p>")
        for dataset in sorted(res["dataset"].unique()):
            title, _, stand_in = paper.reference(dataset)  # a stand-in names the paper's table it stands for
            proto = " / ".join(res.loc[res["dataset"] == dataset, "protocol"].dropna().astype(str).unique()) \
                if "protocol" in res else ""
            shas = sorted(res.loc[res["dataset"] == dataset, "git_sha"].dropna().astype(str).str[:12].unique()) \
                if "git_sha" in res else []
            parts.append(f"<h3>{html.escape(title)}</h3>"
                         + (f"<p><b>{html.escape(stand_in)}</b></p>" if stand_in else "")
                         + f"<p class='protocol'>Protocol: {html.escape(proto or 'not recorded')}<br>"
                         f"Trained at git {', '.join(f'<code>{html.escape(s)}</code>' for s in shas) or '-'}</p>")
            parts.append(_table_html(tables.beside_paper(res, dataset)))
    figs = []
    for name, caption in FIGURES:
        if (out_dir / name).is_file():
            figs.append(f"<figure><a href='{name}'><img src='{name}' alt='{html.escape(caption)}'></a>"
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        else:
            figs.append(f"<p class='pending'>{html.escape(caption)}: not written yet ({name}).</p>")
    parts.append("<div class='figures'>" + "".join(figs) + "</div>")
    return "\n".join(parts)
