"""Training steps side by side (report/workbook.py): which steps may share the cores, and how the cores are shared."""

from ssmrec_lib.profiles import WORKBOOK_PROFILES
from ssmrec_lib.report.workbook import parallel_groups, plan, worker_plan


def test_only_consecutive_sequence_model_trainings_run_side_by_side(tmp_path):
    steps = plan("smoke", None, None, tmp_path, None, False)
    groups = parallel_groups(steps)
    assert [s for g in groups for s in g] == steps  # nothing lost or reordered
    names = [[s.output.split("_")[0] + ("_" + s.parameters["model"] if "model" in s.parameters else "") for s in g]
             for g in groups]
    p = WORKBOOK_PROFILES["smoke"]
    assert names[0] == ["01"] and names[1] == ["02"]
    assert names[2] == [f"03_{m}" for m in p.models]  # pop and the four core models: one group
    assert names[3:3 + len(p.llm_models)] == [[f"03_{m}"] for m in p.llm_models]  # each LLM step alone
    assert names[-2:] == [["04"], ["05"]]  # latency timing and the results alone


def test_the_cores_are_shared_out_and_never_more_workers_than_steps():
    assert worker_plan(None, 5, cpus=2) == (2, 1)  # two 1-thread trainings on 2 cores
    assert worker_plan(None, 1, cpus=2) == (1, 2)  # a step alone keeps both cores
    assert worker_plan(None, 4, cpus=16) == (4, 4)
    assert worker_plan(1, 5, cpus=2) == (1, 2)  # --jobs 1: one after another, as before
    assert worker_plan(8, 3, cpus=2) == (3, 1)  # more jobs than cores: one thread each, at least


def test_set_and_seeds_reach_every_sequence_model_training_as_train_would_take_them(tmp_path):
    """`workbook --set k=v --seeds 0` (the Amazon path: `make workbook-amazon`): each sequence-model step trains
    with the same overrides `train --set` gives (so the reproduction runs are reused by identity); LLM steps get
    none; a comma inside a value, which the notebook parameter cannot carry, is refused."""
    import pytest

    from ssmrec_lib.config import parse_overrides
    from ssmrec_lib.errors import UserError

    sets = ["batch_size=128", "lr=1e-3", "schedule=constant", "epochs=200", "patience=10"]
    steps = plan("full", ["amazon2014-beauty"], ["sasrec", "mamba4rec", "gpt4rec"], tmp_path, None, False,
                 parse_overrides(sets), [0])
    train = [s for s in steps if s.notebook == "03_train.ipynb"]
    assert [(s.parameters["model"], s.parameters["seed"]) for s in train] == [("sasrec", 0), ("mamba4rec", 0),
                                                                              ("gpt4rec", 0)]
    for s in train[:2]:
        assert parse_overrides(s.parameters["overrides"].split(",")) == parse_overrides(sets)
    assert "overrides" not in train[2].parameters
    assert len([s for s in plan("full", ["ml-1m"], ["sasrec"], tmp_path, None, False) if "03" in s.output]) == 3
    with pytest.raises(UserError, match="comma"):
        plan("full", ["ml-1m"], ["sasrec"], tmp_path, None, False, {"columns": "a,b"})
