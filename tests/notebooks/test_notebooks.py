"""The notebooks as committed (thin, parameterised, no outputs) and the smoke workbook end to end."""

import ast
import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from ssmrec_lib.profiles import WORKBOOK_PROFILES as PROFILES
from ssmrec_lib.report.render import CODE_SUFFIX
from ssmrec_lib.report.workbook import NOTEBOOKS, plan, run_workbook

NB_FILES = sorted(NOTEBOOKS.glob("*.ipynb"))
EXPECTED = ["01_data_exploration", "02_ssm_theory", "03_train", "04_latency_profiling", "05_results"]


def test_the_five_numbered_notebooks_exist():
    assert [p.stem for p in NB_FILES] == EXPECTED


@pytest.mark.parametrize("path", NB_FILES, ids=lambda p: p.stem)
def test_notebook_is_thin_parameterised_and_without_outputs(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", []), "cell 1 must be tagged 'parameters'"
    for c in code:
        assert not c.get("outputs") and not c.get("execution_count"), "committed with outputs"
        tree = ast.parse("".join(c["source"]))
        defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
        assert not defs, f"notebooks define no functions or classes: {[d.name for d in defs]}"
    params = ast.parse("".join(code[0]["source"]))
    assert all(isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant) for n in params.body), \
        "the parameters cell holds flat values only"


def test_every_planned_parameter_is_declared_in_its_notebook(tmp_path):
    import papermill as pm

    for profile in PROFILES:
        for step in plan(profile, None, None, tmp_path, None, False):
            declared = set(pm.inspect_notebook(str(NOTEBOOKS / step.notebook)))
            assert set(step.parameters) <= declared, (step.notebook, set(step.parameters) - declared)


def test_llm_models_train_through_03_after_the_sequence_models(tmp_path):
    for name, profile in PROFILES.items():
        want = {"gpt4rec"} if name == "quick" else {"gpt4rec", "mamrec", "llamarec"}  # quick: time budget
        assert set(profile.llm_models) == want, name
        steps = plan(name, None, None, tmp_path, None, False)
        trained = [s.parameters["model"] for s in steps if s.notebook == "03_train.ipynb"]
        assert set(trained) == set(profile.models) | set(profile.llm_models)
        assert max(trained.index(m) for m in profile.models) < min(trained.index(m) for m in profile.llm_models)
        latency = next(s for s in steps if s.notebook == "04_latency_profiling.ipynb")
        assert not set(latency.parameters["models"].split(",")) & set(profile.llm_models)
    mixed = plan("smoke", None, ["gpt4rec", "sasrec"], tmp_path, None, False)
    assert [s.parameters["model"] for s in mixed if s.notebook == "03_train.ipynb"] == ["sasrec", "gpt4rec"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("workbook")
    console = io.StringIO()  # what the reader's terminal shows (the progress thread prints to sys.stdout too)
    try:
        with contextlib.redirect_stdout(console):
            steps = run_workbook("smoke", out_root=out)
    finally:
        (out / "console.txt").write_text(console.getvalue())
    return out / "smoke", steps


def test_smoke_workbook_runs_every_notebook(smoke_run):
    root, steps = smoke_run
    assert steps and all(s.status == "ok" for s in steps), [(s.output, s.status, s.error) for s in steps]
    assert "Kernel is running over TCP" in (root / "workbook.log").read_text()  # kernel noise went to the log
    index = (root / "index.html").read_text()
    for s in steps:  # the reader's report first, the notebook with its code beside it
        assert (root / f"{s.output}.html").exists() and (root / f"{s.output}{CODE_SUFFIX}").exists()
        assert f'href="{s.output}.html"' in index
        assert index.index(f'href="{s.output}.html"') < index.index(f'href="{s.output}{CODE_SUFFIX}"')


def test_smoke_console_shows_a_line_per_step_and_per_training_epoch(smoke_run):
    """The terminal: two lines per step ([i/n] title ..., then its status) and, while a training step runs, one
    line per epoch each run's log.jsonl holds (report/progress.py); nothing from papermill or the kernels."""
    root, steps = smoke_run
    console = (root.parent / "console.txt").read_text()
    n = len(steps)
    for i, s in enumerate(steps, 1):
        assert f"[{i}/{n}] {s.title} ..." in console and f"[{i}/{n}] {s.title}: ok in " in console
    trained = 0
    for log in (root / "runs").glob("*/log.jsonl"):
        conf = json.loads((log.parent / "config.json").read_text())
        first = 1 if "backbone" in conf else 0  # LLM fine-tuning counts epochs from 1, the Trainer from 0
        records = [json.loads(ln) for ln in log.read_text().splitlines()]
        for r in records:
            line = rf"^  {re.escape(conf['model'])} epoch {r['epoch'] + 1 - first}\b"
            assert re.search(line, console, re.M), (log.parent.name, r["epoch"])
        trained += len(records)
    assert trained > 0 and len(re.findall(r"^  \S+ epoch \d+", console, re.M)) == trained
    assert "Kernel is running over TCP" not in console and "Alternative text" not in console


def test_smoke_reports_give_every_figure_its_alternative_text(smoke_run):
    """Every <img> of every page (reports, pages with code, index) has an alt that describes it: not missing, not
    empty, and not nbconvert's "No description has been provided" placeholder (plotting.ReportFigure)."""
    root, _ = smoke_run
    n_img = 0
    for page in sorted(root.glob("*.html")):
        for tag in re.findall(r"<img\b[^>]*>", page.read_text()):
            n_img += 1
            alt = re.search(r'\balt=(["\'])(.*?)\1', tag)
            assert alt and len(alt.group(2)) > 10 and "No description has been provided" not in alt.group(2), \
                (page.name, tag[:160])
    assert n_img > 10
    assert "Alternative text is missing" not in (root / "workbook.log").read_text()


def test_smoke_reports_hold_tables_and_figures_and_no_tracebacks(smoke_run):
    root, steps = smoke_run
    for s in steps:
        html = (root / f"{s.output}.html").read_text().split("About this report")[0]  # before the provenance
        code = (root / f"{s.output}{CODE_SUFFIX}").read_text()
        assert 'jp-InputArea-editor"' not in html and 'jp-InputArea-editor"' in code, f"{s.output}: code only with code"
        assert "injected-parameters" not in html and "injected-parameters" in code
        assert "Traceback (most recent call last)" not in html and 'class="ansi-red-fg"' not in html, s.output
        assert "<table" in html, f"{s.output}: no table"
        if not s.output.startswith("05"):
            assert "data:image/png;base64" in html, f"{s.output}: no figure"
        # progress bars stay a few lines, not one output per refresh
        assert len(re.findall(r"\d+/\d+ \[", html)) < 40, f"{s.output}: progress-bar spam"


def test_smoke_results_files_come_from_runs(smoke_run):
    root, _ = smoke_run
    import pandas as pd

    res = pd.read_csv(root / "results.csv")
    smoke = PROFILES["smoke"]
    retriever = {"lrurec"} if "llamarec" in smoke.llm_models else set()  # LlamaRec's LRURec run is its own row
    assert set(res["model"]) == set(smoke.models) | set(smoke.llm_models) | retriever
    assert res["git_sha"].notna().all() and res["ndcg@10"].between(0, 1).all()
    md = (root / "results.md").read_text()
    assert "| dataset | model |" in md and "git" in md
    # a sequence model beats popularity on the synthetic data's learnable transitions
    by_model = res.set_index("model")["ndcg@10"]
    assert max(by_model[m] for m in ("sasrec", "mamba4rec", "mamba2rec", "hydra4rec")) > by_model["pop"]


def test_smoke_results_hold_llm_rows_with_their_backbone_labelled(smoke_run):
    root, _ = smoke_run
    import pandas as pd

    res = pd.read_csv(root / "results.csv").set_index("model")
    for model in PROFILES["smoke"].llm_models:
        label = res.loc[model, "backbone"]
        assert isinstance(label, str) and "NOT pretrained" in label and "params" in label, (model, label)
        assert res.loc[model, "latency_ms_run"] > 0 and 0 <= res.loc[model, "ndcg@10"] <= 1
    assert res.loc[list(PROFILES["smoke"].models), "backbone"].isna().all()  # sequence models carry no backbone
    html = (root / "05_results.html").read_text()
    assert "LLM-based rows" in html and "NOT pretrained" in html


def test_smoke_results_name_their_runs_and_a_rerun_says_it_reused_them(smoke_run):
    """Run identity as the reader meets it: every result row names its run folder and the commit that trained it;
    a second workbook pass reuses the finished run (same identity) and says so in the report and the index."""
    root, _ = smoke_run
    import pandas as pd

    res = pd.read_csv(root / "results.csv")
    assert res["run_id"].notna().all() and res["trained"].str.match(r"^[0-9a-f]{12} on \d{4}-\d\d-\d\d$").all()
    index = (root / "index.html").read_text()
    assert index.count("trained in this workbook run") == len(list((root / "runs").glob("*/metrics.json")))
    run_workbook("smoke", out_root=root.parent, only=["03_train_pop"])
    html = (root / "03_train_pop_synthetic_s0.html").read_text()
    assert "reused: trained at" in html and "identity matches this code" in html
    index = (root / "index.html").read_text()
    pop_row = next(r for r in index.split("<tr>") if "pop_synthetic_smoke_s0_" in r)
    assert "reused" in pop_row


def test_parameters_and_papermill_metadata_name_repo_relative_folders(tmp_path):
    from ssmrec_lib.report.workbook import ROOT, shown_path

    assert shown_path(ROOT / "outputs" / "quick") == "outputs/quick"
    assert shown_path(tmp_path) == str(tmp_path.resolve())  # outside the repository nothing is committed
    steps = plan("quick", None, None, ROOT / "outputs" / "quick", None, False)
    assert {s.parameters["out_dir"] for s in steps} == {"outputs/quick"}


def test_smoke_index_opens_with_the_results_beside_the_paper_and_the_figures(smoke_run):
    root, _ = smoke_run
    import pandas as pd

    index = (root / "index.html").read_text()
    head = index[:index.index("<h2>Reports")]
    assert "Headline" in head and "synthetic (not in the paper)" in head and "Protocol: " in head
    assert head.count("<td>ours (1 seed)</td>") == pd.read_csv(root / "results.csv")["model"].nunique()
    for fig in ("05_quality_vs_latency.png", "04_streaming.png"):
        assert (root / fig).is_file() and f"<img src='{fig}'" in head, fig
    assert "trained by this invocation" in head and "reused" in head


def test_smoke_reports_render_offline_in_chromium(smoke_run):
    """Every page as a reader sees it, with no network: maths drawn (no raw LaTeX), every image loaded, no console
    error, nothing fetched from outside the folder; a screenshot of each under <profile>/screens/ for review."""
    from ssmrec_lib.report.browser import check_reports, find_browser

    if not find_browser():
        pytest.skip("no Chromium on PATH: `make test` installs Debian's chromium where apt-get is usable as root")
    root, steps = smoke_run
    checks = check_reports(root, root / "screens")
    pages = {c.page for c in checks}
    assert {"index.html", *(f"{s.output}.html" for s in steps), *(f"{s.output}{CODE_SUFFIX}" for s in steps)} <= pages
    problems = [p for c in checks for p in c.problems()]
    assert not problems, "\n".join(problems)
    assert all(Path(c.screenshot).stat().st_size > 5_000 for c in checks)
    assert (root / "02_ssm_theory.html").read_text().count("<math") > 40  # the theory's maths is there to draw
