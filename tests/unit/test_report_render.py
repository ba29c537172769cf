"""The HTML the workbook writes: maths as MathML with no script from the network, a reader's report without code
beside the full notebook, and an index that opens with the results beside the paper (render.py, landing.py,
workbook.write_index). The smoke workbook's pages are opened in Chromium in tests/notebooks."""

import html
import json
import re
import shutil

import nbformat
import pandas as pd
import pytest

from ssmrec_lib.report import landing, paper
from ssmrec_lib.report.render import CODE_SUFFIX, latex_to_mathml, render_html
from ssmrec_lib.report.workbook import NOTEBOOKS, Step, write_index

EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\ssrc=|<link[^>]*href=\"https?:|cdnjs|unpkg|jsdelivr|mathjax", re.I)


def test_latex_becomes_mathml_without_namespace_and_bad_latex_stays_readable():
    m = latex_to_mathml(r"\bar A h_{k-1}")
    assert m.startswith('<math display="inline">') and "<mover>" in m and "xmlns" not in m
    assert latex_to_mathml("x", display=True).startswith('<math display="block">')
    bad = latex_to_mathml(r"\frac{1}{")
    assert bad.startswith('<code class="latex">') and "\\frac{1}{" in bad


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_formula_in_the_notebooks_renders_as_mathml_with_no_network_script(path, tmp_path):
    src = tmp_path / path.name
    shutil.copy(path, src)
    reader, code = render_html(src)
    n_math = sum(''.join(c["source"]).count("$") for c in json.loads(path.read_text())["cells"]
                 if c["cell_type"] == "markdown")
    for page in (reader, code):
        text = page.read_text()
        assert not EXTERNAL_SCRIPT.search(text), (page.name, EXTERNAL_SCRIPT.search(text).group(0))
        assert 'class="latex"' not in text, f"{page.name}: a formula latex2mathml could not read"
        assert "ns0:" not in text  # a formula in a heading is still MathML, not a prefixed copy
        if n_math:
            assert text.count("<math") >= n_math // 4, page.name  # at least one <math> per $...$ pair (or $$)
            prose = re.sub(r"<math.*?</math>|<pre.*?</pre>|<code.*?</code>|<style.*?</style>", "", text, flags=re.S)
            assert not re.search(r"\$[^$\s<>][^$<>\n]*\$", prose), f"{page.name}: raw LaTeX left"


def _executed(tmp_path):
    """A small 'executed' notebook: papermill's two parameter cells, prose with maths, stdout and stderr."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "quick"', metadata={"tags": ["parameters"]})
    injected = nbformat.v4.new_code_cell('profile = "smoke"\nout_dir = "outputs/smoke"',
                                         metadata={"tags": ["injected-parameters"]})
    prose = nbformat.v4.new_markdown_cell("# Title\n\nThe state $h_k = \\bar A h_{k-1}$ and\n\n$$y = Mx$$")
    run = nbformat.v4.new_code_cell("secret_code_line = 1\nprint('numbers')")
    run.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                          text="epoch 0: 100%|###| 16/16 [00:01<00:00, 9.09it/s]\nnumbers\n"),
                   nbformat.v4.new_output("stream", name="stderr", text="progress 3/10 [\n")]
    nb.cells = [params, injected, prose, run]
    nb.metadata["papermill"] = {"input_path": "notebooks/02_ssm_theory.ipynb", "start_time": "2026-01-02T03:04:05",
                                "duration": 1.5, "parameters": {"profile": "smoke", "out_dir": "outputs/smoke"}}
    path = tmp_path / "02_ssm_theory.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_the_readers_report_hides_code_and_parameters_and_ends_with_provenance(tmp_path):
    reader, code = render_html(_executed(tmp_path))
    assert (reader.name, code.name) == ("02_ssm_theory.html", "02_ssm_theory" + CODE_SUFFIX)
    r, c = reader.read_text(), code.read_text()
    assert "secret_code_line" not in r and "secret_code_line" in c
    assert 'profile = "quick"' not in r and "injected" not in r  # neither parameters cell in the report
    assert "numbers" in r and "progress 3/10" not in r and "progress 3/10" in c  # stderr only with the code
    assert "16/16 [" not in r and "16/16 [" in c  # progress bars too
    assert r.index("Title") < r.index("About this report")  # prose first, provenance at the end
    assert f'href="{code.name}"' in r and "notebooks/02_ssm_theory.ipynb" in r
    assert "<code>out_dir</code>" in r and "'outputs/smoke'" in html.unescape(r)
    assert r.count("<math") == c.count("<math") == 2 and 'display="block"' in r


def _results(tmp_path):
    rows = []
    for dataset in ("ml-1m", "synthetic"):
        for model in ("sasrec", "mamba4rec"):
            for seed in (0, 1):
                rows.append({"dataset": dataset, "model": model, "seed": seed, "run_id": f"{model}_{dataset}_s{seed}",
                             "hr@10": 0.2 + seed / 100, "ndcg@10": 0.1, "mrr@10": 0.05, "params": 1000,
                             "params_wo_emb": 100, "protocol": f"split=loo; dataset={dataset}", "git_sha": "abcdef1234567890"})
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)  # as before the overrides column


def test_the_headline_puts_every_dataset_beside_the_paper_with_protocol_and_figures(tmp_path):
    assert "No results yet" in landing.headline_html(tmp_path)
    _results(tmp_path)
    (tmp_path / "04_streaming.png").write_bytes(b"\x89PNG")
    page = landing.headline_html(tmp_path)
    assert paper.DATASET_TABLES["ml-1m"][0] in page and "synthetic (not in the paper)" in page
    assert "Protocol: split=loo; dataset=ml-1m" in page and "<code>abcdef123456</code>" in page
    ml = page[page.index(paper.DATASET_TABLES["ml-1m"][0]):page.index("synthetic (not in the paper)")]
    assert ml.count("<td>paper</td>") == 2 and "<td>ours (2 seeds)</td>" in ml and "0.2050" in ml  # mean over seeds
    assert "<img src='04_streaming.png'" in page and "05_quality_vs_latency.png" in page and "not written yet" in page


def test_index_opens_with_the_headline_and_links_the_report_before_its_code(tmp_path):
    _results(tmp_path)
    steps = [Step("02_ssm_theory.ipynb", "02_ssm_theory", {}, "SSM theory", status="ok",
                  files=["02_ssm_theory.ipynb", "02_ssm_theory.html", "02_ssm_theory" + CODE_SUFFIX])]
    page = write_index(tmp_path, "smoke", steps).read_text()
    assert page.index("Headline") < page.index("<h2>Reports") < page.index("<h2>Runs")
    assert page.index('href="02_ssm_theory.html"') < page.index(f'href="02_ssm_theory{CODE_SUFFIX}"')
    assert not EXTERNAL_SCRIPT.search(page)
    assert str(tmp_path) not in page  # links are relative: the folder can move


def test_the_browser_check_finds_what_an_offline_reader_would_miss(tmp_path):
    from ssmrec_lib.report.browser import check_reports, find_browser

    if not find_browser():
        pytest.skip("no Chromium on PATH: `make test` installs Debian's chromium where apt-get is usable as root")
    (tmp_path / "bad.html").write_text(
        '<!doctype html><html><head><script src="https://cdn.example.org/x.js"></script></head><body>'
        '<p>The state $\\bar A$ and \\(x\\)</p><img src="missing.png"><script>console.error("boom")</script>'
        '</body></html>')
    reader, _ = render_html(_executed(tmp_path))
    checks = {c.page: c for c in check_reports(tmp_path, tmp_path / "screens")}
    bad = checks["bad.html"]
    assert bad.raw_latex == ["$\\bar A$", "\\("] and bad.broken_images[0].endswith("missing.png")
    assert any("boom" in e for e in bad.console_errors) and bad.external_requests == ["https://cdn.example.org/x.js"]
    assert checks[reader.name].problems() == [] and (tmp_path / "screens" / "02_ssm_theory.png").stat().st_size > 1000


def test_console_to_log_keeps_library_and_kernel_noise_off_the_terminal(tmp_path, capfd):
    import logging
    import os

    from ssmrec_lib.report.workbook import console_to_log

    log = tmp_path / "workbook.log"
    with console_to_log(log):
        logging.getLogger("traitlets").warning("Alternative text is missing on 2 image(s).")
        os.write(2, b"[IPKernelApp] WARNING | Kernel is running over TCP without encryption.\n")
        print("[1/2] step ... ok", flush=True)
    logging.getLogger("traitlets").warning("after")  # handlers restored: this one is not in the file
    out, err = capfd.readouterr()
    text = log.read_text()
    assert "Alternative text is missing" in text and "Kernel is running over TCP" in text and "after" not in text
    assert "[1/2] step ... ok" in out and "Kernel is running" not in err and "Alternative text" not in err


NBCONVERT_PLACEHOLDER = "No description has been provided for this image"  # nbconvert's alt where none was given


def _displayed(fig):
    """The display_data output a kernel with matplotlib's inline backend sends for `fig` (PNG from a formatter
    registered for Figure, as matplotlib_inline registers it; metadata from the figure's own mimebundle)."""
    import base64
    import io

    from IPython.core.formatters import DisplayFormatter
    from matplotlib.figure import Figure

    def png(f):
        buf = io.BytesIO()
        f.savefig(buf, format="png", dpi=40)
        return base64.b64encode(buf.getvalue()).decode()

    fmt = DisplayFormatter()
    fmt.formatters["image/png"].for_type(Figure, png)
    data, md = fmt.format(fig)
    return nbformat.v4.new_output("display_data", data=data, metadata=md)


def test_every_report_figure_reaches_the_html_with_its_alternative_text(tmp_path):
    import matplotlib.pyplot as plt
    import numpy as np

    from ssmrec_lib.report import plotting, theory

    figs = [plotting.heatmap(np.eye(4), "SSD: semiseparable M"),
            plotting.discretization_responses(theory.discretization_responses(a=-1.0, dts=(0.1, 0.5), kind="step")),
            plotting.cost_curves(theory.cost_table(lengths=(50, 200)))]
    plain = plt.figure()  # not from plotting: nbconvert's placeholder, so the check below can fail
    plain.add_subplot().plot([0, 1])
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("fig", outputs=[_displayed(f)]) for f in [*figs, plain]]
    path = tmp_path / "figs.ipynb"
    nbformat.write(nb, str(path))
    for page in render_html(path):
        alts = [html.unescape(a) for a in re.findall(r'<img[^>]*\balt="([^"]*)"', page.read_text())]
        assert len(alts) == len(figs) + 1 == len(re.findall(r"<img\b", page.read_text())), page.name
        assert alts[0] == "SSD: semiseparable M: output position t against source position s"
        assert alts[1].startswith("step response y(t) of the discretised SSM") and "dt = 0.1, 0.5" in alts[1]
        assert alts[2].startswith("Token-mixing cost vs sequence length: multiply-adds per sequence") \
            and "(attention" in alts[2]  # the legend's entries
        assert alts[3] == NBCONVERT_PLACEHOLDER
    plt.close("all")


def test_describe_names_titles_axes_and_legend_and_skips_colour_bars():
    import numpy as np

    from ssmrec_lib.report import plotting

    fig = plotting.heatmap(np.eye(3), "M")  # a colour bar axis (label "weight", no x label) is left out
    assert plotting.describe(fig) == "M: output position t against source position s"
    fig.suptitle("Overall")
    assert plotting.describe(fig).startswith("Overall; M: ")
    fig.alt = "set by hand"
    assert fig._repr_mimebundle_() == ({}, {"image/png": {"alt": "set by hand"}})
