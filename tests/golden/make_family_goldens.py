#!/usr/bin/env python3
"""Tiny random Qwen2 and Qwen3 checkpoints with their logits and token ids,
for tests/check_families.c and the pair pairs/tiny-qwen2_to_tiny-qwen3.json.

  python3 tests/golden/make_family_goldens.py     (bench/requirements.txt)

Writes, for each of qwen2 and qwen3, into tests/golden/<family>/:

  model.safetensors, config.json   save_pretrained of a seeded random
      Qwen2ForCausalLM / Qwen3ForCausalLM (hidden 32, 2 layers, 4 heads over
      2 KV heads, vocab 300), weights stored as bf16. The weights are drawn
      at usable scales (HF's init gives logits near 0, which would test
      little): projections N(0, 1) / sqrt(in), biases 0.5 N(0, 1), norm
      gains 1 + 0.1 N(0, 1), embeddings N(0, 1). Qwen2 has tied embeddings and
      head_dim = hidden / heads; Qwen3 an untied head and head_dim 16.
  tokenizer.json   a byte-level BPE trained by `tokenizers` on SENTENCES
      (Qwen2's Split regex, ByteLevel, <|endoftext|> <|im_start|> <|im_end|>),
      shared by both models.
  forward.txt      the records of tests/golden/make_forward_goldens.py
      (prompt, ids, argmax, maxabs, vocab, logits, greedy 0, end) for PROMPTS,
      logits in fp32 from the bf16-rounded weights, eager attention.
  tokens.txt       per string of TOKEN_TEXTS two lines: the string with the
      corpus escapes (make_tokenizer_goldens.py), then the ids
      `tokenizers` gives it (add_special_tokens=False).
"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_forward_goldens import write_record  # noqa: E402

VOCAB = 300
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Once upon a time, in a small village by the sea, there lived an old fisherman.",
    "The movie was wonderful and the actors were great.",
    "I did not like the ending of the story at all.",
    "What is the capital of France? The capital of France is Paris.",
    "She sells sea shells by the sea shore, and the shells she sells are sea shells.",
    "A good book is a friend that never leaves you.",
    "It's raining again, so we'll stay inside and read.",
    "The three primary colors are red, yellow and blue.",
    "Please transfer 250 dollars to my savings account today.",
] * 4

PROMPTS = {
    "story": "Once upon a time, in a small village by the sea, there lived",
    "chat": "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
}

TOKEN_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "It's raining; they'll stay in, won't they?",
    "Numbers 1234 and 3.14, money $250!",
    "two  spaces,\ttab and\nnew line\r\n",
    "<|im_start|>user\nhi there<|im_end|>\n",
    "caf\u00e9 na\u00efve \u65e5\u672c\u8a9e \U0001F600",
    "",
]


def escape(s):
    """The corpus escapes: backslash, \\n, \\r, \\t, \\xHH for other control bytes."""
    named = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return "".join(named.get(c) or ("\\x%02x" % ord(c) if ord(c) < 0x20 or ord(c) == 0x7f else c) for c in s)


def make_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(SENTENCES, trainer=trainer)
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    return tok


def randomize(model, gen):
    """Weights at the scales of a trained model (see the top)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
            # what is stored is bf16: compute the goldens from the same values
            p.copy_(p.to(torch.bfloat16).to(torch.float32))


def build(family, tok, seed):
    import transformers
    common = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  rms_norm_eps=1e-6, bos_token_id=None,
                  eos_token_id=tok.token_to_id("<|endoftext|>"), pad_token_id=None)
    if family == "qwen2":
        cfg = transformers.Qwen2Config(tie_word_embeddings=True, rope_theta=50000.0, **common)
        cls = transformers.Qwen2ForCausalLM
    else:
        cfg = transformers.Qwen3Config(tie_word_embeddings=False, head_dim=16, attention_bias=False,
                                        rope_theta=1000000.0, **common)
        cls = transformers.Qwen3ForCausalLM
    torch.manual_seed(seed)
    model = cls(cfg).eval()
    model.config._attn_implementation = "eager"
    randomize(model, torch.Generator().manual_seed(seed))
    return model


@torch.no_grad()
def write(family, tok, seed):
    out = os.path.join(HERE, family)
    os.makedirs(out, exist_ok=True)
    model = build(family, tok, seed)
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    model.to(torch.float32)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(out, extra)):
            os.remove(os.path.join(out, extra))
    tok.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "forward.txt"), "w") as f:
        for name, text in PROMPTS.items():
            ids = tok.encode(text).ids
            logits = model(torch.tensor([ids]), use_cache=False).logits[0]
            write_record(f, name, 0, ids, logits, {}, [])
    with open(os.path.join(out, "tokens.txt"), "w") as f:
        for text in TOKEN_TEXTS:
            f.write(escape(text) + "\n")
            f.write(" ".join(map(str, tok.encode(text, add_special_tokens=False).ids)) + "\n")
    emb = model.model.embed_tokens.weight.double()
    print("%s: embed_rms %.6f, %d bytes of weights" % (
        family, float(emb.pow(2).mean().sqrt()), os.path.getsize(os.path.join(out, "model.safetensors"))))


def main():
    tok = make_tokenizer()
    write("qwen2", tok, 2)
    write("qwen3", tok, 3)


if __name__ == "__main__":
    main()
