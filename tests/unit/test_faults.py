"""Faults during long work (issue 16, section 2): kill -9 during training, disk full, damaged files, an interrupted
workbook. The trials are ssmrec_lib.bench's (kill.py, faults.py, workbook_faults.py), the same the reliability
report runs; here each must have survived and lost nothing."""

import sys

import pytest

from ssmrec_lib.bench import faults, kill, workbook_faults
from ssmrec_lib.errors import DiskFullError
from ssmrec_lib.utils import atomic_write_bytes, stale_temporaries


def failures(trials):
    return "\n".join(f"{t.name}: survived={t.survived} lost_nothing={t.lost_nothing}: {t.detail}"
                     for t in trials if not t.ok)


def test_kill9_during_training_resumes_to_identical_results(tmp_path):
    trials = kill.kill_series(tmp_path, 2, models=("sasrec",), max_kills=1)  # the SSMs: the slow series below
    assert len(trials) == 2 and not failures(trials), failures(trials)
    assert sum(t.data["kills_landed"] for t in trials) >= 1, [t.detail for t in trials]  # a kill hit a live run


@pytest.mark.slow
def test_kill9_series_over_the_core_models(tmp_path):
    trials = kill.kill_series(tmp_path, 20, models=kill.CORE_MODELS, max_kills=2)
    landed = sum(t.data["kills_landed"] for t in trials)
    print(f"kill -9 series: {len(trials)} trials, {landed} kills landed, {sum(t.ok for t in trials)} identical")
    assert len(trials) == 20 and not failures(trials), failures(trials)
    assert {t.data["model"] for t in trials} == set(kill.CORE_MODELS) and landed >= 15


def test_kill_trial_notices_a_different_result(tmp_path):
    """The comparison can fail: a run folder whose metrics differ from the reference's is reported as differing."""
    ref = {"metrics": {k: 1 for k in kill.COMPARED}, "log": [], "per_user": {}, "temporaries": []}
    got = {**ref, "metrics": {**ref["metrics"], "test": 2}, "temporaries": [".x.tmp"]}
    assert kill.differences(ref, got) == ["metrics.test", "left temporary files ['.x.tmp']"]


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_disk_full_keeps_previous_checkpoint_and_report(tmp_path):
    trials = faults.disk_full_trials(tmp_path)
    assert len(trials) == 3 and not failures(trials), failures(trials)
    assert all("needs" in t.detail and "intact" in t.detail for t in trials)


def test_atomic_write_names_path_and_size_on_enospc(tmp_path):
    path = tmp_path / "r.md"
    path.write_text("old")
    with faults.enospc_after_half(), pytest.raises(DiskFullError, match=rf"{path}.*needs 10.0 KiB \(10,240 bytes\)"):
        atomic_write_bytes(path, b"x" * 10240)
    assert path.read_text() == "old" and not stale_temporaries(tmp_path)


@pytest.fixture(scope="module")
def damage(tmp_path_factory):
    return faults.damage_trials(tmp_path_factory.mktemp("damage"))


def test_damaged_files_are_detected_never_used(damage):
    names = [t.name for t in damage]
    assert any(n.startswith("cache") for n in names) and any("download" in n for n in names)
    assert any(n.startswith("log.jsonl") for n in names) and any(n.startswith("metrics.json") for n in names)
    assert not failures(damage), failures(damage)


def test_truncated_checkpoint_gives_a_clear_error_and_force_recovers(damage):
    (t,) = [t for t in damage if t.name == "checkpoint_last.pt (truncated)"]
    assert t.ok and "UserError" in t.detail and "--force" in t.detail, t.detail


def test_half_written_run_folder_is_never_taken_for_finished(damage):
    half = [t for t in damage if "half-written" in t.name]
    assert len(half) == 2 and all(t.ok and "REUSED" not in t.detail for t in half), failures(half)


def test_interrupted_workbook_restarts_to_the_same_outputs(tmp_path):
    t = workbook_faults.workbook_trial(tmp_path)
    assert t.ok, t.detail
    assert "'interrupted'" in t.detail and "'pending'" in t.detail


def test_a_killed_writers_temporary_files_are_removed_before_training(tmp_path):
    """A SIGKILL inside an atomic write leaves `.<name>.<random>.tmp`; the next run of the command removes it."""
    train, out = faults.run_folder(tmp_path, "runs")
    faults.interrupted(train, 0)
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    (run_dir / ".checkpoint_last.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    assert stale_temporaries(run_dir)
    train()
    assert not stale_temporaries(run_dir) and (run_dir / "metrics.json").exists()
