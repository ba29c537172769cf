"""HTML renderings of an executed notebook that open anywhere, with no network.

Two pages per notebook, side by side in outputs/<profile>/:
  <name>.html        the reader's report: prose, tables, figures; no code, no parameters cell, no stderr
                     (warnings), no progress bars; a provenance section at the end says what ran, with which
                     parameters, at which commit, and links the notebook with its code
  <name>.code.html   the whole executed notebook, code included

Maths is converted from LaTeX to MathML when the page is written (latex2mathml; browsers draw MathML natively),
so no page loads MathJax or require.js from a CDN: the template (templates/ssmrec) leaves every script from the
network out. A formula latex2mathml cannot read is shown as its LaTeX source in a <code> element and logged.
"""

from __future__ import annotations

import copy
import html
import logging
import re
from pathlib import Path

from ..utils import atomic_write_text, git_sha

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
CODE_SUFFIX = ".code.html"  # the full rendering beside the reader's <name>.html
HIDDEN_TAGS = {"parameters", "injected-parameters"}  # papermill's cells: shown in the provenance section instead
PROGRESS_LINE = re.compile(r"^.*\d+%\|.*\| *\d+/\d+ \[.*$\n?", re.M)  # a tqdm bar printed under papermill


def latex_to_mathml(tex: str, display: bool = False) -> str:
    """One formula as a MathML element (<math display="inline|block">); on a LaTeX construct latex2mathml cannot
    read, the source in a <code class="latex"> element instead (the page still renders; the log says which)."""
    from latex2mathml.converter import convert

    try:
        mathml = convert(tex.strip(), display="block" if display else "inline")
    except Exception as e:  # latex2mathml raises many types (its own, IndexError, KeyError) on unknown input
        log.warning("LaTeX not converted to MathML (%s: %s): %s", type(e).__name__, e, tex)
        return f'<code class="latex">{html.escape(tex.strip())}</code>'
    # HTML knows <math> without the namespace; with it, nbconvert's heading anchors (ElementTree) would rewrite
    # a formula in a heading as <ns0:math>, which the browser shows as plain text
    return mathml.replace(' xmlns="http://www.w3.org/1998/Math/MathML"', "", 1)


def _exporter(reader: bool):
    """nbconvert's HTMLExporter with the ssmrec template and a Markdown renderer that writes MathML."""
    from jinja2 import pass_context
    from nbconvert import HTMLExporter
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    class MathMLRenderer(IPythonRenderer):
        def inline_math(self, body: str) -> str:
            return latex_to_mathml(body)

        def block_math(self, body: str) -> str:
            return latex_to_mathml(body, display=True)

        def latex_environment(self, name: str, body: str) -> str:
            return latex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)

    class ReportExporter(HTMLExporter):
        @pass_context  # as HTMLExporter's own filter: the template passes the cell in the context
        def markdown2html(self, context, source):
            cell = context.get("cell", {})
            renderer = MathMLRenderer(
                escape=False, attachments=cell.get("attachments", {}), embed_images=self.embed_images,
                path=context.get("resources", {}).get("metadata", {}).get("path", ""),
                anchor_link_text=self.anchor_link_text, exclude_anchor_links=self.exclude_anchor_links,
                **self.lexer_options)
            return MarkdownWithMath(renderer=renderer).render(source)

    exporter = ReportExporter(template_name="ssmrec", extra_template_basedirs=[str(TEMPLATES)])
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    exporter.exclude_input = reader
    return exporter


def provenance_markdown(nb, code_page: str) -> str:
    """The reader's report's closing section: notebook, parameters, run time, commit, and the page with code."""
    meta = nb.metadata.get("papermill", {})
    params = meta.get("parameters") or {}
    lines = ["## About this report", "",
             f"Rendered from `{meta.get('input_path') or 'the notebook'}` (executed by the workbook through "
             f"papermill) at git `{git_sha()}`. The notebook with its code: [{code_page}]({code_page}). "
             "Results index: [index.html](index.html).", ""]
    if meta.get("start_time"):
        took = f", {meta['duration']:.1f} s" if isinstance(meta.get("duration"), (int, float)) else ""
        lines += [f"Executed {meta['start_time'][:19].replace('T', ' ')} UTC{took}.", ""]
    if params:  # an HTML table: a value may hold any character, '|' included
        rows = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td><code>{html.escape(repr(v))}</code></td></tr>"
                       for k, v in params.items())
        lines += [f"<table><tr><th>parameter</th><th>value</th></tr>{rows}</table>"]
    return "\n".join(lines) + "\n"


def reader_notebook(nb, code_page: str):
    """A copy of `nb` for readers: papermill's parameter cells and stderr streams left out, provenance appended."""
    import nbformat

    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        if HIDDEN_TAGS & set(cell.get("metadata", {}).get("tags", [])):
            continue
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
            for o in cell.outputs:
                if o.output_type == "stream":
                    o.text = PROGRESS_LINE.sub("", o.text)
            cell.outputs = [o for o in cell.outputs if o.output_type != "stream" or o.text.strip()]
        cells.append(cell)
    cells.append(nbformat.v4.new_markdown_cell(provenance_markdown(nb, code_page),
                                               metadata={"tags": ["ssmrec-provenance"]}))
    nb.cells = cells
    return nb


def render_html(ipynb: str | Path) -> tuple[Path, Path]:
    """Write <stem>.html (the reader's report) and <stem>.code.html (with code) beside `ipynb`; return both."""
    import nbformat

    ipynb = Path(ipynb)
    nb = nbformat.read(str(ipynb), as_version=4)
    reader, code = ipynb.with_suffix(".html"), ipynb.with_name(ipynb.stem + CODE_SUFFIX)
    body, _ = _exporter(reader=False).from_notebook_node(nb)
    atomic_write_text(code, body)
    body, _ = _exporter(reader=True).from_notebook_node(reader_notebook(nb, code.name))
    atomic_write_text(reader, body)
    return reader, code
