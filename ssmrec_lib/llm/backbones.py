"""Causal LM backbones for the LLM recommenders: pretrained when available, else small and from scratch.

`--backbone NAME_OR_PATH`:
    gpt2-tiny | mamba-tiny | llama-tiny   built from scratch (GPT2LMHeadModel / MambaForCausalLM /
                                          LlamaForCausalLM with the small config below) and a word-level
                                          tokenizer trained on the dataset's title corpus. pretrained = False.
    a local folder                        AutoModelForCausalLM + AutoTokenizer.from_pretrained(folder).
    a hub name (e.g. gpt2)                the same, only when online (HF_HUB_OFFLINE unset); offline it raises
                                          a UserError that names the from-scratch alternatives.
Every load returns a `Backbone` whose `info()` is written into the run's config.json (name, architecture,
n_params, pretrained, tokenizer), so a tiny from-scratch model is never mistaken for GPT-2 or Llama-2-7B.
Mamba on CPU runs transformers' slow (pure PyTorch) path; on CUDA with mamba-ssm it uses the fused kernels.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..errors import UserError

SPECIAL = ["[PAD]", "[UNK]", "[BOS]", "[EOS]", "[SEP]"]  # ids 0..4 in the word-level vocabulary
LETTERS = [chr(ord("A") + i) for i in range(20)]  # LlamaRec's candidate labels A..T
TINY = ("gpt2-tiny", "mamba-tiny", "llama-tiny")


@dataclass
class Backbone:
    model: Any  # a transformers PreTrainedModel with a causal LM head
    tokenizer: Any  # a transformers PreTrainedTokenizerFast (pad, eos set)
    name: str
    arch: str
    pretrained: bool
    tokenizer_desc: str

    def n_params(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters()))

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "architecture": self.arch, "n_params": self.n_params(),
                "pretrained": self.pretrained, "tokenizer": self.tokenizer_desc,
                "vocab_size": len(self.tokenizer)}


def word_tokenizer(corpus: Iterable[str], extra_tokens: Iterable[str] = ()):
    """A word-level tokenizer trained on `corpus` (punctuation split off, case kept), every word of the corpus
    in the vocabulary, plus SPECIAL and the words `extra_tokens` (e.g. LETTERS). -> PreTrainedTokenizerFast.

    `extra_tokens` are ordinary words (added as one more corpus line), not special tokens: an added special
    token "A" would also match inside "Apollo"."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    trainer = trainers.WordLevelTrainer(special_tokens=SPECIAL, min_frequency=1)
    tok.train_from_iterator(list(corpus) + [" ".join(extra_tokens)], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   bos_token="[BOS]", eos_token="[EOS]", sep_token="[SEP]")


def tiny_model(arch: str, vocab_size: int, d_model: int = 64, n_layers: int = 2, max_positions: int = 512):
    """From-scratch causal LM. arch in TINY; D = d_model, heads = D // 32 (>= 1), Mamba d_state N = 16."""
    from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, MambaConfig,
                              MambaForCausalLM)

    ids = dict(bos_token_id=2, eos_token_id=3, pad_token_id=0)
    heads = max(1, d_model // 32)
    if arch == "gpt2-tiny":
        return GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, n_positions=max_positions, n_embd=d_model,
                                          n_layer=n_layers, n_head=heads, **ids))
    if arch == "mamba-tiny":
        return MambaForCausalLM(MambaConfig(vocab_size=vocab_size, hidden_size=d_model, state_size=16,
                                            num_hidden_layers=n_layers, expand=2, conv_kernel=4,
                                            use_mambapy=False, **ids))
    if arch == "llama-tiny":
        return LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, hidden_size=d_model, intermediate_size=2 * d_model,
                                            num_hidden_layers=n_layers, num_attention_heads=heads,
                                            num_key_value_heads=heads, max_position_embeddings=max_positions, **ids))
    raise UserError(f"unknown tiny backbone {arch!r}; available: {', '.join(TINY)}")


def load_backbone(name: str, corpus: Iterable[str] = (), *, extra_tokens: Iterable[str] = (), d_model: int = 64,
                  n_layers: int = 2, max_positions: int = 512) -> Backbone:
    """Load `name` (see the module docstring). `corpus` (titles) trains the tokenizer of a tiny backbone."""
    if name in TINY:
        tok = word_tokenizer(corpus, extra_tokens)
        model = tiny_model(name, len(tok), d_model, n_layers, max_positions)
        arch = type(model).__name__
        return Backbone(model, tok, name, f"{arch} (d={d_model}, layers={n_layers})", False,
                        f"word-level, trained on the dataset's titles ({len(tok)} tokens)")
    local = Path(name).is_dir()
    if not local and os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise UserError(f"backbone {name!r} is neither a local folder nor available offline (HF_HUB_OFFLINE is "
                        f"set). Give a folder with a saved model, or a from-scratch backbone: {', '.join(TINY)}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load backbone {name!r} ({str(e).splitlines()[0]}). Use a local folder or one "
                        f"of {', '.join(TINY)} (trained from scratch)") from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    new = [t for t in extra_tokens if len(tok.tokenize(" " + t)) != 1]
    if new:
        tok.add_tokens(new)
        model.resize_token_embeddings(len(tok))
    return Backbone(model, tok, name, type(model).__name__, True, f"{type(tok).__name__} from {name}")


def letter_token_ids(tokenizer) -> list[int]:
    """Token id of each of A..T as it appears after a space in the answer (one token each, checked)."""
    out = []
    for letter in LETTERS:
        ids = tokenizer(" " + letter, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise UserError(f"the tokenizer splits candidate letter {letter!r} into {len(ids)} tokens")
        out.append(ids[0])
    return out


def clean_query(text: str) -> str:
    """Generated text -> a query string (special tokens removed, whitespace collapsed)."""
    text = re.sub(r"\[(PAD|UNK|BOS|EOS|SEP)\]", " ", text)
    return " ".join(text.split())
