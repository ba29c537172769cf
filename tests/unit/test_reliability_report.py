"""`python -m ssmrec_lib reliability` (issue 16, section 4): the fast report's categories and counts."""

import json

from ssmrec_lib.bench import bad_inputs
from ssmrec_lib.bench.reliability import report_markdown, summary
from ssmrec_lib.bench.trial import Trial
from ssmrec_lib.cli import main


def test_fast_report_lists_every_category_with_counts(tmp_path, capsys):
    rc = main(["reliability", "--out", str(tmp_path), "--kill-trials", "1"])
    out = capsys.readouterr().out
    trials = [Trial(**t) for t in json.loads((tmp_path / "trials.json").read_text())]
    rows = {r["category"]: r for r in summary(trials)}
    assert list(rows) == ["kill -9 during training", "disk full", "damaged files", "interrupted workbook",
                          "bad input"]
    assert rows["kill -9 during training"]["trials"] == 1 and rows["disk full"]["trials"] == 3
    assert rows["bad input"]["trials"] == len(bad_inputs.CASES)
    report = (tmp_path / "report.md").read_text()
    for r in rows.values():
        assert f"| {r['category']} | {r['trials']} | {r['survived']} | {r['lost_nothing']} |" in report
    for c in bad_inputs.CASES:  # every bad input with the message it got
        assert c.name in report
    assert "<tmp>" in report and str(tmp_path) not in report.split("## Open defects")[0]
    assert rc == (0 if all(t.ok for t in trials) else 1) and "report:" in out


def test_report_names_each_failure_as_an_open_defect():
    trials = [Trial("disk full", "a", True, True, "fine"), Trial("disk full", "b", True, False, "lost the file")]
    md = report_markdown(trials, {"disk full": 1.0}, slow=False)
    assert "| disk full | 2 | 2 | 1 |" in md and "**disk full: b**: lost the file" in md
