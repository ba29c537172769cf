"""`python -m ssmrec_lib bench kernels`: SSM ops, reference vs fast paths, forward and forward+backward.

Rows (op, impl) for each sequence length L, at batch B, d_inner E, d_state N (SSD / Hydra: E / P heads of P):
    selective_scan  ref      `scan.selective_scan_ref` (loop over time)                       reference
                    fast     `scan.selective_scan(kernel="auto")` (C++ kernel on CPU, fused kernel on CUDA)
    ssd             quadratic  `ssd.ssd_quadratic` (explicit L x L matrix)                       reference
                    chunked    `ssd.ssd_chunked` (chunk 64): the PyTorch path (kernel="ref")
                    fast       `ssd.ssd(kernel="auto")` on CPU: the C++ recurrence (`ssm/csrc/ssd_cpu.cpp`)
                    fused      mamba-ssm `mamba_chunk_scan_combined` (CUDA only)
    hydra_mixer     matrix   `hydra.quasiseparable_matrix` @ X                                  reference
                    chunked  `hydra.quasiseparable_mixer(kernel="ref")` (two SSD passes)
                    fast     `hydra.quasiseparable_mixer(kernel="auto")` on CPU: on the C++ SSD
                    fused    the mixer on the fused SSD (CUDA only)

Columns: ms_fwd (no grad), ms_fwd_bwd (forward + backward of the output's sum), the best of --repeats runs
after a warm-up (the least disturbed by other load on a shared machine; ms_*_median beside them); peak_mem_mb (CUDA: torch.cuda.max_memory_allocated above the start; CPU: peak resident set size
above the start, sampled every millisecond by a thread after glibc's malloc_trim, since tracemalloc does not
see torch's allocator; a lower bound: a peak shorter than a millisecond can be missed);
speedup_* = reference ms / this row's ms (> 1: faster than the reference). A cell whose predicted time or
memory exceeds --budget-s / --mem-budget-gb is skipped and says so in `note`: nothing is extrapolated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..ssm import kernels
from .memory import PeakRSS, malloc_trim, rss_available
from .timer import device_sync, time_calls


# ------------------------------------------------------------------------------------------------ measuring
def peak_mem_mb(fn: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    if not rss_available():
        return float("nan")
    malloc_trim()  # hand freed heap pages back first, or a re-used cached block would not show as growth
    with PeakRSS() as p:
        fn()
    return p.peak / 2**20


@dataclass
class Case:
    op: str
    impl: str
    kernel_path: str
    make: Callable[[int, bool], tuple]  # (L, requires_grad) -> inputs
    run: Callable[..., torch.Tensor]
    order: int  # 1 linear, 2 quadratic in L (for the budget prediction)
    bytes_per: Callable[[int], float] | None = None  # rough peak bytes of fwd+bwd at length L
    reference: bool = False


def measure(case: Case, L: int, repeats: int, device: torch.device) -> dict:
    """ms forward (no grad), ms forward+backward, peak memory of one forward+backward."""

    plain, leaves = case.make(L, False), case.make(L, True)  # inputs made once, outside the timings

    def fwd():
        with torch.no_grad():
            case.run(*plain)

    def fwd_bwd():
        for t in leaves:
            t.grad = None
        y = case.run(*leaves)
        y.backward(torch.ones_like(y))

    out = {}
    sync = device_sync(device)
    for name, fn in (("ms_fwd", fwd), ("ms_fwd_bwd", fwd_bwd)):
        first = time_calls(fn, 1, sync=sync)  # warm-up (timed: the only figure when repeats is 0)
        t = time_calls(fn, repeats, sync=sync) if repeats > 0 else first
        out[name] = t.min_ms
        out[name + "_median"] = t.median_ms
    out["peak_mem_mb"] = peak_mem_mb(fwd_bwd, device)
    return out


# ------------------------------------------------------------------------------------------------ cases
def make_cases(batch: int, d_inner: int, d_state: int, headdim: int, device: torch.device, chunk: int) -> list[Case]:
    from ..ssm import hydra, ssd

    H = d_inner // headdim
    gen = torch.Generator(device="cpu")

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen) * scale).to(device)

    def leaf(t, grad):
        return t.requires_grad_(grad)

    def ssd_inputs(L, grad):
        gen.manual_seed(L)
        X = leaf(r(batch, L, H, headdim), grad)
        dt = leaf(torch.nn.functional.softplus(r(batch, L, H) - 2), grad)  # dt ~ 0.1
        A = -torch.ones(H, device=device)
        B, C = leaf(r(batch, L, 1, d_state), grad), leaf(r(batch, L, 1, d_state), grad)
        return X, dt, A, B, C

    def hydra_inputs(L, grad):
        X, dt_fw, A, B_fw, C_fw = ssd_inputs(L, grad)
        dt_bw = leaf(torch.nn.functional.softplus(r(batch, L, H) - 2), grad)
        B_bw, C_bw = leaf(r(batch, L, 1, d_state), grad), leaf(r(batch, L, 1, d_state), grad)
        D_diag = leaf(r(batch, L, H), grad)
        return X, dt_fw, dt_bw, A, B_fw, C_fw, B_bw, C_bw, D_diag

    quad_bytes = lambda k: (lambda L: k * 4.0 * batch * H * L * L)  # noqa: E731  k live (b, h, l, l) fp32 tensors
    cases: list[Case] = []
    try:
        from ..ssm import scan
    except ImportError:  # the scan module is optional for this benchmark
        scan = None
    if scan is not None:
        def scan_inputs(L, grad):
            gen.manual_seed(L)
            u, delta = leaf(r(batch, d_inner, L), grad), leaf(r(batch, d_inner, L, scale=0.5) - 1, grad)
            A = leaf(-torch.rand(d_inner, d_state, generator=gen).to(device) - 0.5, grad)
            B, C = leaf(r(batch, d_state, L), grad), leaf(r(batch, d_state, L), grad)
            return u, delta, A, B, C, leaf(torch.ones(d_inner, device=device), grad)

        cases.append(Case("selective_scan", "ref", "ref", scan_inputs,
                          lambda *a: scan.selective_scan_ref(*a, delta_softplus=True), 1, reference=True))
        cases.append(Case("selective_scan", "fast", scan_path(device), scan_inputs,
                          lambda *a: scan.selective_scan(*a, delta_softplus=True, kernel="auto"), 1))
    fused_ssd = kernels.resolve("auto", "ssd", device) == "fused"
    cases.append(Case("ssd", "quadratic", "ref", ssd_inputs, lambda *a: ssd.ssd_quadratic(*a), 2,
                      quad_bytes(12), reference=True))
    cases.append(Case("ssd", "chunked", "ref", ssd_inputs, lambda *a: ssd.ssd_chunked(*a, chunk_size=chunk), 1))
    if fused_ssd:
        cases.append(Case("ssd", "fused", "fused", ssd_inputs,
                          lambda *a: ssd.ssd(*a, chunk_size=chunk, kernel="fused"), 1))
    ssd_fast = None if fused_ssd else kernels.path_name("auto", "ssd", device)  # builds the C++ SSD now
    if ssd_fast == "cpu-ext":
        cases.append(Case("ssd", "fast", ssd_fast, ssd_inputs,
                          lambda *a: ssd.ssd(*a, chunk_size=chunk, kernel="auto"), 1))

    def matrix_mixer(X, *rest):
        M = hydra.quasiseparable_matrix(*rest)
        return torch.einsum("bhts,bshp->bthp", M, X)

    cases.append(Case("hydra_mixer", "matrix", "ref", hydra_inputs, matrix_mixer, 2, quad_bytes(24), reference=True))
    cases.append(Case("hydra_mixer", "chunked", "ref", hydra_inputs,
                      lambda *a: hydra.quasiseparable_mixer(*a, chunk_size=chunk, kernel="ref"), 1))
    if fused_ssd:
        cases.append(Case("hydra_mixer", "fused", "fused", hydra_inputs,
                          lambda *a: hydra.quasiseparable_mixer(*a, chunk_size=chunk, kernel="fused"), 1))
    if ssd_fast == "cpu-ext":
        cases.append(Case("hydra_mixer", "fast", ssd_fast, hydra_inputs,
                          lambda *a: hydra.quasiseparable_mixer(*a, chunk_size=chunk, kernel="auto"), 1))
    return cases


def scan_path(device: torch.device) -> str:
    """The path kernel="auto" takes for the scan here ("fused", "cpu-ext" or "ref"); probing builds the C++
    extension now, outside the timings."""
    return kernels.path_name("auto", "selective_scan", device)


# ------------------------------------------------------------------------------------------------ table
QUICK = dict(sizes=[16, 40], batch=2, d_inner=16, d_state=8, headdim=8, repeats=1, chunk_size=16)  # smoke sizes
TABLE_COLUMNS = ["op", "impl", "L", "ms_fwd", "ms_fwd_bwd", "peak_mem_mb", "speedup_fwd", "speedup_fwd_bwd",
                 "kernel_path", "note"]
CSV_EXTRA = ["ms_fwd_median", "ms_fwd_bwd_median", "batch", "device", "threads", "torch", "repeats"]


def pick_device(name: str = "auto") -> torch.device:
    """"auto" -> cuda if available, else cpu; otherwise the named device."""
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available()
                        else ("cpu" if name == "auto" else name))


def bench_kernels(sizes: list[int], batch: int = 128, d_inner: int = 128, d_state: int = 32, headdim: int = 32,
                  chunk_size: int = 64, repeats: int = 5, budget_s: float = 60.0, mem_budget_gb: float = 6.0,
                  device: str = "auto", log=print, ops: list[str] | None = None) -> "pd.DataFrame":
    """One row per (op, impl, L); see the module docstring for the columns. df.attrs["header"]: the setup line.
    ops: only these ops (None: all)."""
    import pandas as pd

    from ..utils import environment_info

    dev = pick_device(device)
    env = environment_info()
    dev_name = env.get("device_name", "cpu") if dev.type == "cuda" else f"cpu ({env['processor']})"
    rows = []
    for case in [c for c in make_cases(batch, d_inner, d_state, headdim, dev, chunk_size) if not ops or c.op in ops]:
        last: tuple[int, float] | None = None  # (L, seconds of one fwd+bwd) for the prediction
        for L in sorted(sizes):
            row = dict(op=case.op, impl=case.impl, L=L, batch=batch, kernel_path=case.kernel_path)
            pred_s = None if last is None else last[1] * (L / last[0]) ** case.order
            est_gb = case.bytes_per(L) / 2**30 if case.bytes_per else 0.0
            if pred_s is not None and pred_s > budget_s:
                row["note"] = f"skipped: predicted {pred_s:.0f} s > --budget-s {budget_s:g}"
            elif est_gb > mem_budget_gb:
                row["note"] = f"skipped: ~{est_gb:.0f} GB > --mem-budget-gb {mem_budget_gb:g}"
            else:
                # a single slow run: time it once and spend no more than the budget on repeats
                reps = repeats
                if pred_s is not None and pred_s * (reps + 1) * 1.5 > budget_s:
                    reps = 0
                try:
                    row |= measure(case, L, reps, dev)
                    row["note"] = "" if reps == repeats else f"{max(reps, 1)} run(s), budget"
                    last = (L, row["ms_fwd_bwd"] / 1000)
                except Exception as e:  # e.g. a fused kernel that imports but cannot run here: say so, go on
                    row["note"] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
                    if dev.type == "cuda":
                        torch.cuda.empty_cache()
            rows.append(row)
            log(f"  {case.op:15s} {case.impl:9s} L={L:5d} {row.get('ms_fwd_bwd', float('nan')):10.1f} ms "
                f"{row['note']}")
    df = pd.DataFrame(rows)
    for col in ("ms_fwd", "ms_fwd_bwd", "peak_mem_mb", "ms_fwd_median", "ms_fwd_bwd_median"):
        if col not in df:
            df[col] = float("nan")
    ref = df[df.impl.isin(["ref", "quadratic", "matrix"])].set_index(["op", "L"])
    for col, out in (("ms_fwd", "speedup_fwd"), ("ms_fwd_bwd", "speedup_fwd_bwd")):
        df[out] = [ref[col].get((o, L), float("nan")) / v for o, L, v in zip(df.op, df.L, df[col])]
    df["device"], df["threads"], df["torch"] = dev_name, torch.get_num_threads(), torch.__version__
    df["repeats"] = repeats
    df.attrs["header"] = (
        f"bench kernels on {dev_name}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"B={batch} E={d_inner} N={d_state} P={headdim} chunk={chunk_size}, best of {repeats}; peak_mem: "
        f"{'cuda max_memory_allocated' if dev.type == 'cuda' else 'sampled RSS'} above start")
    return df


def format_table(df) -> str:
    return df[TABLE_COLUMNS].to_string(index=False, float_format=lambda v: f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}")
