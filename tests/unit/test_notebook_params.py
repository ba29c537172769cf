"""Notebook parameters injected by papermill are checked in the cell right after the parameters cell
(report/params.check_params): a wrong type, a value out of range or an unknown name fails there, naming the parameter."""

import ast
import json

import pytest

from ssmrec_lib.profiles import WORKBOOK_PROFILES
from ssmrec_lib.report.params import SCHEMAS, NotebookParameterError, check_params
from ssmrec_lib.report.workbook import NOTEBOOKS, ROOT, plan

NB = sorted(NOTEBOOKS.glob("*.ipynb"))


def _defaults(path):
    """The parameters cell's values (flat constants: test_notebooks checks that)."""
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    tree = ast.parse("".join(code[0]["source"]))
    return {n.targets[0].id: n.value.value for n in tree.body}, code


@pytest.mark.parametrize("path", NB, ids=lambda p: p.stem)
def test_schema_covers_the_parameters_cell_and_its_defaults_pass(path):
    values, code = _defaults(path)
    assert set(SCHEMAS[path.stem]) == set(values)
    assert check_params(values, path.stem) == values
    src = "".join(code[1]["source"])  # the first code cell after the parameters: the check, of this notebook
    assert f'check_params(globals(), "{path.stem}")' in src and len(src.splitlines()) == 2


def test_every_planned_workbook_step_passes(tmp_path):
    for profile in WORKBOOK_PROFILES:
        for step in plan(profile, None, None, tmp_path, None, False):
            stem = step.notebook.removesuffix(".ipynb")
            check_params({**_defaults(NOTEBOOKS / step.notebook)[0], **step.parameters}, stem)


BAD = [  # (notebook, parameter, value, what the message says)
    ("01_data_exploration", "profile", "huge", "expected one of smoke, quick, full"),
    ("01_data_exploration", "datasets", "ml-1m,../x", "unknown dataset '../x'"),
    ("01_data_exploration", "table4_all", "yes", "expected True or False, got str"),
    ("01_data_exploration", "datasets", "", "expected a value"),
    ("02_ssm_theory", "out_dir", 3, "expected a string, got int"),
    ("03_train", "model", "mamba5rec", "unknown model(s) ['mamba5rec']"),
    ("03_train", "dataset", "ml-10m", "unknown dataset 'ml-10m'"),
    ("03_train", "seed", -1, "out of range [0,"),
    ("03_train", "seed", "0", "expected an integer, got str"),
    ("03_train", "seed", 1.5, "expected an integer, got float"),
    ("03_train", "seed", True, "expected an integer, got bool"),
    ("03_train", "overrides", "lr=1e-3,d_model", "['d_model'] are not KEY=VALUE"),
    ("03_train", "force", 1, "expected True or False, got int"),
    ("03_train", "profile", "../full", "expected one of"),
    ("04_latency_profiling", "models", "sasrec,gpt4rec", "unknown model(s) ['gpt4rec']"),  # no latency bench for LLMs
    ("04_latency_profiling", "lengths", "50,0", "0: out of range [1,"),
    ("04_latency_profiling", "batches", "1,x", "comma-separated integers"),
    ("04_latency_profiling", "repeats", 0, "out of range [1,"),
    ("04_latency_profiling", "budget_s", float("nan"), "finite"),
    ("04_latency_profiling", "budget_s", -1.0, "out of range"),
    ("04_latency_profiling", "train_dataset", "nope", "unknown dataset 'nope'"),
    ("04_latency_profiling", "train_steps", "12", "expected an integer"),
    ("05_results", "datasets", "ml-1m,csv", "'csv' needs a file: write csv:FILE"),
    ("05_results", "data_dir", None, "expected a string, got NoneType"),
]


@pytest.mark.parametrize("nb,name,value,says", BAD, ids=lambda x: str(x)[:20])
def test_a_bad_value_names_the_parameter(nb, name, value, says):
    values = {**_defaults(NOTEBOOKS / f"{nb}.ipynb")[0], name: value}
    with pytest.raises(NotebookParameterError) as e:
        check_params(values, nb)
    assert str(e.value).startswith(f"notebook parameter {name}={value!r}: ") and says in str(e.value)


def test_good_values_beyond_the_defaults_pass():
    values = {**_defaults(NOTEBOOKS / "03_train.ipynb")[0], "model": "llamarec", "dataset": "csv:u.data?sep=tab",
              "overrides": "lr=1e-3,model.d_model=64", "seed": 7}
    check_params(values, "03_train")
    values = {**_defaults(NOTEBOOKS / "04_latency_profiling.ipynb")[0], "budget_s": 2, "train_dataset": "synthetic"}
    check_params(values, "04_latency_profiling")


def test_papermill_run_with_a_bad_parameter_fails_in_the_check_cell(tmp_path):
    pm = pytest.importorskip("papermill")
    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(NOTEBOOKS / "02_ssm_theory.ipynb"), str(tmp_path / "out.ipynb"),
                            parameters={"profile": "huge"}, kernel_name="python3", progress_bar=False, cwd=str(ROOT))
    assert e.value.ename == "NotebookParameterError" and "profile='huge'" in e.value.evalue
    assert e.value.exec_count == 3  # parameters, papermill's injected values, then the check: nothing else ran
