"""Notebook parameters, checked: papermill injects values from outside (`-p seed x`, the workbook's plan), so the cell
right after each notebook's `parameters` cell calls

    check_params(globals(), "03_train")

which checks every parameter of that notebook against its schema here (type, range, known names) and raises
NotebookParameterError naming the parameter, its value and what it accepts, before any work starts.

Kinds: int / float (with bounds; bool is not a number here, NaN never passes), bool, str (any text: folders are
the user's choice), choice (one of a list), model / models (registered names, one or comma-separated), dataset /
datasets (a registered name or a spec such as csv:FILE?..., data/spec.py), ints (comma-separated integers within
bounds), overrides (comma-separated KEY=VALUE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import UserError
from ..profiles import PROFILE_NAMES


class NotebookParameterError(UserError, ValueError):
    """A notebook parameter has the wrong type, is out of range or names nothing known."""


@dataclass(frozen=True)
class Param:
    kind: str  # see the module docstring
    lo: float | None = None  # inclusive bounds (int, float, ints)
    hi: float | None = None
    choices: tuple[str, ...] = ()  # kind "choice"
    family: str = "any"  # model / models: "sequence" (registered sequence models) or "any" (also the LLM models)
    empty_ok: bool = False  # dataset / models / ints: "" allowed (a documented default)


PROFILE = Param("choice", choices=PROFILE_NAMES)
TEXT = Param("str")

SCHEMAS: dict[str, dict[str, Param]] = {
    "01_data_exploration": {"profile": PROFILE, "datasets": Param("datasets"), "table4_all": Param("bool"),
                            "data_dir": TEXT, "out_dir": TEXT},
    "02_ssm_theory": {"profile": PROFILE, "out_dir": TEXT},
    "03_train": {"model": Param("model"), "dataset": Param("dataset"), "profile": PROFILE,
                 "seed": Param("int", lo=0, hi=2**31 - 1), "overrides": Param("overrides"), "force": Param("bool"),
                 "data_dir": TEXT, "out_dir": TEXT},
    "04_latency_profiling": {
        "profile": PROFILE, "models": Param("models", family="sequence"), "lengths": Param("ints", lo=1, hi=1 << 20),
        "batches": Param("ints", lo=1, hi=1 << 16), "repeats": Param("int", lo=1, hi=10_000),
        "budget_s": Param("float", lo=1e-3, hi=3600.0), "stream_models": Param("models", family="sequence"),
        "stream_lengths": Param("ints", lo=1, hi=1 << 20), "train_dataset": Param("dataset", empty_ok=True),
        "train_steps": Param("int", lo=1, hi=100_000), "out_dir": TEXT, "data_dir": TEXT},
    "05_results": {"profile": PROFILE, "datasets": Param("datasets"), "out_dir": TEXT, "data_dir": TEXT},
}


def model_names(family: str) -> list[str]:
    from ..models.registry import available_models
    from ..profiles import LLM_MODELS

    return list(available_models()) + ([] if family == "sequence" else list(LLM_MODELS))


def check_params(values: Mapping[str, Any], schema: str | Mapping[str, Param]) -> dict[str, Any]:
    """Check the parameters named in `schema` (a notebook name in SCHEMAS, or a dict name -> Param) among
    `values` (a notebook's globals()); returns them. Raises NotebookParameterError naming the first bad one."""
    if isinstance(schema, str):
        if schema not in SCHEMAS:
            raise KeyError(f"no parameter schema for notebook {schema!r}; schemas: {sorted(SCHEMAS)}")
        schema = SCHEMAS[schema]
    out = {}
    for name, p in schema.items():
        if name not in values:
            raise NotebookParameterError(f"notebook parameter {name!r} is missing (the parameters cell defines it)")
        problem = check_value(values[name], p)
        if problem:
            raise NotebookParameterError(f"notebook parameter {name}={values[name]!r}: {problem}")
        out[name] = values[name]
    return out


def check_value(v: Any, p: Param) -> str | None:
    """What is wrong with `v` as a value of kind `p` (None: nothing)."""
    if p.kind in ("int", "float"):
        ok = isinstance(v, int) if p.kind == "int" else isinstance(v, (int, float))
        if not ok or isinstance(v, bool):
            return f"expected {'an integer' if p.kind == 'int' else 'a number'}, got {type(v).__name__}"
        if p.kind == "float" and not math.isfinite(v):
            return "expected a finite number"
        return in_range(v, p)
    if p.kind == "bool":
        return None if isinstance(v, bool) else f"expected True or False, got {type(v).__name__}"
    if not isinstance(v, str):
        return f"expected a string, got {type(v).__name__}"
    if p.kind == "str":
        return None
    if p.kind == "choice":
        return None if v in p.choices else f"expected one of {', '.join(p.choices)}"
    items = [x.strip() for x in v.split(",") if x.strip()] if p.kind in ("models", "ints") else None
    if (items == [] or v.strip() == "") and p.kind != "overrides":
        return None if p.empty_ok else "expected a value, got an empty string"
    if p.kind in ("model", "models"):
        known = model_names(p.family)
        bad = [m for m in (items if items is not None else [v]) if m not in known]
        return f"unknown model(s) {bad}; known: {', '.join(known)}" if bad else None
    if p.kind in ("dataset", "datasets"):
        return dataset_problem(v, single=p.kind == "dataset")
    if p.kind == "ints":
        try:
            nums = [int(x) for x in items]
        except ValueError:
            return "expected comma-separated integers such as 50,200"
        return next((f"{n}: {r}" for n in nums if (r := in_range(n, p))), None)
    if p.kind == "overrides":
        bad = [o for o in v.split(",") if o.strip() and ("=" not in o or not o.split("=", 1)[0].strip())]
        return f"{bad} are not KEY=VALUE; write e.g. lr=1e-3,model.d_model=64" if bad else None
    raise ValueError(f"unknown parameter kind {p.kind!r}")


def in_range(v: float, p: Param) -> str | None:
    if (p.lo is not None and v < p.lo) or (p.hi is not None and v > p.hi):
        return f"out of range [{p.lo}, {p.hi}]"
    return None


def dataset_problem(text: str, single: bool) -> str | None:
    from ..data import dataset_names, parse_dataset_spec, split_dataset_specs

    known = dataset_names()
    specs = [text] if single else split_dataset_specs(text, known)
    for spec in specs:
        try:
            ref = parse_dataset_spec(spec)
        except UserError as e:
            return str(e)
        name = ref.name
        if name == "csv" and "path" not in ref.options:
            return "'csv' needs a file: write csv:FILE (README: Your own data)"
        if name not in known:
            return f"unknown dataset {name!r}; known: {', '.join(known)} (or csv:FILE for your own file)"
    return None
