import numpy as np
import pytest
import torch

from ssmrec_lib.config import ConfigError
from ssmrec_lib.data import make_synthetic, pad_left
from ssmrec_lib.errors import UnknownNameError
from ssmrec_lib.models.registry import available_models, build_model, get_model_class
from ssmrec_lib.profiles import profile_overrides
from ssmrec_lib.train import TrainConfig, Trainer

N_ITEMS, MAX_LEN = 40, 12
SMALL = {
    "sasrec": dict(d_model=16, d_ff=32, n_heads=2),
    "bert4rec": dict(d_model=16, d_ff=32, n_heads=2),
    "gru4rec": dict(d_model=16, hidden_size=24),
    "lrurec": dict(d_model=16, d_ff=32),
    "mamba4rec": dict(d_model=16, d_ff=32, d_state=8, n_layers=2),
    "mamba2rec": dict(d_model=16, d_ff=32, d_state=8, headdim=8, chunk_size=4, n_layers=2),
    "hydra4rec": dict(d_model=16, d_ff=32, d_state=8, headdim=8, chunk_size=4, n_layers=2),
    "pop": {},
}

def batch(n=6, seed=0):
    data = make_synthetic(n_users=n, n_items=N_ITEMS, min_len=3, max_len=20, seed=seed)
    return pad_left(data.sequences, MAX_LEN)


def test_registry_lists_all_models():
    assert set(SMALL) <= set(available_models())


def test_unknown_model_lists_names():
    with pytest.raises(UnknownNameError, match="sasrec"):
        get_model_class("sasrek")


def test_broken_model_module_raises_its_import_error_not_unknown_model(monkeypatch):
    from ssmrec_lib.models import registry

    monkeypatch.setattr(registry, "_MODEL_MODULES", registry._MODEL_MODULES + ("no_such_model_module",))
    with pytest.raises(ModuleNotFoundError, match="no_such_model_module"):
        get_model_class("sasrec")


def test_bad_model_key_raises_config_error():
    with pytest.raises(ConfigError, match="d_model"):
        build_model("sasrec", N_ITEMS, MAX_LEN, {"d_modle": 8})
    with pytest.raises(ConfigError, match="headdim"):
        build_model("mamba2rec", N_ITEMS, MAX_LEN, {"d_model": 16, "headdim": 12})


@pytest.mark.parametrize("name", sorted(SMALL))
def test_contract_shapes_and_gradients(name):
    torch.manual_seed(0)
    model = build_model(name, N_ITEMS, MAX_LEN, SMALL[name])
    seq, lens = batch()
    h = model(seq, lens)
    assert h.shape[:2] == seq.shape and h.shape[2] == model.d_model
    logits = model.score(h)
    assert logits.shape == (*seq.shape, N_ITEMS + 1)
    assert torch.isinf(logits[..., 0]).all() and torch.isfinite(logits[..., 1:]).all()
    r = model.readout(seq, lens)
    assert r.shape == (seq.shape[0], model.d_model)
    assert model.score(r).shape == (seq.shape[0], N_ITEMS + 1)
    if model.trainable:
        assert 0 < model.n_params(False) < model.n_params(True)
        real = torch.arange(seq.shape[1]) >= seq.shape[1] - lens.view(-1, 1)
        loss = torch.nn.functional.cross_entropy(logits[real], seq[real])
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads if g is not None)
        assert model.item_emb.weight.grad[0].abs().sum() == 0  # padding row never trained
    assert isinstance(model.bidirectional, bool)


def _transformer_params(d, d_ff, layers):
    per_layer = (3 * d * d + 3 * d) + (d * d + d) + (d * d_ff + d_ff) + (d_ff * d + d) + 4 * d
    return layers * per_layer + 2 * d  # + final (pre-LN) or input (post-LN) LayerNorm


@pytest.mark.parametrize("norm_first", [True, False])
def test_sasrec_param_count_matches_formula_and_paper(norm_first):
    m = build_model("sasrec", 3416, 200, {"d_model": 64, "n_layers": 2, "d_ff": 256, "norm_first": norm_first})
    assert m.n_params(False) == _transformer_params(64, 256, 2) == 100_096  # docs/measured_facts.md (SASRec's count)
    assert m.n_params(True) - m.n_params(False) == 3417 * 64 + 200 * 64  # item table + position table


def _pffn_params(d, d_ff):
    return d * d_ff + d_ff + d_ff * d + d + 2 * d


@pytest.mark.parametrize("name,block_params", [("mamba4rec", 38_784), ("hydra4rec", 44_678)])
def test_ssm_rec_param_count(name, block_params):
    """One layer at d=64: block + PFFN (with LN) + layer LN + embedding LN; block sizes from docs/measured_facts.md."""
    m = build_model(name, 3416, 200, {"d_model": 64, "n_layers": 1} | ({"d_state": 32} if name == "mamba4rec" else {}))
    block = sum(p.numel() for p in m.layers[0].block.parameters())
    assert block == block_params
    assert m.n_params(False) == block + _pffn_params(64, 256) + 2 * 64 + 2 * 64
    assert m.n_params(True) - m.n_params(False) == (3416 + 1 + int(m.bidirectional)) * 64


def test_mamba2rec_small_hidden_size_works():
    m = build_model("mamba2rec", N_ITEMS, MAX_LEN, {"d_model": 64})
    assert m.layers[0].block.nheads == 4  # expand 2 * 64 / headdim 32
    seq, lens = batch()
    assert torch.isfinite(m(seq, lens)).all()


@pytest.mark.parametrize("name", ["lrurec", "mamba4rec", "mamba2rec"])
def test_streaming_step_matches_forward(name):
    torch.manual_seed(0)
    m = build_model(name, N_ITEMS, MAX_LEN, SMALL[name]).eval()
    seq, lens = batch(n=4)
    seq, lens = seq[:, -8:], torch.full((4,), 8)  # full rows (streaming starts at the first item)
    full = m(seq, lens)
    state = m.allocate_inference_state(4)
    outs = []
    for t in range(8):
        y, state = m.step(seq[:, t], state)
        outs.append(y)
    torch.testing.assert_close(torch.stack(outs, 1), full, atol=1e-5, rtol=1e-4)


def test_lrurec_lambda_init_range():
    m = build_model("lrurec", N_ITEMS, MAX_LEN, {"d_model": 32})
    mod = torch.exp(-torch.exp(m.lrus[0].nu_log))
    assert (mod >= 0.8 - 1e-6).all() and (mod <= 0.99 + 1e-6).all()


def test_pop_scores_training_counts():
    pop = build_model("pop", 5, 10).fit([np.array([1, 2, 2]), np.array([2, 5])])
    s = pop.score(torch.zeros(1, 1))[0]
    assert s[1:].tolist() == [1, 3, 0, 0, 1] and torch.isinf(s[0])


def test_mamba4rec_dt_init_default_keeps_mambas_dt_and_zero_bias_is_mamba4recs():
    """The Mamba4Rec init (N(0, 0.02), zero Linear biases) must leave the dt bias to `dt_init`: by default Mamba's
    dt in [1e-3, 0.1] (chosen on ML-1M validation), with "zero_bias" softplus(0) as Mamba4Rec."""
    torch.manual_seed(0)
    dt = torch.nn.functional.softplus(build_model("mamba4rec", N_ITEMS, MAX_LEN, {}).layers[0].block.dt_proj.bias)
    assert dt.min() >= 1e-3 * 0.99 and dt.max() <= 0.1 * 1.01 and dt.std() > 0
    zero = build_model("mamba4rec", N_ITEMS, MAX_LEN, {"dt_init": "zero_bias"})
    assert torch.all(zero.layers[0].block.dt_proj.bias == 0)



TRAINED = ["sasrec", "bert4rec", "gru4rec", "lrurec", "mamba4rec", "mamba2rec", "hydra4rec"]


@pytest.fixture(scope="module")
def train_split():
    return make_synthetic(n_users=160, n_items=80, min_len=5, max_len=25, seed=0).split()


def _train_losses(name, split, prepare=lambda model: None, **cfg):
    """Smoke-profile model `name` through the Trainer, one batch of every user per epoch; every batch's loss.

    `prepare(model)` runs before training (to attach forward hooks)."""
    losses = []

    def record(event, info):
        if event == "batch_end":
            losses.append(info["loss"])

    _, over = profile_overrides("smoke", name, "synthetic")
    torch.manual_seed(0)
    model = build_model(name, split.n_items, 20, over)
    prepare(model)
    base = dict(batch_size=len(split.train), max_batches_per_epoch=1, max_len=20, progress=False, num_threads=1)
    Trainer(model, split, TrainConfig(**{**base, **cfg}), None, [record]).fit()
    return losses


@pytest.mark.parametrize("name", TRAINED)
def test_every_model_loss_is_finite_and_decreases_under_its_objective(train_split, name):
    """8 steps on the same 160 users: the Trainer's loss is finite at every step and falls."""
    losses = _train_losses(name, train_split, epochs=8, lr=1e-2, patience=8)
    assert len(losses) == 8 and all(np.isfinite(losses)), losses
    assert np.mean(losses[-2:]) < 0.97 * losses[0], losses


def test_bf16_autocast_runs_the_forward_in_bfloat16_with_a_loss_close_to_fp32(train_split):
    """bf16=true: the model's Linear layers compute in bfloat16 while training (seen by forward hooks), and the
    first step's loss (same weights, same batch) is within bfloat16 rounding of the float32 one."""
    dtypes = {False: set(), True: set()}
    first = {}
    for bf16 in (False, True):
        def probe(module, inputs, output, bf16=bf16):
            if module.training:  # evaluation stays float32 by design
                dtypes[bf16].add(output.dtype)

        def attach(model):
            linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
            assert linears
            for m in linears:
                m.register_forward_hook(probe)

        first[bf16] = _train_losses("sasrec", train_split, attach, epochs=1, bf16=bf16)[0]
    assert dtypes == {False: {torch.float32}, True: {torch.bfloat16}}
    assert np.isfinite(first[True]) and first[True] == pytest.approx(first[False], rel=2e-2)
    assert first[True] != first[False]  # the bf16 step really computed in lower precision
