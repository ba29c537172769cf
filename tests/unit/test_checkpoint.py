"""Checkpoints are read with the safe loader only (checkpoint.py): a file that would run code is refused and
nothing runs; a broken file names itself; an old-format checkpoint upgrades only with --trust and then resumes
to the same result as an uninterrupted run."""

import json
import os
import pickle
import random

import numpy as np
import pytest
import torch

from ssmrec_lib.checkpoint import (LegacyCheckpointError, UnsafeCheckpointError, load_checkpoint, save_checkpoint,
                                   upgrade_checkpoint)
from ssmrec_lib.cli import main as cli_main
from ssmrec_lib.data import make_synthetic
from ssmrec_lib.errors import UserError
from ssmrec_lib.models.registry import build_model
from ssmrec_lib.train import TrainConfig, Trainer
from ssmrec_lib.utils import numpy_state_tuple, python_state_tuple, rng_states, set_rng_states

TINY = dict(d_model=16, d_ff=32, n_layers=1, n_heads=1, dropout=0.2, attn_dropout=0.2)


class Kill(Exception):
    pass


class Marker:
    """Unpickling this creates the marker file (what an attacker's payload would do instead)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.fixture(scope="module")
def split():
    return make_synthetic(n_users=120, n_items=60, min_len=5, max_len=20, seed=1).split()


def _cfg():
    return TrainConfig(epochs=3, batch_size=40, lr=3e-3, max_len=20, progress=False, patience=5, num_threads=1,
                       checkpoint_every=2, max_batches_per_epoch=3)


def _run(split, run_dir, hooks=()):
    torch.manual_seed(0)
    return Trainer(build_model("sasrec", split.n_items, 20, TINY), split, _cfg(), run_dir, list(hooks)).fit()


def _kill_at(epoch, batch):
    def hook(event, info):
        if event == "batch_end" and (info["epoch"], info["batch"]) == (epoch, batch):
            raise Kill
    return hook


def test_rng_states_are_plain_and_restore_exactly():
    random.gauss(0, 1)  # leaves a cached gaussian in the python state
    np.random.randn()
    st = rng_states()
    assert isinstance(st["numpy"]["keys"], torch.Tensor) and isinstance(st["python"]["internal"], torch.Tensor)
    a = (random.random(), random.gauss(0, 1), np.random.rand(), np.random.randn(), torch.rand(2).tolist())
    set_rng_states(st)
    assert (random.random(), random.gauss(0, 1), np.random.rand(), np.random.randn(), torch.rand(2).tolist()) == a
    t = numpy_state_tuple(st["numpy"])
    assert t[1].dtype == np.uint32 and t[1].shape == (624,)


@pytest.mark.parametrize("raw", [False, True])
def test_checkpoint_that_would_run_code_is_refused_and_nothing_runs(tmp_path, raw):
    marker = tmp_path / "PWNED"
    path = tmp_path / "checkpoint_last.pt"
    payload = {"model": {"w": torch.zeros(2)}, "state": Marker(marker)}
    if raw:  # a plain pickle, not torch's zip format
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    with pytest.raises(UnsafeCheckpointError, match=f"checkpoint {path} is .*nothing from it was run"):
        load_checkpoint(path)
    assert cli_main(["checkpoint", "upgrade", str(path), "--trust"]) == 1  # not an old ssmrec file: refused too
    assert not marker.exists()


def test_resume_refuses_an_unsafe_checkpoint_without_running_it(split, tmp_path):
    marker = tmp_path / "PWNED"
    with pytest.raises(Kill):
        _run(split, tmp_path / "run", [_kill_at(0, 1)])
    ck = torch.load(tmp_path / "run" / "checkpoint_last.pt", weights_only=True)
    ck["state"]["extra"] = Marker(marker)
    torch.save(ck, tmp_path / "run" / "checkpoint_last.pt")
    with pytest.raises(UnsafeCheckpointError, match="checkpoint_last.pt is refused.*posix.system"):
        _run(split, tmp_path / "run")
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_broken_checkpoint_gives_a_user_error_naming_the_file(split, tmp_path, damage):
    with pytest.raises(Kill):
        _run(split, tmp_path, [_kill_at(0, 1)])
    path = tmp_path / "checkpoint_last.pt"
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": os.urandom(len(data)), "empty": b""}[damage])
    with pytest.raises(UserError, match=f"checkpoint {path} is truncated or corrupt"):
        _run(split, tmp_path)
    assert cli_main(["checkpoint", "check", str(tmp_path)]) == 1


def test_save_refuses_values_the_safe_loader_could_not_read(tmp_path):
    with pytest.raises(TypeError, match=r"payload\.rng\.numpy \(numpy\.ndarray\)"):
        save_checkpoint(tmp_path / "x.pt", {"rng": {"numpy": np.zeros(3)}})
    assert not (tmp_path / "x.pt").exists()


def _to_legacy(path):
    """Rewrite a checkpoint as ssmrec wrote it before: numpy / python RNG states as the tuples numpy and random
    return (numpy arrays inside), which only a full pickle load reads."""
    ck = torch.load(path, weights_only=True)
    ck["rng"] = {**ck["rng"], "numpy": numpy_state_tuple(ck["rng"]["numpy"]),
                 "python": python_state_tuple(ck["rng"]["python"])}
    torch.save(ck, path)
    return ck


def test_legacy_checkpoint_upgrades_with_trust_and_resumes_identically(split, tmp_path):
    ref = _run(split, tmp_path / "ref")
    run = tmp_path / "run"
    with pytest.raises(Kill):
        _run(split, run, [_kill_at(1, 1)])
    last = run / "checkpoint_last.pt"
    legacy = _to_legacy(last)
    with pytest.raises(LegacyCheckpointError, match=f"{last} is in the old format.*checkpoint upgrade {last} --trust"):
        _run(split, run)
    before = last.read_bytes()
    assert cli_main(["checkpoint", "upgrade", str(run)]) == 2  # no --trust: a UserError, file untouched
    assert last.read_bytes() == before
    with pytest.raises(UserError, match="--trust"):
        upgrade_checkpoint(last)
    assert cli_main(["checkpoint", "upgrade", str(run), "--trust"]) == 0  # the whole run folder (best + last)
    new = load_checkpoint(last)
    assert python_state_tuple(new["rng"]["python"]) == legacy["rng"]["python"]
    assert np.array_equal(numpy_state_tuple(new["rng"]["numpy"])[1], legacy["rng"]["numpy"][1])
    assert upgrade_checkpoint(last, trust=True) is False  # already new: left alone
    assert cli_main(["checkpoint", "check", str(run)]) == 0
    res = _run(split, run)
    assert res["valid"] == ref["valid"] and res["test"] == ref["test"] and res["best_epoch"] == ref["best_epoch"]
    strip = lambda p: [{k: v for k, v in json.loads(ln).items() if "seconds" not in k}  # noqa: E731
                       for ln in p.read_text().splitlines()]
    assert strip(run / "log.jsonl") == strip(tmp_path / "ref" / "log.jsonl")


def test_upgrade_takes_a_quoted_glob_of_files(split, tmp_path):
    for r in ("a", "b"):
        with pytest.raises(Kill):
            _run(split, tmp_path / r, [_kill_at(0, 1)])
        _to_legacy(tmp_path / r / "checkpoint_last.pt")
    assert cli_main(["checkpoint", "upgrade", str(tmp_path / "*" / "checkpoint_*.pt"), "--trust"]) == 0
    for r in ("a", "b"):
        assert load_checkpoint(tmp_path / r / "checkpoint_last.pt")["state"]["batch"] == 2
    assert cli_main(["checkpoint", "check", str(tmp_path / "nothing-*.pt")]) == 2  # matches nothing: a UserError


def test_the_safe_loader_is_the_only_load_path():
    """No module but checkpoint.py calls torch.load, and no call anywhere passes weights_only=False."""
    import ast
    from pathlib import Path

    import ssmrec_lib

    pkg = Path(ssmrec_lib.__file__).parent
    calls = [(str(f.relative_to(pkg)), n) for f in pkg.rglob("*.py") for n in ast.walk(ast.parse(f.read_text()))
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "load"
             and isinstance(n.func.value, ast.Name) and n.func.value.id == "torch"]
    assert {f for f, _ in calls} == {"checkpoint.py"}
    for _, n in calls:
        kw = {k.arg: k.value for k in n.keywords}
        assert isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True


def test_upgrade_converts_every_data_parallel_rank_state(tmp_path):
    """A data-parallel checkpoint carries one RNG state per rank (rng_ranks): each is converted, exactly."""
    legacy = []
    for seed in (1, 2):
        np.random.seed(seed)
        random.seed(seed)
        legacy.append({"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()})
    path = tmp_path / "checkpoint_last.pt"
    torch.save({"model": {"w": torch.ones(2)}, "rng": legacy[0], "rng_ranks": legacy}, path)
    assert upgrade_checkpoint(path, trust=True) is True
    ck = load_checkpoint(path)
    for old, new in zip(legacy, ck["rng_ranks"]):
        assert python_state_tuple(new["python"]) == old["python"]
        t = numpy_state_tuple(new["numpy"])
        assert np.array_equal(t[1], old["numpy"][1]) and tuple(t[2:]) == tuple(old["numpy"][2:])
    assert not np.array_equal(ck["rng_ranks"][0]["numpy"]["keys"], ck["rng_ranks"][1]["numpy"]["keys"])
