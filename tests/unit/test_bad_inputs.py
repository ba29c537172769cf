"""Bad input, tried systematically (issue 16, section 3): every row of ssmrec_lib.bench.bad_inputs.CASES (the
table the reliability report lists) must raise its error class with its message, leave no partial output taken as
valid, and, through the CLI, exit non-zero without a traceback."""

import pytest

from ssmrec_lib import cli
from ssmrec_lib.bench.bad_inputs import CASES, run_case


@pytest.fixture(autouse=True)
def _no_data_dir(monkeypatch):
    monkeypatch.delenv("SSMREC_DATA_DIR", raising=False)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case, tmp_path):
    t = run_case(case, tmp_path, cli)
    assert t.ok, t.detail


def test_cli_rows_in_a_child_process(tmp_path):
    """The same rows through `python -m ssmrec_lib` (no cli handed in): real exit code, no traceback on stderr."""
    for name in ("unknown model", "unknown profile"):
        case = next(c for c in CASES if c.name == name)
        t = run_case(case, tmp_path / name.replace(" ", "_"))
        assert t.ok, t.detail


def test_table_covers_the_issue():
    names = " ".join(c.name for c in CASES).lower()
    for what in ("empty file", "header missing", "separator", "non-numeric timestamp", "negative timestamp",
                 "duplicate", "non-utf-8", "gzip truncated", "one interaction", "vanish", "k-core empties",
                 "unknown model", "unknown profile", "unknown --set key", "wrong type", "nan loss", "nan scores"):
        assert what in names, what
    assert {c.entry for c in CASES} == {"load", "cli", "train"}


def test_a_wrong_expectation_is_reported(tmp_path):
    """The runner can fail a row: the right input with a wrong expected message is not ok."""
    case = next(c for c in CASES if c.name == "unknown model")
    bad = type(case)(case.name, case.entry, case.make, case.expect, match="no such text")
    t = run_case(bad, tmp_path, cli)
    assert not t.ok and "message lacks" in t.detail
