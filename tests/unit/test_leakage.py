"""No model may see what it is asked to predict.

Causal models: the output at position t must not change when items after t change.
Every model: outputs at real positions must not change when the ids stored at padded positions change, nor when
more left padding is added.
Bidirectional models (BERT4Rec, Hydra4Rec): through the cloze objective and the [MASK] read-out, the logits at a
prediction position must not change when the item to be predicted (or the padding) changes; and a control shows
the test has teeth (the same model fed the unmasked item does change).
"""


import numpy as np
import pytest
import torch

from ssmrec_lib.config import ConfigError
from ssmrec_lib.data import make_synthetic, pad_left
from ssmrec_lib.models.registry import build_model
from ssmrec_lib.objectives import ClozeCE, resolve_objective

N_ITEMS, MAX_LEN = 40, 16
SMALL = {
    "sasrec": dict(d_model=16, d_ff=32, n_heads=2),
    "bert4rec": dict(d_model=16, d_ff=32, n_heads=2),
    "gru4rec": dict(d_model=16, hidden_size=24),
    "lrurec": dict(d_model=16, d_ff=32),
    "mamba4rec": dict(d_model=16, d_ff=32, d_state=8, n_layers=2),
    "mamba2rec": dict(d_model=16, d_ff=32, d_state=8, headdim=8, chunk_size=4, n_layers=2),
    "hydra4rec": dict(d_model=16, d_ff=32, d_state=8, headdim=8, chunk_size=4, n_layers=2),
}
CAUSAL = ["sasrec", "gru4rec", "lrurec", "mamba4rec", "mamba2rec"]
BIDIRECTIONAL = ["bert4rec", "hydra4rec"]


def model(name):
    torch.manual_seed(0)
    m = build_model(name, N_ITEMS, MAX_LEN, SMALL[name]).eval()
    with torch.no_grad():  # make LayerNorm biases non-zero, so LN(padding) != 0 (the classic leak)
        for mod_ in m.modules():
            if isinstance(mod_, torch.nn.LayerNorm):
                mod_.bias.normal_(0, 0.5)
    return m


def batch(n=5, seed=0, min_len=3, max_len=14):
    """Left-padded (B, L <= MAX_LEN) batch with rows of different lengths."""
    data = make_synthetic(n_users=n, n_items=N_ITEMS, min_len=min_len, max_len=max_len, seed=seed)
    return pad_left(data.sequences, MAX_LEN)


@pytest.mark.parametrize("name", CAUSAL)
def test_causal_output_ignores_the_future(name):
    m = model(name)
    seq, lens = batch(min_len=10, max_len=20)
    seq, lens = seq[:, -10:], torch.full((seq.shape[0],), 10)  # full rows
    h = m(seq, lens)
    for t in (2, 6):
        changed = seq.clone()
        changed[:, t + 1:] = torch.randint(1, N_ITEMS + 1, changed[:, t + 1:].shape)
        h2 = m(changed, lens)
        torch.testing.assert_close(h2[:, : t + 1], h[:, : t + 1], atol=1e-5, rtol=1e-5)
        assert not torch.allclose(h2[:, t + 1:], h[:, t + 1:])  # the future does change later outputs


@pytest.mark.parametrize("name", CAUSAL + BIDIRECTIONAL)
def test_padding_contents_and_amount_do_not_matter(name):
    m = model(name)
    seq, lens = batch()
    real = torch.arange(seq.shape[1]) >= seq.shape[1] - lens.view(-1, 1)
    assert (~real).any()  # some rows are padded
    h = m(seq, lens)
    junk = seq.clone()
    junk[~real] = torch.randint(1, N_ITEMS + 1, (int((~real).sum()),))
    torch.testing.assert_close(m(junk, lens)[real], h[real], atol=1e-5, rtol=1e-5)
    # narrower batch (less padding): the same outputs at the real positions
    w = int(lens.max()) - 1
    short_lens = lens.clamp(max=w)
    hs = m(seq[:, -w:], short_lens)
    keep = (torch.arange(w) >= w - short_lens.view(-1, 1)) & (lens.view(-1, 1) <= w)  # rows not truncated
    torch.testing.assert_close(hs[keep], h[:, -w:][keep], atol=1e-5, rtol=1e-5)


def test_next_item_objective_refused_for_bidirectional_models():
    for name in BIDIRECTIONAL:
        m = model(name)
        with pytest.raises(ConfigError, match="leak|see the target"):
            resolve_objective("next_item", m)
        assert resolve_objective("auto", m) == "cloze"


@pytest.mark.parametrize("name", BIDIRECTIONAL)
def test_cloze_positions_never_see_their_target(name):
    m = model(name)
    data = make_synthetic(n_users=6, n_items=N_ITEMS, min_len=4, max_len=30, seed=1)
    obj = ClozeCE(data.sequences, MAX_LEN, mask_prob=0.3, mask_last_prob=1.0)
    b = obj.batch(np.arange(6))
    inp, msk = obj.masked_inputs(m, b, torch.Generator().manual_seed(0))
    assert msk[:, -1].all()  # mask_last_prob = 1: the next-item situation is always practised
    logits = m.score(m(inp, b.lengths))[msk]  # (n_masked, n_items + 1)
    # change every target (the items under the masks) and the padding ids: same masked inputs, same logits
    changed = b.targets.clone()
    changed[msk] = (changed[msk] % N_ITEMS) + 1
    real = torch.arange(changed.shape[1]) >= changed.shape[1] - b.lengths.view(-1, 1)
    changed[~real] = 7
    b2 = type(b)(changed, b.lengths, changed)
    inp2, msk2 = obj.masked_inputs(m, b2, torch.Generator().manual_seed(0))
    assert torch.equal(msk2, msk)
    torch.testing.assert_close(m.score(m(inp2, b.lengths))[msk], logits, atol=1e-5, rtol=1e-5)
    # control: fed the unmasked sequence, the outputs at those positions DO depend on the target item
    h_open = m(b.targets, b.lengths)[msk]
    h_open2 = m(changed, b.lengths)[msk]
    assert not torch.allclose(h_open, h_open2)


@pytest.mark.parametrize("name", BIDIRECTIONAL)
def test_mask_readout_ignores_padding_and_sees_the_history(name):
    m = model(name)
    seq, lens = batch()
    r = m.readout(seq, lens)
    real = torch.arange(seq.shape[1]) >= seq.shape[1] - lens.view(-1, 1)
    junk = seq.clone()
    junk[~real] = 3
    torch.testing.assert_close(m.readout(junk, lens), r, atol=1e-5, rtol=1e-5)
    other = seq.clone()
    other[:, -1] = (other[:, -1] % N_ITEMS) + 1  # the last history item matters
    assert not torch.allclose(m.readout(other, lens), r)


@pytest.mark.parametrize("name", BIDIRECTIONAL)
def test_last_position_readout_is_trained_on_prefixes_only(name):
    """readout='last' (the paper's RecBole-style read-out): auto -> last_item; cloze and next_item refused."""
    model(name)  # skips if the block is missing
    m = build_model(name, N_ITEMS, MAX_LEN, {**SMALL[name], "readout": "last"}).eval()
    assert resolve_objective("auto", m) == "last_item"
    for bad in ("cloze", "next_item"):
        with pytest.raises(ConfigError):
            resolve_objective(bad, m)
    seq, lens = batch()
    torch.testing.assert_close(m.readout(seq, lens), m(seq, lens)[:, -1])  # no [MASK] appended
