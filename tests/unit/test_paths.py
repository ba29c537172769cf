"""Names that become file or folder names (datasets, models, profiles, run ids, study names) cannot leave the
folder chosen for them (utils.safe_name / child_path); values read from a user's CSV never become paths."""

import pytest

from ssmrec_lib.cli import main as cli_main
from ssmrec_lib.data import dataset_names, load_dataset
from ssmrec_lib.data.registry import DatasetSpec, register_dataset
from ssmrec_lib.errors import UserError
from ssmrec_lib.experiment import identity_hash, make_run_id, run_experiment
from ssmrec_lib.models.registry import available_models
from ssmrec_lib.profiles import LLM_MODELS, PROFILE_NAMES
from ssmrec_lib.report.workbook import run_workbook
from ssmrec_lib.utils import child_path, safe_name

BAD = ["../x", "..", ".", "a/b", "/abs", "x\\y", "", ".hidden", "-rf", "ml-1m/../../x", "a\x00b", "a b"]


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("bad", BAD)
def test_safe_name_refuses_anything_that_is_not_one_plain_component(tmp_path, bad):
    with pytest.raises(UserError, match="profile .* cannot name a file or folder"):
        safe_name(bad, "profile")
    with pytest.raises(UserError):
        child_path(tmp_path, bad, "run id")


def test_every_registered_name_is_a_safe_name():
    for name in [*dataset_names(), *available_models(), *LLM_MODELS, *PROFILE_NAMES, "csv-u", "amazon2014-beauty"]:
        assert safe_name(name, "name") == name


def test_registry_refuses_an_unsafe_dataset_name():
    with pytest.raises(UserError, match="dataset name '../evil'"):
        register_dataset(DatasetSpec(name="../evil", description="", locate=None, parse=None))
    assert "../evil" not in dataset_names()


def test_run_id_is_built_from_checked_components_only():
    ident = {"identity_version": 1, "x": 1}
    assert make_run_id("sasrec", "ml-1m", "full", 0, ident) == f"sasrec_ml-1m_full_s0_{identity_hash(ident)[:12]}"
    assert make_run_id("sasrec", "csv:../../data/u.data?sep=tab", "quick", 1, ident).startswith("sasrec_csv-u_quick_s1_")
    for model, profile in (("../x", "full"), ("sasrec", "../../x"), ("a/b", "full")):
        with pytest.raises(UserError, match="cannot name a file or folder"):
            make_run_id(model, "ml-1m", profile, 0, ident)


def test_cli_dataset_outside_the_registry_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli_main(["train", "--model", "sasrec", "--dataset", "../x", "--profile", "smoke", "--out", str(out)]) == 2
    assert "unknown dataset '../x'" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(UserError, match="unknown dataset"):
        load_dataset("ml-1m/../../x")


def test_library_calls_with_unsafe_names_write_nothing_outside(tmp_path):
    out = tmp_path / "a" / "runs"
    with pytest.raises(UserError):
        run_experiment("sasrec", "synthetic", profile="../../evil", out=str(out))
    with pytest.raises(UserError, match="profile '../evil'"):
        run_workbook(profile="../evil", out_root=tmp_path / "a")
    assert _tree(tmp_path) == []


def test_tuning_study_name_is_checked_before_anything_is_written(tmp_path):
    pytest.importorskip("optuna")
    from ssmrec_lib.tune import run_study

    with pytest.raises(UserError, match="study name '../evil'"):
        run_study("sasrec", "synthetic", "smoke", trials=1, out=tmp_path / "t", study="../evil")
    assert _tree(tmp_path) == []


def test_csv_values_never_become_paths(tmp_path, monkeypatch):
    """User and item ids that look like paths are data: loading writes only the prepared cache."""
    monkeypatch.setenv("SSMREC_CACHE_DIR", str(tmp_path / "cache"))
    f = tmp_path / "in" / "inter.csv"
    f.parent.mkdir()
    rows = [("../../evil", "/etc/passwd", 1), ("../../evil", "../x", 2), ("/tmp/u", "/etc/passwd", 3),
            ("/tmp/u", "../x", 4)]
    f.write_text("user_id,item_id,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    data = load_dataset(f"csv:{f}", kcore=0)
    assert data.name == "csv-inter" and data.n_users == 2 and data.n_items == 2
    files = _tree(tmp_path)
    assert [p for p in files if not (p.startswith("in") or p.startswith("cache"))] == []
    assert all("evil" not in p and "passwd" not in p for p in files)
