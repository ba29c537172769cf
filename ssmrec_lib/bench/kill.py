"""kill -9 at random moments of training, then the same command again until it finishes: the results must equal
an uninterrupted run's exactly (issue 16, section 2).

Each trial runs the real command line, `python -m ssmrec_lib train --model M --dataset synthetic?... --profile smoke
--set checkpoint_every=2 ...`, in a child process:
    1. the reference: the command once, uninterrupted (one per model, shared by its trials); its training time T is
       measured from the moment the run writes config.json (training starts) to the process's exit
    2. a trial: the command, SIGKILLed after a delay drawn uniformly from [0, 0.8 T) once training has started (a
       kill may also land in a checkpoint write, the validation pass, or the final test scoring); `kills` times
    3. the command again, uninterrupted (or killed again, `max_kills`): it resumes from checkpoint_last.pt (train.py) and finishes
    4. compared with the reference: metrics.json (valid and test metrics, best epoch, epochs run, run id),
       log.jsonl (every epoch's record but the seconds), test_per_user.npz (each test user's metrics), and no
       temporary file left in the run folder. survived = the run finished; lost_nothing = all identical.
Delays come from random.Random((seed, trial)), so a series is repeatable (the kill moments land where the machine's speed
puts them). Run on a loaded machine, a kill lands at a different batch but the result must not change.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ..utils import stale_temporaries
from .trial import Trial

CATEGORY = "kill -9 during training"
CORE_MODELS = ("sasrec", "mamba4rec", "mamba2rec", "hydra4rec")
DATASET = "synthetic?n_users=200&n_items=80&min_len=5&max_len=25"
TRAIN_SET = ("epochs=4", "batch_size=16", "checkpoint_every=2", "num_threads=1", "progress=false", "device=cpu")
COMPARED = ("run_id", "valid", "test", "best_epoch", "epochs_run", "stopped_early", "objective", "protocol")
TIMEOUT_S = 600
LANDING = 0.8  # kill moments lie in [0, 0.8 T): a trial run faster than the reference's T still gets killed


def train_command(model: str, out: Path) -> list[str]:
    sets = [a for s in TRAIN_SET for a in ("--set", s)]
    return [sys.executable, "-m", "ssmrec_lib", "train", "--model", model, "--dataset", DATASET, "--profile", "smoke",
            "--seed", "0", *sets, "--out", str(out)]


def child_env(cache_dir: str | Path | None = None) -> dict[str, str]:
    """The environment of a child: this checkout's package first on the path, one thread, plain progress, and
    `cache_dir` as SSMREC_CACHE_DIR when given (the C++ kernels are built there once)."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else ""), "OMP_NUM_THREADS": "1",
           "SSMREC_PROGRESS": "0"}
    if cache_dir is not None:
        env["SSMREC_CACHE_DIR"] = str(cache_dir)
    return env


def run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in Path(out).glob("*") if p.is_dir())


def started_at(out: Path, since_ns: int) -> bool:
    """True once a run folder under `out` holds a config.json written after `since_ns` (training starts next)."""
    return any((d / "config.json").exists() and (d / "config.json").stat().st_mtime_ns >= since_ns
               for d in run_dirs(out))


def run_once(model: str, out: Path, kill_after: float | None, log_path: Path, cache_dir=None) -> dict:
    """Run the command once; with `kill_after`, SIGKILL it that many seconds after training started.

    -> {"rc": exit code (or -9), "killed": the kill landed, "train_s": seconds from training start to exit,
        "epochs_logged": log.jsonl lines when it ended}"""
    t_launch = time.time_ns() - 1_000_000_000  # mtime granularity: a file written just now reads >= this
    with open(log_path, "ab") as log:
        p = subprocess.Popen(train_command(model, out), stdout=log, stderr=subprocess.STDOUT,
                             env=child_env(cache_dir))
        deadline = time.monotonic() + TIMEOUT_S
        t_start = None
        killed = False
        while p.poll() is None and time.monotonic() < deadline:
            if t_start is None and started_at(out, t_launch):
                t_start = time.monotonic()
            if t_start is not None and kill_after is not None and time.monotonic() - t_start >= kill_after:
                p.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.01)
        if p.poll() is None and not killed:  # past the deadline
            p.kill()
        rc = p.wait()
    logs = [d / "log.jsonl" for d in run_dirs(out)]
    return {"rc": rc, "killed": killed, "train_s": time.monotonic() - t_start if t_start else 0.0,
            "epochs_logged": sum(len(p.read_text().splitlines()) for p in logs if p.exists()),
            "checkpointed": any((d / "checkpoint_last.pt").exists() for d in run_dirs(out))}


def run_contents(out: Path) -> dict:
    """What a finished run leaves that must not depend on interruptions (see the module docstring, step 4)."""
    dirs = [d for d in run_dirs(out) if (d / "metrics.json").exists()]
    if len(dirs) != 1:
        return {"error": f"{len(dirs)} finished run folders under {out}"}
    d = dirs[0]
    met = json.loads((d / "metrics.json").read_text())
    log = [{k: v for k, v in json.loads(ln).items() if "seconds" not in k}
           for ln in (d / "log.jsonl").read_text().splitlines()]
    with np.load(d / "test_per_user.npz") as z:
        per_user = {k: z[k].tolist() for k in sorted(z.files)}
    return {"metrics": {k: met.get(k) for k in COMPARED}, "log": log, "per_user": per_user,
            "temporaries": [p.name for p in stale_temporaries(d)]}


def differences(ref: dict, got: dict) -> list[str]:
    if "error" in got or "error" in ref:
        return [got.get("error") or ref.get("error")]
    out = [f"metrics.{k}" for k in COMPARED if ref["metrics"][k] != got["metrics"][k]]
    out += ["log.jsonl"] if ref["log"] != got["log"] else []
    out += ["test_per_user.npz"] if ref["per_user"] != got["per_user"] else []
    out += [f"left temporary files {got['temporaries']}"] if got["temporaries"] else []
    return out


def reference(model: str, root: Path, cache_dir=None) -> tuple[dict, float]:
    """(contents, training seconds) of the uninterrupted run of `model` under root/ref_<model>."""
    out = root / f"ref_{model}"
    r = run_once(model, out, None, root / f"ref_{model}.log", cache_dir)
    if r["rc"] != 0:
        raise RuntimeError(f"the reference run of {model} failed (rc {r['rc']}); see {root / f'ref_{model}.log'}")
    return run_contents(out), r["train_s"]


def kill_trial(model: str, index: int, root: Path, ref: dict, train_s: float, moments: list[float],
               cache_dir=None) -> Trial:
    """One trial (module docstring, steps 2-4): a SIGKILL at each of `moments` (fractions of LANDING times the
    reference's training time, measured from training start), then a run to the end."""
    out = root / f"{model}_{index}"
    log_path = root / f"{model}_{index}.log"
    landed, resumable, said = 0, 0, []
    for u in moments:
        delay = u * LANDING * train_s
        r = run_once(model, out, delay, log_path, cache_dir)
        landed += r["killed"]
        resumable += r["killed"] and r["checkpointed"]
        said.append(f"{delay:.2f} s ({'killed' if r['killed'] else 'had finished'} with "
                    f"{r['epochs_logged']} epoch(s) logged, {'a' if r['checkpointed'] else 'no'} checkpoint)")
    final = run_once(model, out, None, log_path, cache_dir)
    got = run_contents(out) if final["rc"] == 0 else {"error": f"the rerun failed (rc {final['rc']}): {log_path}"}
    diff = differences(ref, got)
    detail = f"{model}: kill(s) at {', '.join(said)}; rerun rc {final['rc']}; " + (
        "identical to the uninterrupted run" if not diff else "differs in " + ", ".join(diff))
    return Trial(CATEGORY, f"{model} #{index}", survived=final["rc"] == 0, lost_nothing=not diff, detail=detail,
                 data={"model": model, "kills_landed": landed, "kills_after_checkpoint": resumable,
                       "kills": len(moments)})


def kill_series(root: str | Path, trials: int, models: tuple[str, ...] = CORE_MODELS, seed: int = 0,
                max_kills: int = 1, jobs: int = 1, cache_dir: str | Path | None = None) -> list[Trial]:
    """`trials` kill trials spread round-robin over `models`, one reference run each; trial i draws 1..max_kills
    kill moments from random.Random((seed, i)) (repeatable). `jobs` trials run side by side (each is one child
    process at a time); `cache_dir`: the children's SSMREC_CACHE_DIR (default: inherited)."""
    from concurrent.futures import ThreadPoolExecutor

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    picked = [models[i % len(models)] for i in range(trials)]
    plans = []
    for i in range(trials):
        rng = random.Random(f"{seed}/{i}")
        plans.append([rng.random() for _ in range(rng.randint(1, max_kills))])
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        refs = dict(zip(dict.fromkeys(picked), pool.map(lambda m: reference(m, root, cache_dir),
                                                        dict.fromkeys(picked))))
        return list(pool.map(lambda i: kill_trial(picked[i], i, root, *refs[picked[i]], plans[i], cache_dir),
                             range(trials)))
