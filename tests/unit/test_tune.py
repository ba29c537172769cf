"""The hyperparameter search (tune.py): validation only, resumable from its SQLite study, pruning on epochs."""

import json

import pytest

from ssmrec_lib.data import make_synthetic
from ssmrec_lib.errors import UserError
from ssmrec_lib.experiment import run_experiment
from ssmrec_lib.tune import SPACES, best_overrides, load_study, run_study, suggest, trials_table

optuna = pytest.importorskip("optuna")
BASE = {"epochs": "2", "num_threads": "1", "n_layers": "1", "batch_size": "32", "warmup_steps": "0"}


@pytest.fixture(scope="module")
def data():
    return make_synthetic(n_users=60, n_items=40, min_len=5, max_len=15, seed=0)


def test_study_searches_on_validation_persists_and_continues(tmp_path, data):
    st = run_study("gru4rec", "synthetic", "smoke", trials=3, base=BASE, out=tmp_path, data=data, startup_trials=2)
    assert len(st.trials) == 3 and (tmp_path / "gru4rec_synthetic_smoke.db").is_file()
    done = [t for t in st.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done
    for t in done:  # each trial is a run folder whose best validation NDCG@10 is the trial's value
        met = json.loads((tmp_path / "runs" / t.user_attrs["run_id"] / "metrics.json").read_text())
        assert met["valid"]["ndcg@10"] == pytest.approx(t.value)
        assert met["test"] is None and met["test_scored"] is False  # the test split is never read while tuning
        assert set(t.params) == set(SPACES["gru4rec"]) - set(BASE)
    again = run_study("gru4rec", "synthetic", "smoke", trials=2, base=BASE, out=tmp_path, data=data,
                      startup_trials=2)
    assert len(again.trials) == 5  # continued from the SQLite study, not restarted
    reloaded = load_study(f"sqlite:///{tmp_path / 'gru4rec_synthetic_smoke.db'}", "gru4rec_synthetic_smoke")
    best = best_overrides(reloaded)
    assert best == {**BASE, **{k: v for k, v in best.items() if k not in BASE}}
    assert reloaded.best_value == max(t.value for t in reloaded.trials if t.value is not None)
    table = trials_table(reloaded)
    assert len(table) == 5 and "user_attrs_run_id" in table


def test_a_tuning_trial_is_not_reused_as_a_final_run(tmp_path, data):
    r = run_experiment("gru4rec", "synthetic", "smoke", 0, BASE, out=tmp_path, data=data, score_test=False)
    assert r["test"] is None
    with pytest.raises(UserError, match="tuning trial"):
        run_experiment("gru4rec", "synthetic", "smoke", 0, BASE, out=tmp_path, data=data)


def test_suggest_leaves_fixed_parameters_out_and_rounds_floats():
    trial = optuna.trial.FixedTrial({"lr": 0.00123456789, "dropout": 0.25, "weight_decay": 0.0, "warmup_steps": 0,
                                     "n_layers": 2})
    got = suggest(trial, SPACES["sasrec"], fixed={"batch_size": "16", "attn_dropout": "0.1"})
    assert got == {"lr": "0.00123457", "dropout": "0.25", "weight_decay": "0", "warmup_steps": "0", "n_layers": "2"}


def test_pruner_stops_a_run_whose_validation_lags(tmp_path, data):
    from ssmrec_lib.tune import pruning_hook

    st = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.99))
    trial = st.ask()
    with pytest.raises(optuna.TrialPruned):
        run_experiment("gru4rec", "synthetic", "smoke", 0, BASE, out=tmp_path, data=data,
                       hooks=[pruning_hook(trial)], score_test=False)
    assert st.trials[0].intermediate_values == {0: pytest.approx(
        json.loads(next((tmp_path).glob("*/log.jsonl")).read_text().splitlines()[0])["valid"]["ndcg@10"])}


def test_notebook_view_of_studies(tmp_path, data):
    import matplotlib

    matplotlib.use("Agg")
    from ssmrec_lib.report.plotting import study_history
    from ssmrec_lib.tune import find_studies, importances, study_summary

    assert find_studies(tmp_path) == []
    run_study("gru4rec", "synthetic", "smoke", trials=3, base=BASE, out=tmp_path, data=data, startup_trials=2)
    (st,) = find_studies(tmp_path)
    s = study_summary(st)
    assert s["model"] == "gru4rec" and sum(s["trials"].values()) == 3
    assert s["chosen"] == best_overrides(st) and s["best_valid_ndcg10"] == st.best_value
    imp = importances(st)
    assert set(imp) <= set(SPACES["gru4rec"]) - set(BASE) and all(v >= 0 for v in imp.values())
    fig = study_history(trials_table(st), imp, title=st.study_name)
    assert len(fig.axes) == (2 if imp else 1)


def test_two_worker_processes_finish_one_sqlite_study_without_duplicated_or_lost_trials(tmp_path, data):
    st = run_study("gru4rec", "synthetic", "smoke", trials=4, base=BASE, out=tmp_path, data=data, startup_trials=2,
                   workers=2)
    assert sorted(t.number for t in st.trials) == [0, 1, 2, 3]  # 4 trials in all: 2 per worker, none twice
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in st.trials)  # none lost (left running or failed)
    for t in st.trials:  # each trial's value is its own run's best validation NDCG@10
        met = json.loads((tmp_path / "runs" / t.user_attrs["run_id"] / "metrics.json").read_text())
        assert met["valid"]["ndcg@10"] == pytest.approx(t.value)
    assert len({json.dumps(t.params, sort_keys=True) for t in st.trials}) == 4  # the workers' samplers differ
    more = run_study("gru4rec", "synthetic", "smoke", trials=1, base=BASE, out=tmp_path, data=data, startup_trials=2)
    assert len(more.trials) == 5  # one process continues the study the workers wrote


def test_the_final_run_trains_the_study_choice_and_names_the_study(tmp_path, data, capsys):
    """`train --from-study DB`: the run's overrides are the best trial's, config.json names the study (not part of
    the identity: the overrides are); a --set that contradicts the choice, or another model, is refused."""
    from ssmrec_lib.cli import main

    st = run_study("gru4rec", "synthetic", "smoke", trials=2, base=BASE, out=tmp_path, data=data, startup_trials=2)
    db = tmp_path / "gru4rec_synthetic_smoke.db"
    runs = tmp_path / "final"
    assert main(["train", "--model", "gru4rec", "--dataset", "synthetic", "--profile", "smoke", "--from-study",
                 str(db), "--set", "num_threads=1", "--set", "epochs=2", "--out", str(runs)]) == 0
    (conf_path,) = runs.glob("*/config.json")
    conf = json.loads(conf_path.read_text())
    assert conf["overrides"] == best_overrides(st)
    assert conf["chosen_by"]["study"] == "gru4rec_synthetic_smoke" and conf["chosen_by"]["trial"] == st.best_trial.number
    assert conf["chosen_by"]["valid_ndcg@10"] == pytest.approx(st.best_value)
    assert "chosen_by" not in conf["identity"]
    assert json.loads((conf_path.parent / "metrics.json").read_text())["test"] is not None  # a final run
    refused = {"the study 'gru4rec_synthetic_smoke' chose epochs=2": ["--model", "gru4rec", "--set", "epochs=3"],
               "tuned gru4rec, not sasrec": ["--model", "sasrec"],
               "no study file": ["--model", "gru4rec", "--from-study", str(tmp_path / "none.db")]}
    for message, args in refused.items():
        capsys.readouterr()
        argv = ["train", "--dataset", "synthetic", "--profile", "smoke", "--from-study", str(db), "--out", str(runs),
                *args]
        assert main(argv) != 0
        assert message in capsys.readouterr().err, message
    assert len(list(runs.glob("*/config.json"))) == 1  # nothing trained by a refused command
