"""Run identity (experiment.py): a run folder is reused only for exactly the run it holds."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from ssmrec_lib.data import make_synthetic
from ssmrec_lib.errors import UserError
from ssmrec_lib.experiment import (dataset_fingerprint, expected_identity, identity_diff, make_run_id,
                                   read_identity, run_experiment, sequence_identity)
from ssmrec_lib.models import registry

FAST = {"epochs": "1", "num_threads": "1"}


def _csv(path, rows):
    path.write_text("user_id,item_id,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    return path


def _csv_data(path):
    from ssmrec_lib.data import load_dataset

    return load_dataset("csv", path=str(path), kcore=0, cache=False)


def _rows(seed, n_users, n_items=30, length=8):
    rng = np.random.default_rng(seed)
    return [(u, int(i), t) for u in range(n_users) for t, i in enumerate(rng.choice(n_items, length, replace=False))]


def test_two_different_csv_files_never_share_a_run(tmp_path):
    """The measured bug: `pop` on one CSV returned an earlier run's metrics from another CSV."""
    a = _csv_data(_csv(tmp_path / "a.csv", _rows(0, 40)))
    b = _csv_data(_csv(tmp_path / "b.csv", _rows(1, 20)))
    ra = run_experiment("pop", "csv", "smoke", 0, out=tmp_path / "runs", data=a)
    rb = run_experiment("pop", "csv", "smoke", 0, out=tmp_path / "runs", data=b)
    assert ra["run_id"] != rb["run_id"]
    assert rb["provenance"]["status"] == "trained now"
    assert ra["valid"]["n_users"] == 40 and rb["valid"]["n_users"] == 20
    conf_b = json.loads((tmp_path / "runs" / rb["run_id"] / "config.json").read_text())
    assert conf_b["dataset_info"]["n_interactions"] == 20 * 8


def test_same_content_under_another_file_is_the_same_run(tmp_path):
    rows = _rows(3, 25)
    a = _csv_data(_csv(tmp_path / "a.csv", rows))
    b = _csv_data(_csv(tmp_path / "copy.csv", rows))
    assert dataset_fingerprint(a) == dataset_fingerprint(b)
    ra = run_experiment("pop", "csv", "smoke", 0, out=tmp_path / "runs", data=a)
    rb = run_experiment("pop", "csv", "smoke", 0, out=tmp_path / "runs", data=b)
    assert rb["run_id"] == ra["run_id"] and rb["provenance"]["status"] == "reused"


def test_fingerprint_sees_order_and_item_count():
    d = make_synthetic(n_users=30, n_items=40, min_len=5, max_len=12, seed=0)
    f = dataset_fingerprint(d)
    swapped = replace(d, sequences=[s[::-1].copy() if u == 0 else s for u, s in enumerate(d.sequences)])
    assert dataset_fingerprint(swapped) != f
    assert dataset_fingerprint(replace(d, n_items=d.n_items + 1)) != f
    assert dataset_fingerprint(replace(d, user_ids=np.array([f"x{u}" for u in range(d.n_users)]))) == f


def test_changing_a_model_default_changes_the_id(monkeypatch):
    data = make_synthetic(n_users=30, n_items=40, min_len=5, max_len=12, seed=0)
    before = sequence_identity("mamba4rec", "synthetic", "smoke", 0, {}, data)
    cls = registry.get_model_class("mamba4rec").config_cls
    field = cls.__dataclass_fields__["dt_init"]
    other = "zero_bias" if field.default != "zero_bias" else "mamba"
    monkeypatch.setattr(field, "default", other)
    monkeypatch.setattr(cls.__init__, "__defaults__", tuple(
        other if d == before["model_cfg"].dt_init else d for d in cls.__init__.__defaults__))
    after = sequence_identity("mamba4rec", "synthetic", "smoke", 0, {}, data)
    assert after["model_cfg"].dt_init == other
    assert after["run_id"] != before["run_id"]
    assert identity_diff(before["identity"], after["identity"]) == ["model_config.dt_init"]


def test_protocol_objective_and_seed_enter_the_id():
    data = make_synthetic(n_users=30, n_items=40, min_len=5, max_len=12, seed=0)
    base = sequence_identity("sasrec", "synthetic", "smoke", 0, {}, data)["run_id"]
    for over, seed in (({"mask_history": "true"}, 0), ({"eval_mode": "sampled"}, 0), ({"max_len": "7"}, 0),
                       ({"objective": "last_item"}, 0), ({}, 1)):
        assert sequence_identity("sasrec", "synthetic", "smoke", seed, over, data)["run_id"] != base, over
    # what cannot change a result does not change the id
    assert sequence_identity("sasrec", "synthetic", "smoke", 0, {"progress": "false", "num_threads": "1"},
                             data)["run_id"] == base


def test_identical_rerun_is_reused_with_equal_metrics(tmp_path):
    data = make_synthetic(n_users=40, n_items=30, min_len=5, max_len=15, seed=0)
    first = run_experiment("gru4rec", "synthetic", "smoke", 0, FAST, out=tmp_path, data=data)
    assert first["provenance"]["status"] == "trained now"
    calls = []
    again = run_experiment("gru4rec", "synthetic", "smoke", 0, FAST, out=tmp_path, data=data,
                           hooks=[lambda e, i: calls.append(e)])
    assert not calls and again["provenance"]["status"] == "reused"
    assert again["test"] == first["test"] and again["valid"] == first["valid"]
    assert again["provenance"]["git_sha"] == first["trained"]["git_sha"]
    assert again["run_id"] == first["run_id"]
    # HEAD recomputes the stored identity from the folder's own command
    assert expected_identity(tmp_path / first["run_id"], data) == read_identity(tmp_path / first["run_id"])


def test_a_folder_holding_another_identity_is_never_reused(tmp_path):
    data = make_synthetic(n_users=40, n_items=30, min_len=5, max_len=15, seed=0)
    r = run_experiment("gru4rec", "synthetic", "smoke", 0, FAST, out=tmp_path, data=data)
    conf_path = tmp_path / r["run_id"] / "config.json"
    conf = json.loads(conf_path.read_text())
    conf["identity"]["model_config"]["d_model"] = 999  # e.g. a folder written by older code under this name
    conf_path.write_text(json.dumps(conf))
    with pytest.raises(UserError, match=r"another identity \(differs in \['model_config.d_model'\]\)"):
        run_experiment("gru4rec", "synthetic", "smoke", 0, FAST, out=tmp_path, data=data)
    forced = run_experiment("gru4rec", "synthetic", "smoke", 0, FAST, out=tmp_path, data=data, force=True)
    assert forced["provenance"]["status"] == "trained now"


def test_resume_refuses_a_checkpoint_of_another_identity(tmp_path):
    from ssmrec_lib.train import Trainer

    data = make_synthetic(n_users=40, n_items=30, min_len=5, max_len=15, seed=0)
    r = sequence_identity("gru4rec", "synthetic", "smoke", 0, {"epochs": "2", "num_threads": "1"}, data)
    run_dir = tmp_path / "run"

    def stop(event, info):
        if event == "epoch_end":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(r["net"], r["split"], r["cfg"], run_dir=run_dir, identity=r["identity"], hooks=[stop]).fit()
    other = dict(r["identity"], dataset_fingerprint="0" * 64)
    with pytest.raises(UserError, match=r"another identity \(differs in \['dataset_fingerprint'\]\)"):
        Trainer(r["net"], r["split"], r["cfg"], run_dir=run_dir, identity=other).fit()
    torch.manual_seed(0)
    done = Trainer(r["net"], r["split"], r["cfg"], run_dir=run_dir, identity=r["identity"]).fit()
    assert done["epochs_run"] == 2


def test_run_id_is_readable_and_hash_suffixed():
    rid = make_run_id("sasrec", "ml-1m", "full", 2, {"a": 1})
    assert rid.startswith("sasrec_ml-1m_full_s2_") and len(rid.rsplit("_", 1)[1]) == 12


def test_trained_names_the_commit_checked_out_when_training_started(tmp_path, monkeypatch):
    """A run's process runs the code it loaded at its start; a commit made while it trains is not that code."""
    import ssmrec_lib.utils as utils

    data = make_synthetic(n_users=30, n_items=30, min_len=5, max_len=12, seed=0)
    shas = iter(["a" * 40, "b" * 40, "c" * 40, "d" * 40])
    monkeypatch.setattr(utils, "git_sha", lambda short=False: next(shas))
    r = run_experiment("gru4rec", "synthetic", "smoke", 0, FAST, out=tmp_path, data=data)
    conf = json.loads((tmp_path / r["run_id"] / "config.json").read_text())
    assert r["trained"]["git_sha"] == conf["environment"]["git_sha"] == "a" * 40


def test_speed_levers_enter_the_identity_only_when_set():
    """ce_chunk / torch_compile came after runs were committed: at their defaults they are absent from the
    identity (so those runs keep their ids, which test_committed_outputs recomputes); set, they give another id."""
    data = make_synthetic(n_users=30, n_items=40, min_len=5, max_len=12, seed=0)
    r = sequence_identity("sasrec", "synthetic", "smoke", 0, {}, data)
    tc = r["identity"]["train_config"]
    assert "ce_chunk" not in tc and "torch_compile" not in tc and "bf16" in tc
    for over in ({"ce_chunk": "0"}, {"torch_compile": "false"}):  # written out at the default: the same run
        assert sequence_identity("sasrec", "synthetic", "smoke", 0, over, data)["run_id"] == r["run_id"]
    for over, key in (({"ce_chunk": "1024"}, "ce_chunk"), ({"torch_compile": "true"}, "torch_compile")):
        other = sequence_identity("sasrec", "synthetic", "smoke", 0, over, data)
        assert other["run_id"] != r["run_id"] and key in other["identity"]["train_config"]


def test_git_sha_dirty_counts_code_not_outputs(tmp_path):
    """A run's recorded commit is '-dirty' when code has uncommitted edits, not when a run folder under outputs/
    changes (a resumed run rewriting its committed checkpoint must not mark runs started beside it)."""
    import subprocess

    from ssmrec_lib.utils import git_sha

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "outputs").mkdir()
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "outputs" / "ckpt.pt").write_text("a")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    clean = git_sha(root=tmp_path)
    assert len(clean) == 40 and not clean.endswith("-dirty")
    (tmp_path / "outputs" / "ckpt.pt").write_text("b")
    assert git_sha(root=tmp_path) == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_sha(root=tmp_path) == clean + "-dirty"
