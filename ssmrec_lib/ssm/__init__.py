"""State-space model layers and ops, in pure PyTorch with optional fast paths (kernels.py is the only dispatcher).

    discretize.py  continuous (A, B) -> discrete (Ab, Bb); recurrence == convolution; responses
    scan.py        Mamba's selective scan: reference loop, naive, matrix form, dispatched `selective_scan`
    ssd.py         Mamba-2's SSD: naive, quadratic (semiseparable matrix), chunked, dispatched `ssd`
    hydra.py       Hydra's quasiseparable mixer (two SSD passes) and its explicit matrix; the Hydra block
    conv.py norm.py  causal depthwise conv, gated RMSNorm
    mamba.py mamba2.py  the Mamba and Mamba-2 blocks (forward over a sequence, `step` for one position)
    kernels.py     availability of the C++ / fused paths, `kernel="auto"|"ref"|"cpu"|"fused"`
What a notebook or a user imports is exported here; the modules stay importable by name. `ssd` and `discretize`
name modules (the functions of the same name: `ssm.ssd.ssd`, `ssm.discretize.discretize`), so they are not
shadowed by their functions here.
"""

from . import kernels
from .conv import causal_conv1d, causal_conv1d_update
from .discretize import run_convolution, run_recurrence, ssm_kernel
from .hydra import Hydra, quasiseparable_matrix, quasiseparable_mixer
from .mamba import Mamba, MambaInferenceState
from .mamba2 import Mamba2
from .norm import RMSNormGated
from .scan import selective_scan, selective_scan_naive, selective_scan_ref
from .ssd import semiseparable_matrix, ssd_chunked, ssd_naive, ssd_quadratic

__all__ = [
    "kernels", "causal_conv1d", "causal_conv1d_update", "run_convolution", "run_recurrence",
    "ssm_kernel", "Hydra", "quasiseparable_matrix", "quasiseparable_mixer", "Mamba", "MambaInferenceState", "Mamba2",
    "RMSNormGated", "selective_scan", "selective_scan_naive", "selective_scan_ref", "semiseparable_matrix",
    "ssd_chunked", "ssd_naive", "ssd_quadratic",
]
