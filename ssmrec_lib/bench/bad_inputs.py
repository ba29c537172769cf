"""Bad input, tried systematically (issue 16, section 3): one table of malformed inputs, each with its entry point,
the error class it must raise and a fragment its message must hold. tests/unit/test_bad_inputs.py runs every row;
`python -m ssmrec_lib reliability` lists each with the message it got.

Entry points:
    load    data.load_dataset(spec, cache=True) with a private SSMREC_CACHE_DIR: afterwards no prepared cache
            folder may be complete (no partial output left as if valid)
    cli     the command line (run_cli: main(argv) in this process when the caller hands in ssmrec_lib.cli, else
            `python -m ssmrec_lib` in a child): exit code != 0, the message on stderr, no traceback (an exception
            escaping main is a bare traceback), and no metrics.json under --out
    train   experiment.run_experiment with a hook that poisons the weights (NaN loss, NaN scores): the error,
            no metrics.json, and every checkpoint left holds finite weights
A row with `expect=None` is an input the pipeline accepts by a documented rule (duplicates dropped, short users
and rare items filtered); its `check` says what must hold of the data it gives.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import DataError, UnknownNameError, UserError
from .trial import Trial

CATEGORY = "bad input"
HEADER = "user_id,item_id,timestamp\n"


def rows(n_users: int = 6, per_user: int = 6, n_items: int = 5) -> str:
    """A small valid CSV body: every user sees `per_user` items, every item is seen often (a 5-core)."""
    return "".join(f"{u},{(u + t) % n_items},{1000 + t}\n" for u in range(n_users) for t in range(per_user))


@dataclass(frozen=True)
class BadInput:
    name: str
    entry: str  # "load" | "cli" | "train"
    make: Callable[[Path], object]  # tmp folder -> the entry's argument (a spec, an argv list, a hook maker)
    expect: type[BaseException] | None  # None: accepted, `check` must hold
    match: str = ""  # a regular expression the message must hold (case-insensitive)
    check: Callable | None = None  # expect=None: data -> problem (str) or None
    kcore: int = 0


def write(tmp: Path, name: str, text: str | bytes) -> Path:
    p = tmp / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


def csv_spec(name: str, text: str | bytes, query: str = "") -> Callable[[Path], str]:
    return lambda tmp: f"csv:{write(tmp, name, text)}" + (f"?{query}" if query else "")


def gz(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)


def train_argv(*extra: str, dataset: str = "synthetic?n_users=60&n_items=40&min_len=5&max_len=15"):
    return lambda tmp: ["train", "--model", "sasrec", "--dataset", dataset, "--profile", "smoke",
                        "--out", str(tmp / "runs"), "--set", "epochs=1", "--set", "num_threads=1", *extra]


def dropped(key: str, n: int):
    def check(data) -> str | None:
        got = data.protocol.get(key)
        return None if got == n else f"protocol {key} = {got}, expected {n}"
    return check


def counts_check(users: int, items: int):
    def check(data) -> str | None:
        got = (data.n_users, data.n_items)
        return None if got == (users, items) else f"(users, items) = {got}, expected {(users, items)}"
    return check


def poison(at: str):
    """A hook maker (model, batches per epoch) -> hook: NaN in the item embeddings after the first batch ("loss":
    the next loss is NaN) or after the epoch's last batch ("scores": every loss was finite, the validation scores
    are NaN)."""
    def make(model, n_batches: int):
        import torch

        def hook(event, info):
            if event == "batch_end" and info["batch"] == (0 if at == "loss" else n_batches - 1):
                with torch.no_grad():
                    next(m for n, m in model.named_parameters() if "emb" in n)[1:].fill_(float("nan"))
        return hook
    return lambda tmp: make


CASES: tuple[BadInput, ...] = (
    # --- files: empty, header, separators, values
    BadInput("empty file (0 bytes)", "load", csv_spec("empty.csv", ""), DataError, r"empty\.csv.*is empty"),
    BadInput("header only, no rows", "load", csv_spec("header_only.csv", HEADER), DataError, r"no interactions"),
    BadInput("header missing (first line is data)", "load", csv_spec("noheader.csv", rows()), DataError,
             r"line 1.*lack.*header=False"),
    BadInput("wrong separator (semicolons)", "load", csv_spec("semi.csv", (HEADER + rows()).replace(",", ";")),
             DataError, r"semicolon-separated"),
    BadInput("wrong separator given (sep=tab on a comma file)", "load",
             csv_spec("comma.csv", HEADER + rows(), "sep=tab"), DataError, r"comma-separated"),
    BadInput("non-numeric timestamp", "load", csv_spec("ts_text.csv", HEADER + rows() + "1,2,yesterday\n"),
             DataError, r"line 38.*integer timestamp"),
    BadInput("negative timestamp", "load", csv_spec("ts_neg.csv", HEADER + rows() + "1,2,-5\n"), DataError,
             r"line 38.*negative timestamp"),
    BadInput("row with a missing field", "load", csv_spec("short_row.csv", HEADER + rows() + "1,2\n"), DataError,
             r"line 38.*expected 3 fields"),
    BadInput("row with an empty user", "load", csv_spec("empty_user.csv", HEADER + rows() + ",2,5\n"), DataError,
             r"line 38.*non-empty"),
    BadInput("non-UTF-8 bytes", "load", csv_spec("latin1.csv", (HEADER + rows()).encode() + "9,caf\u00e9,7\n".encode("latin-1")),
             DataError, r"cannot decode as utf-8.*encoding="),
    BadInput("gzip truncated", "load", csv_spec("cut.csv.gz", gz(HEADER + rows(40))[:-60]), DataError,
             r"cut\.csv\.gz.*(truncated|damaged)"),
    BadInput("gzip name on a plain file", "load", csv_spec("plain.csv.gz", HEADER + rows()), DataError,
             r"plain\.csv\.gz.*not a gzip"),
    BadInput("gzip content under a plain name", "load", csv_spec("packed.csv", gz(HEADER + rows())), DataError,
             r"packed\.csv is gzip-compressed.*rename it to packed\.csv\.gz"),
    BadInput("file not found", "load", lambda tmp: f"csv:{tmp / 'nowhere.csv'}", DataError, r"file not found"),
    BadInput("unknown load option", "load", csv_spec("opt.csv", HEADER + rows(), "colums=a,b"), DataError,
             r"unknown option.*colums"),
    BadInput("k-core value not an integer", "load", csv_spec("k.csv", HEADER + rows(), "kcore=five"), DataError,
             r"kcore='five' is not an integer"),
    # --- content the pipeline filters by rule
    BadInput("duplicate rows (exact repeats dropped)", "load",
             csv_spec("dups.csv", HEADER + rows() + "0,0,1000\n0,0,1000\n"), None, check=dropped("dedup_dropped", 2)),
    BadInput("a user with one interaction (k-core drops the user)", "load",
             csv_spec("one.csv", HEADER + rows() + "99,1,5\n"), None, check=counts_check(6, 5), kcore=5),
    BadInput("items that vanish under the k-core", "load",
             csv_spec("rare.csv", HEADER + rows() + "0,77,2000\n1,78,2000\n"), None, check=counts_check(6, 5), kcore=5),
    BadInput("a dataset the k-core empties", "load", csv_spec("sparse.csv", HEADER + rows(6, 2, 12)), DataError,
             r"empty after filtering.*Lower kcore", kcore=5),
    # --- the command line
    BadInput("unknown model", "cli", lambda tmp: ["train", "--model", "mamba9", "--dataset", "synthetic",
                                                  "--out", str(tmp / "runs")], UnknownNameError, r"mamba9.*sasrec"),
    BadInput("unknown profile", "cli", lambda tmp: ["train", "--model", "sasrec", "--dataset", "synthetic",
                                                    "--profile", "fast", "--out", str(tmp / "runs")], SystemExit,
             r"invalid choice: 'fast'"),
    BadInput("unknown dataset", "cli", lambda tmp: ["train", "--model", "sasrec", "--dataset", "ml-2m",
                                                    "--out", str(tmp / "runs")], UnknownNameError, r"ml-2m.*ml-1m"),
    BadInput("unknown --set key", "cli", train_argv("--set", "d_modle=32"), UserError, r"d_modle.*model\.d_model"),
    BadInput("--set without =", "cli", train_argv("--set", "lr"), UserError, r"'lr' must look like key=value"),
    BadInput("wrong type in --set (text for a number)", "cli", train_argv("--set", "lr=fast"), UserError,
             r"lr.*expected a number"),
    BadInput("wrong type in --set (fraction for an integer)", "cli", train_argv("--set", "batch_size=2.5"), UserError,
             r"batch_size.*expected an integer"),
    BadInput("wrong type in --set (not a boolean)", "cli", train_argv("--set", "bf16=maybe"), UserError,
             r"bf16.*true/false"),
    BadInput("out-of-range --set value", "cli", train_argv("--set", "epochs=0"), UserError, r"epochs must be >= 1"),
    BadInput("value not in the choices of a --set key", "cli", train_argv("--set", "optimizer=sgd"), UserError,
             r"optimizer.*'adam'"),
    BadInput("synthetic option of the wrong type", "cli", train_argv(dataset="synthetic?n_users=many"), UserError,
             r"n_users='many' is not an integer"),
    BadInput("seed not an integer", "cli", lambda tmp: ["train", "--model", "sasrec", "--dataset", "synthetic",
                                                        "--seed", "x", "--out", str(tmp / "runs")], SystemExit,
             r"--seed: invalid int value"),
    # --- numbers that go bad during training
    BadInput("NaN loss", "train", poison("loss"), UserError, r"loss is nan at epoch 0, batch 1.*lower lr"),
    BadInput("NaN scores at evaluation", "train", poison("scores"), UserError, r"scored NaN.*diverged run"),
)


def no_complete_cache(cache: Path) -> bool:
    return not list(Path(cache).glob("prepared/*/meta.json"))


def run_load(case: BadInput, tmp: Path):
    """-> (exception or None, message, data or None, problems with the leftovers)."""
    from ..data import load_dataset
    from .faults import cache_dir

    spec = case.make(tmp)
    with cache_dir(tmp / "cache"):
        try:
            data = load_dataset(spec, kcore=case.kcore)
        except Exception as e:  # noqa: BLE001 - every outcome is recorded
            return e, str(e), None, [] if no_complete_cache(tmp / "cache") else ["a complete cache folder was left"]
    return None, "", data, []


def run_cli(case: BadInput, tmp: Path, cli=None):
    """The command as a user runs it: exit code, stderr, no traceback, no metrics.json under --out.

    `cli`: the ssmrec_lib.cli package (the library never imports it; its callers hand it in): main(argv) runs in
    this process and the error's class is read by running the command's function on the same arguments (main
    prints a UserError as "error: ..." and keeps no class). Without it, `python -m ssmrec_lib` runs in a child
    and the class is told from stderr ("error: " = a UserError, the usage line = SystemExit)."""
    argv = [str(a) for a in case.make(tmp)]
    exc: BaseException | None = None
    if cli is None:
        from .kill import child_env

        p = subprocess.run([sys.executable, "-m", "ssmrec_lib", *argv], capture_output=True, text=True,
                           env=child_env(), timeout=600)
        rc, text = p.returncode, p.stderr.strip()
        last = text.splitlines()[-1] if text else ""
        exc = (UserError(last[len("error: "):]) if last.startswith("error: ") and rc == 2
               else SystemExit(rc) if "usage:" in text and rc == 2 else RuntimeError(last) if rc else None)
    else:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = cli.main(list(argv))
            except SystemExit as e:  # a bad option: usage and message on stderr, exit code 2
                rc, exc = e.code, e
            except Exception as e:  # noqa: BLE001 - escaping main = a bare traceback for the user
                return e, f"bare traceback: {type(e).__name__}: {e}", None, ["exception escaped the CLI"]
            if exc is None and rc not in (0, None):
                try:
                    args = cli.build_parser().parse_args(list(argv))
                    args._run(args)
                except Exception as e:  # noqa: BLE001
                    exc = e
        text = err.getvalue().strip()
    problems = [] if rc not in (0, None) else [f"exit code {rc}"]
    problems += ["traceback printed"] if "Traceback" in text else []
    problems += ["metrics.json written"] if list((tmp / "runs").glob("*/metrics.json")) else []
    return exc, text.splitlines()[-1] if text else "", None, problems


def run_train(case: BadInput, tmp: Path):
    import torch

    from ..data import make_synthetic
    from ..experiment import run_experiment

    data = make_synthetic(n_users=200, n_items=60, min_len=5, max_len=20, seed=0)
    n_batches = -(-200 // 64)  # the smoke profile's 64 users per step; each user's last window (next_item)
    holder = {}

    def hook(event, info):
        holder["hook"](event, info)

    out = tmp / "runs"
    make_hook = case.make(tmp)
    from ..models import registry

    real_build = registry.build_model

    def build_and_poison(*a, **k):  # the model the run trains, so the hook can reach its weights
        model = real_build(*a, **k)
        holder["hook"] = make_hook(model, n_batches)
        return model

    exc = None
    registry.build_model = build_and_poison
    try:
        run_experiment("sasrec", "synthetic", "smoke", 0, {"epochs": "2", "num_threads": "1",
                                                           "checkpoint_every": "1", "progress": "false"}, out=out, data=data, hooks=[hook])
    except Exception as e:  # noqa: BLE001
        exc = e
    finally:
        registry.build_model = real_build
    problems = ["metrics.json written"] if list(out.glob("*/metrics.json")) else []
    for ck in out.glob("*/checkpoint_best.pt"):
        state = torch.load(ck, map_location="cpu", weights_only=True)["model"]
        if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
            problems.append("checkpoint_best.pt holds NaN weights")
    return exc, str(exc) if exc else "", None, problems


RUNNERS = {"load": run_load, "cli": run_cli, "train": run_train}


def run_case(case: BadInput, tmp: str | Path, cli=None) -> Trial:
    """Run one row of the table in the empty folder `tmp`; the Trial's detail is the message the input got.
    `cli`: the ssmrec_lib.cli package, to run command-line rows in this process (run_cli)."""
    tmp = Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    run = RUNNERS[case.entry]
    exc, message, data, problems = run(case, tmp, cli) if case.entry == "cli" else run(case, tmp)
    if case.expect is None:
        if exc is not None:
            problems.append(f"raised {type(exc).__name__}: {exc}")
        else:
            bad = case.check(data) if case.check else None
            problems += [bad] if bad else []
            message = f"accepted: {describe(data)}"
    else:
        if exc is None:
            problems.append(f"no error (expected {case.expect.__name__})")
        elif not isinstance(exc, case.expect) and not (  # a child's stderr tells a UserError, not its subclass
                case.entry == "cli" and cli is None and type(exc) is UserError and issubclass(case.expect, UserError)):
            problems.append(f"raised {type(exc).__name__}, expected {case.expect.__name__}")
        if case.match and not re.search(case.match, message, flags=re.I | re.S):
            problems.append(f"message lacks /{case.match}/")
    return Trial(CATEGORY, case.name, survived=not problems, lost_nothing=not any(
        "left" in p or "written" in p or "NaN weights" in p for p in problems),
        detail=message + (f"  [problems: {'; '.join(problems)}]" if problems else ""),
        data={"entry": case.entry, "expect": case.expect.__name__ if case.expect else "accepted"})


def describe(data) -> str:
    p = data.protocol
    return (f"{data.n_users} users, {data.n_items} items, {data.n_interactions} interactions"
            f" (dedup dropped {p.get('dedup_dropped', 0)}; {p.get('filter', 'no filter')})")


def bad_input_trials(root: str | Path, cli=None) -> list[Trial]:
    root = Path(root)
    return [run_case(c, root / f"case{i:02d}", cli) for i, c in enumerate(CASES)]

