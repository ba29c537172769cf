"""LLM-based recommenders over item text (the paper's GPT4Rec, MamRec and LlamaRec rows).

Glossary
    backbone      a causal language model (GPT-2, Mamba or Llama classes from transformers); either loaded
                  pretrained from a local folder / the hub, or built small and trained from scratch on the
                  dataset's title corpus (then every result row says `pretrained: false`).
    prompt        text made of the titles of the user's history, oldest first, most recent last, truncated.
    query         a text the LM generates from the prompt (GPT4Rec: k queries by beam search, k = num_beams).
    BM25          lexical retrieval over item titles (the `bm25s` library).
    verbalizer    LlamaRec: candidates are labelled A..T; the LM's next-token logits of those letter tokens at the
                  answer position are the candidates' scores.
    miss          the target is not in the model's ranked list: HR/NDCG/MRR contribute 0 at every K.

Modules: backbones.py (load / build), prompts.py (text), bm25.py (retrieval), lm_train.py (fine-tuning loop),
gpt4rec.py (GPT4Rec / MamRec), llamarec.py (LlamaRec), ranking.py (metrics from ranked lists), runs.py (run folders).
Nothing here downloads at import; a hub name is only fetched when asked for and online.
References: Li et al. 2023 "GPT4Rec" (no official code); Yue et al. 2023 "LlamaRec" (Yueeeeeeee/LlamaRec).
"""
