"""ssmrec: state-space models vs transformers vs LLM recommenders for sequential recommendation.

Layers point one way: data -> ssm -> models -> train/evaluate -> profiling/reporting -> workbook.
Importing this package never imports CUDA-only code (mamba_ssm, causal_conv1d, triton): see ssm/kernels.py.
"""

__version__ = "0.1.0"
