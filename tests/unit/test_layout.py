"""The package's layout rules (README, Layout): layers point one way, no private name crosses a module, the CLI is
the only argument parser and a static table whose missing module raises; the one benchmark timer."""

import argparse
import ast
from pathlib import Path

import pytest

import ssmrec_lib
from ssmrec_lib.bench.timer import time_calls, time_once
from ssmrec_lib.cli import COMMANDS, add_module_commands

PKG = Path(ssmrec_lib.__file__).parent
# lower number = lower layer; a module may import its own layer or below (profiles: plain values, read by all)
LAYER = {"errors": 0, "config": 0, "utils": 0, "profiles": 0, "__init__": 0, "data": 1, "ssm": 2, "models": 3, "checkpoint": 4,
         "objectives": 4, "losses": 4, "fused_ce": 4, "train": 4, "distributed": 4, "evaluate": 4, "metrics": 4, "streaming": 4, "experiment": 5, "tune": 5, "llm": 6,
         "runner": 7, "bench": 8, "report": 8, "cli": 9, "__main__": 10}


def _imports():
    """(importing module, imported module, imported names) for every `from ... import` inside the package."""
    for f in PKG.rglob("*.py"):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        mod = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        here = mod.split(".") if f.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] == "ssmrec_lib":
                    yield mod, target, [a.name for a in node.names]


def _layer(module: str) -> int:
    return LAYER[(module.split(".")[1:] or ["__init__"])[0]]


def test_layers_point_down():
    up = []
    for mod, target, names in _imports():
        targets = [f"{target}.{n}" for n in names] if target == "ssmrec_lib" else [target]
        up += [f"{mod} -> {t}" for t in targets if _layer(t) > _layer(mod)]
    assert not up, "imports that point up a layer:\n" + "\n".join(up)


def test_no_private_name_imported_across_modules():
    bad = [f"{mod}: from {target} import {n}" for mod, target, names in _imports() for n in names
           if n.startswith("_")]
    assert not bad, "\n".join(bad)


def test_only_cli_parses_arguments():
    outside = [str(f.relative_to(PKG)) for f in PKG.rglob("*.py")
               if "cli" not in f.relative_to(PKG).parts and "argparse" in f.read_text()]
    assert outside == []


def test_cli_table_raises_on_a_missing_module():
    sub = argparse.ArgumentParser().add_subparsers()
    with pytest.raises(ModuleNotFoundError, match="no_such_command"):
        add_module_commands(sub, {"nope": ("ssmrec_lib.cli.no_such_command", "help")})
    assert all(mod.startswith("ssmrec_lib.cli.") for mod, _ in COMMANDS.values())


def test_timer_counts_warmup_and_repeats_and_feeds_inputs():
    seen, entered = [], []

    class During:
        def __enter__(self):
            entered.append(len(seen))

        def __exit__(self, *exc):
            entered.append(len(seen))

    t = time_calls(seen.append, repeats=3, warmup=2, args=[(i,) for i in range(5)], during=During())
    assert seen == [0, 1, 2, 3, 4] and t.n == 3 and entered == [2, 5]  # `during` wraps the timed calls only
    assert 0 <= t.min_ms <= t.median_ms <= t.p95_ms and t.min_ms <= t.mean_ms
    syncs = []
    time_calls(lambda: None, repeats=2, sync=lambda: syncs.append(1))
    assert len(syncs) == 4  # before and after each timed call
    assert time_once(lambda: None) >= 0


@pytest.mark.parametrize("package", ["ssm", "models", "bench", "report", "llm"])
def test_public_api_never_shadows_a_submodule(package):
    """`from ssmrec_lib.ssm import ssd` must give the module, not a function exported under the same name."""
    import importlib
    import types

    pkg = importlib.import_module(f"ssmrec_lib.{package}")
    for f in (PKG / package).glob("*.py"):
        if f.stem != "__init__" and hasattr(pkg, f.stem):
            assert isinstance(getattr(pkg, f.stem), types.ModuleType), f"ssmrec_lib.{package}.{f.stem}"
