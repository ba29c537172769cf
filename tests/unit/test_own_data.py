"""Your own data, as a user brings it: a file in MovieLens-100K's u.data format (tab-separated `user item rating
timestamp`, no header) through `data stats|prepare`, `train` and the workbook's plan, by flags or by a dataset spec."""

import json
import random

import pytest

from ssmrec_lib.cli import main
from ssmrec_lib.data import format_dataset_spec, load_dataset, parse_dataset_spec, split_dataset_specs
from ssmrec_lib.errors import DataError
from ssmrec_lib.experiment import expected_identity, read_identity

FLAGS = ["--dataset", "csv", "--sep", "\\t", "--no-header", "--columns", "user,item,rating,timestamp"]


def write_udata(path, n_users=30, n_items=25, per_user=8, seed=0):
    """u.data's format: user id, item id, rating 1-5, unix seconds; tab-separated, no header, not sorted."""
    rng = random.Random(seed)
    rows = [(u, rng.randint(1, n_items), rng.randint(1, 5), 874_000_000 + 1000 * u + 7 * k)
            for u in range(1, n_users + 1) for k in range(per_user)]
    rng.shuffle(rows)
    path.write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))
    return rows


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSMREC_CACHE_DIR", str(tmp_path / "cache"))


def test_spec_round_trip_and_label():
    ref = parse_dataset_spec("csv:data/u.data?sep=tab&header=false&columns=user,item,rating,timestamp&kcore=0")
    assert ref.name == "csv" and ref.label == "csv-u"
    assert ref.options == {"path": "data/u.data", "sep": "\t", "header": False, "kcore": 0,
                           "columns": ["user", "item", "rating", "timestamp"]}
    assert parse_dataset_spec(format_dataset_spec(ref.name, ref.options)) == ref
    assert parse_dataset_spec("ml-1m") == parse_dataset_spec("ml-1m").__class__("ml-1m", "ml-1m", {})
    assert parse_dataset_spec(r"csv:/tmp/my data/x.csv?sep=\t").options["sep"] == "\t"
    assert "/" not in parse_dataset_spec("csv:/a/b/My Events.v2.tsv.gz").label  # a folder name, never a path
    spec = "csv:u.data?columns=user,item,rating,timestamp&header=false"
    assert split_dataset_specs(f"ml-1m,{spec},synthetic", ["ml-1m", "synthetic"]) == ["ml-1m", spec, "synthetic"]
    with pytest.raises(DataError, match="KEY=VALUE"):
        parse_dataset_spec("csv:u.data?sep")


def test_headerless_file_parses_by_spec_and_needs_columns(tmp_path):
    p = tmp_path / "u.data"
    rows = write_udata(p)
    d = load_dataset(f"csv:{p}?sep=tab&header=false&columns=user,item,rating,timestamp", kcore=0)
    assert d.name == "csv-u" and d.n_interactions == len({(u, i, t) for u, i, _, t in rows})
    first = sorted((t, i) for u, i, _, t in rows if u == 1)
    assert [d.item_ids[x - 1] for x in d.sequences[list(d.user_ids).index("1")]] == [str(i) for _, i in first]
    with pytest.raises(DataError, match="without a header needs"):
        load_dataset("csv", path=p, sep="\t", header=False, kcore=0)
    with pytest.raises(DataError, match="gives 4 field"):  # columns= that does not fit the lines
        load_dataset("csv", path=p, sep="\t", header=False, columns="user,item,timestamp", kcore=0)
    (tmp_path / "h.tsv").write_text("u\ti\tr\tt\n1\t5\t3\t10\n1\t6\t3\t11\n")  # columns= renames a header
    h = load_dataset("csv", path=tmp_path / "h.tsv", columns=["user", "item", "rating", "timestamp"], kcore=0)
    assert h.n_interactions == 2


def test_cli_stats_prepare_and_train_on_udata(tmp_path, capsys):
    p = tmp_path / "u.data"
    write_udata(p)
    assert main(["data", "stats", *FLAGS, "--path", str(p), "--kcore", "0"]) == 0
    out = capsys.readouterr().out
    assert "csv-u" in out and "240" in out
    assert main(["data", "prepare", *FLAGS, "--path", str(p)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("csv-u: 30 users") and f"csv:{p}?" in out
    assert main(["train", "--model", "pop", *FLAGS, "--path", str(p), "--profile", "smoke",
                 "--out", str(tmp_path / "runs")]) == 0
    run_dir, = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("pop_csv-u_smoke_s0_")
    conf = json.loads((run_dir / "config.json").read_text())
    # the spec in config.json reloads the same data: the identity this code recomputes matches
    assert expected_identity(run_dir, load_dataset(conf["dataset"])) == read_identity(run_dir)
    # the same file written as a spec is the same run (reused); an edited file is another run
    assert main(["train", "--model", "pop", "--dataset", conf["dataset"], "--profile", "smoke",
                 "--out", str(tmp_path / "runs")]) == 0
    assert "reused" in capsys.readouterr().out
    write_udata(p, seed=1)
    assert main(["train", "--model", "pop", *FLAGS, "--path", str(p), "--profile", "smoke",
                 "--out", str(tmp_path / "runs")]) == 0
    assert len(list((tmp_path / "runs").iterdir())) == 2


def test_cli_file_flags_need_csv(tmp_path, capsys):
    assert main(["data", "stats", "--dataset", "synthetic", "--path", "x.csv"]) == 2
    assert "--dataset csv" in capsys.readouterr().err


def test_workbook_plan_takes_a_spec(tmp_path):
    from ssmrec_lib.report.workbook import plan

    p = tmp_path / "u.data"
    write_udata(p)
    spec = f"csv:{p}?columns=user,item,rating,timestamp&header=false&sep=tab"
    steps = plan("smoke", [spec], ["pop"], tmp_path, None, False)
    train = [s for s in steps if s.notebook == "03_train.ipynb"]
    assert train and all(s.output.startswith("03_train_pop_csv-u_s") for s in train)
    assert train[0].parameters["dataset"] == spec
    assert split_dataset_specs(steps[0].parameters["datasets"], ["synthetic"]) == [spec]
