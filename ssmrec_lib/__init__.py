"""ssmrec: state-space models vs transformers vs LLM recommenders for sequential recommendation.

Each folder states its role; layers point one way (no module imports a layer above its own):
    config errors utils  ->  data  ->  ssm  ->  models  ->  objectives train evaluate metrics streaming (engine)
    ->  experiment (one run)  ->  llm  ->  runner (any model, one entry)  ->  bench / report  ->  cli
profiles.py (every budget, plain values) is read by every layer. Nothing in the library imports cli/.
Importing this package never imports CUDA-only code (mamba_ssm, causal_conv1d, triton): see ssm/kernels.py.
"""

__version__ = "0.1.0"
