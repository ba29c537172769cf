"""What is committed under outputs/ must be what the code at this commit produces.

- Every run a committed results table or reproduction report names is a run whose identity, recomputed by this
  code from the run's command and the dataset, equals the identity it was trained under (experiment.py).
- Committed reports name no folder of the machine that rendered them.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest

from ssmrec_lib.experiment import load_data, read_identity
from ssmrec_lib.runner import expected_identity_any
from ssmrec_lib.utils import dict_diff

ROOT = Path(__file__).resolve().parents[2]
RUN_ID = re.compile(r"\b([a-z0-9]+_[a-z0-9.\-]+_(?:smoke|quick|full)_s\d+_[0-9a-f]{12})\b")
MACHINE_PATH = re.compile(r"(/work/|/root/|/home/|/tmp/|/Users/|[A-Z]:\\\\)")


def committed(*patterns: str) -> list[Path]:
    """Files tracked by git under outputs/ matching the globs (falls back to the globs outside a checkout)."""
    try:
        tracked = subprocess.run(["git", "ls-files", "outputs"], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return sorted(p for pat in patterns for p in ROOT.glob(pat))
    return sorted(ROOT / t for t in tracked if any(Path(t).match(pat) for pat in patterns))


REPORTS = committed("outputs/*/results.md", "outputs/*/reproduction_*.md")


def test_the_run_id_pattern_finds_run_ids():
    assert RUN_ID.findall("| `sasrec_ml-1m_full_s0_0123456789ab` | mamba2rec_synthetic_smoke_s12_aaaaaaaaaaaa |") == [
        "sasrec_ml-1m_full_s0_0123456789ab", "mamba2rec_synthetic_smoke_s12_aaaaaaaaaaaa"]


@pytest.mark.parametrize("report", REPORTS, ids=[str(p.relative_to(ROOT)) for p in REPORTS])
def test_committed_report_names_only_runs_whose_identity_matches_this_code(report, shared_data):
    ids = sorted(set(RUN_ID.findall(report.read_text())))
    assert ids, f"{report} names no run: every committed result must say which run folder it comes from"
    datasets: dict = {}
    for run_id in ids:
        run_dir = report.parent / "runs" / run_id
        assert (run_dir / "config.json").is_file(), f"{report} names {run_id}, which is not committed beside it"
        dataset = json.loads((run_dir / "config.json").read_text())["dataset"]
        if dataset not in datasets:
            datasets[dataset] = load_data(dataset, str(shared_data))
        stored = read_identity(run_dir)
        assert stored is not None, f"{run_dir} records no identity"
        diff = dict_diff(stored, expected_identity_any(run_dir, datasets[dataset]))
        assert not diff, f"{run_dir} was trained under another identity than this code computes: differs in {diff}"


REPORT_FILES = committed("outputs/*/*.md", "outputs/*/*.html", "outputs/*/*.ipynb", "outputs/*/*.csv")


@pytest.mark.parametrize("path", REPORT_FILES, ids=[str(p.relative_to(ROOT)) for p in REPORT_FILES])
def test_committed_reports_name_no_machine_path(path):
    hits = [ln.strip()[:160] for ln in path.read_text(errors="replace").splitlines() if MACHINE_PATH.search(ln)]
    assert not hits, f"{path.relative_to(ROOT)} names folders of the machine that wrote it: {hits[:3]}"
