#!/usr/bin/env python3
"""Goldens of the BERT family (all-MiniLM-L6-v2, the interlingua's frozen
sentence encoder) for tests/check_wordpiece.c and tests/check_bert.c.

  python3 tests/golden/make_bert_goldens.py     (bench/requirements.txt)
  python3 tests/golden/make_bert_goldens.py --full-dev DIR
      writes DIR/corpus.txt, DIR/minilm.ids and DIR/minilm.decoded (the files
      below, not stored) for every distinct string of every dev set in
      ../shared/data, whole; LWC_WORDPIECE_FULL=DIR out/tests/check_wordpiece
      then checks them too.

Needs ../shared/models/minilm-l6-v2/tokenizer.json ($LWC_SHARED) and, for the
real model's hidden states, models/minilm-l6-v2/ as scripts/fetch-models.sh
puts it there ($LWC_MODELS; that part is skipped, with a note, without it).
Writes into tests/golden/bert/:

  corpus.txt       real text with the corpus escapes of make_tokenizer_goldens.py:
                   hand-written edge cases (accents, CJK, Hangul, control
                   characters, invalid UTF-8, special tokens in the text, words
                   of 100 and 101 characters), then lines of the dev sets in
                   ../shared/data that hold non-ASCII text, then others
                   (seeded sample, cut at a word boundary near 300 bytes), then
                   the first two SQuAD dev contexts whole (over 128 ids: the
                   fetched tokenizer.json's truncation is not applied).
  minilm.ids       line i: MiniLM's ids of corpus string i (add_special_tokens=True,
                   no truncation).
  minilm.decoded   line i: decode(ids, skip_special_tokens=False), escaped.
  shared_corpus.ids  the ids of the first SHARED_LINES strings of
                   tests/golden/tokenizer/corpus.txt (its edge cases, sst2 and
                   agnews lines; add_special_tokens=False).
  tiny/            a seeded random BertModel (hidden 32, 2 layers, 4 heads, FFN 64,
                   GELU (erf), 64 positions, 2 token types) at usable scales
                   (projections N(0,1)/sqrt(in), biases 0.5 N(0,1), LayerNorm gains
                   1 + 0.1 N(0,1) and biases 0.1 N(0,1), embeddings N(0,1)), weights
                   stored bf16 (model.safetensors + config.json), a WordPiece
                   tokenizer.json over a vocabulary of SENTENCES (make_tiny_tokenizer;
                   BERT's normalizer, pre-tokenizer and [CLS]/[SEP] template), and
                   hidden.txt: records of its last hidden states (fp32 from the
                   bf16-rounded weights, eager attention).
  minilm_hidden.txt  the same records for the real MiniLM (every 12th column of
                   the hidden states, to keep the file small; the mean pool in full).

Record format (hidden.txt, minilm_hidden.txt), whitespace separated:
  case NAME T H
  ids T ints    types T ints    mask T ints
  maxabs X      (largest |hidden| over the unmasked rows, all columns)
  cols K c_1..c_K                      (the columns stored)
  hidden T*K floats (row-major)        (every row, masked rows included)
  pooled H floats  (mean of the unmasked rows, as sentence-transformers pools)
  end
"""
import json
import os
import random
import re
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_tokenizer_goldens import escape, read_corpus  # noqa: E402

OUT = os.path.join(HERE, "bert")
SHARED = os.environ.get("LWC_SHARED", "/work/shared")
MODELS = os.environ.get("LWC_MODELS", os.path.join(HERE, "..", "..", "models"))
SEED = 20261207
DEV_SETS = ["squad", "hotpotqa", "boolq", "piqa", "csqa", "gsm8k"]
N_NON_ASCII, N_PLAIN = 120, 60
SHARED_LINES = 800
VOCAB = 160

LONG100 = "a" * 100
EDGE = [
    "", " ", "Hello, World!", "HELLO world", "don't stop-believing... (really?!)",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m \u0141\u00f3d\u017a S\u00e3o Paulo",
    "cafe\u0301 (combining acute)", "\u0130stanbul \u0049\u0307 dotted", "\u039f\u0394\u039f\u03a3 \u03c3\u03bf\u03c6\u03af\u03b1",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", "\u4e2d\u6587\u5b57\u7b26\u6d4b\u8bd5abc\u4e2d", "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645", "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!", "\u0e44\u0e17\u0e22 \u0e20\u0e32\u0e29\u0e32",
    "\U0001F600 emoji \U0001F44D\U0001F3FD \U0001F469\u200d\U0001F4BB", "zero\u200bwidth\u200djoiner",
    "tab\there\nnew line\r\nand\u00a0nbsp\u3000ideographic space", "a\u0000b\u0001c\u007fd\u0085e",
    "soft\u00adhyphen and \ufeffBOM", "private \ue000 use", "\ufffd replacement", "x\u2028y\u2029z",
    "[CLS] [SEP] [MASK] [PAD] [UNK]", "text[SEP]more[CLS]", "[cls] lowercase is not special", "[SEP",
    LONG100, "a" * 101, "b" + LONG100 + " short", "\u00e9" * 101,
    "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "$1,299.99 +1 (555) 123-4567 2024-06-11 10:30pm v1.2.3 3.14159 \u00bd \u00b2 \u2460",
    "http://example.com/a?b=c&d=e user@example.com C:\\path {\"json\": [1, 2]}",
    "\u201cquoted\u201d \u2018single\u2019 \u2014 em-dash \u2013 en-dash \u2026 \u00ab\u00bb \u00bf\u00a1",
    "\uff21\uff22\uff23 fullwidth \uff01\uff1f", "\u2122 \u00a9 \u00ae \u00b0C \u20ac100 \u00a5 \u00a3",
    "Zalgo z\u0336\u0358a\u0337\u035dl", "\u1e9e \u00df Stra\u00dfe", "\u01c5 \u01c4 titlecase",
]


def edge_bytes():
    out = [s.encode("utf-8") for s in EDGE]
    out += [b"bad \xff\xfe utf8", b"cut \xe6\x97", b"\xc3\x28 x", b"ok \xed\xa0\x80 surrogate"]
    return out


def strings_of(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from strings_of(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from strings_of(v)


def cut(s, n=300):
    s = " ".join(s.split())
    if len(s.encode("utf-8")) <= n:
        return s
    b = s.encode("utf-8")[:n].decode("utf-8", errors="ignore")
    return b.rsplit(" ", 1)[0] if " " in b else b


def sample_dev():
    rng = random.Random(SEED)
    seen, non_ascii, plain = set(), [], []
    for name in DEV_SETS:
        with open(os.path.join(SHARED, "data", name, "dev.jsonl"), encoding="utf-8") as f:
            for line in f:
                for s in strings_of(json.loads(line)):
                    for part in re.split(r"(?<=[.!?])\s+", s):
                        part = cut(part)
                        if len(part) < 20 or part in seen:
                            continue
                        seen.add(part)
                        (plain if part.isascii() else non_ascii).append(part)
    non_ascii.sort()
    plain.sort()
    return rng.sample(non_ascii, N_NON_ASCII) + rng.sample(plain, N_PLAIN)


def long_contexts():
    out = []
    with open(os.path.join(SHARED, "data", "squad", "dev.jsonl"), encoding="utf-8") as f:
        for line in f:
            c = json.loads(line)["context"]
            if c not in out:
                out.append(c)
            if len(out) == 2:
                return out
    raise ValueError("squad dev has fewer than two contexts")


def write_lines(path, lines):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")
    os.replace(tmp, path)


def minilm_tokenizer():
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(SHARED, "models", "minilm-l6-v2", "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def write_corpus_goldens(tok, out, corpus):
    """corpus.txt, minilm.ids and minilm.decoded of corpus (bytes) into out;
    returns the ids."""
    write_lines(os.path.join(out, "corpus.txt"), [escape(b) for b in corpus])
    assert read_corpus(os.path.join(out, "corpus.txt")) == corpus, "corpus escape round trip"
    texts = [b.decode("utf-8", errors="replace") for b in corpus]
    encs = [tok.encode(t, add_special_tokens=True).ids for t in texts]
    write_lines(os.path.join(out, "minilm.ids"), [" ".join(map(str, ids)) for ids in encs])
    dec = [escape(tok.decode(ids, skip_special_tokens=False).encode("utf-8")) for ids in encs]
    write_lines(os.path.join(out, "minilm.decoded"), dec)
    return encs


def full_dev(out):
    os.makedirs(out, exist_ok=True)
    seen = {}
    for name in sorted(os.listdir(os.path.join(SHARED, "data"))):
        path = os.path.join(SHARED, "data", name, "dev.jsonl")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    for s in strings_of(json.loads(line)):
                        seen.setdefault(s, None)
    corpus = [s.encode("utf-8") for s in seen if s]
    encs = write_corpus_goldens(minilm_tokenizer(), out, corpus)
    print("full dev: %d strings, %d bytes, %d ids in %s" % (len(corpus), sum(map(len, corpus)),
                                                            sum(map(len, encs)), out))


def tokenizer_goldens():
    tok = minilm_tokenizer()
    corpus = edge_bytes() + [s.encode("utf-8") for s in sample_dev() + long_contexts()]
    encs = write_corpus_goldens(tok, OUT, corpus)
    assert max(map(len, encs)) > 128
    shared = read_corpus(os.path.join(HERE, "tokenizer", "corpus.txt"))[:SHARED_LINES]
    ids = [tok.encode(b.decode("utf-8", errors="replace"), add_special_tokens=False).ids for b in shared]
    write_lines(os.path.join(OUT, "shared_corpus.ids"), [" ".join(map(str, i)) for i in ids])
    unk = tok.token_to_id("[UNK]")
    print("wordpiece: %d corpus strings, %d ids (%d [UNK]); shared corpus %d strings" % (
        len(corpus), sum(map(len, encs)), sum(e.count(unk) for e in encs), len(shared)))


# ---- hidden states -------------------------------------------------------------

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Once upon a time, in a small village by the sea, there lived an old fisherman.",
    "The movie was wonderful and the actors were great.",
    "What is the capital of France? The capital of France is Paris.",
    "She sells sea shells by the sea shore.",
    "A good book is a friend that never leaves you.",
    "It's raining again, so we'll stay inside and read.",
    "Caf\u00e9 au lait and cr\u00e8me br\u00fbl\u00e9e in the old town.",
] * 3


def write_record(f, name, ids, types, mask, hidden, cols):
    h = hidden.double().numpy()
    m = np.array(mask, dtype=bool)
    T, H = h.shape
    f.write("case %s %d %d\n" % (name, T, H))
    for key, v in (("ids", ids), ("types", types), ("mask", mask)):
        f.write("%s %s\n" % (key, " ".join(map(str, v))))
    f.write("maxabs %.9g\n" % np.abs(h[m]).max())
    f.write("cols %d %s\n" % (len(cols), " ".join(map(str, cols))))
    f.write("hidden\n")
    for t in range(T):
        f.write(" ".join("%.7g" % h[t, c] for c in cols) + "\n")
    f.write("pooled\n" + " ".join("%.7g" % x for x in h[m].mean(axis=0)) + "\nend\n")


@torch.no_grad()
def write_cases(path, model, tok, cols):
    """single sentence; a sentence pair (token types 1); two sentences padded
    to one length, as a batch, with the attention mask."""
    a, b = SENTENCES[0], SENTENCES[6]
    with open(path, "w") as f:
        cases = []
        for name, enc in (("single", tok.encode(a)), ("pair", tok.encode(a, b))):
            cases.append((name, enc.ids, enc.type_ids, enc.attention_mask))
        tok.enable_padding(pad_id=tok.token_to_id("[PAD]"), pad_token="[PAD]")
        batch = tok.encode_batch([SENTENCES[1], SENTENCES[4]])
        tok.no_padding()
        for i, enc in enumerate(batch):
            cases.append(("batch%d" % i, enc.ids, enc.type_ids, enc.attention_mask))
        out = model(input_ids=torch.tensor([c[1] for c in cases[2:]]),
                    token_type_ids=torch.tensor([c[2] for c in cases[2:]]),
                    attention_mask=torch.tensor([c[3] for c in cases[2:]])).last_hidden_state
        for k, (name, ids, types, mask) in enumerate(cases):
            if k < 2:
                hidden = model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types]),
                               attention_mask=torch.tensor([mask])).last_hidden_state[0]
            else:
                hidden = out[k - 2]
            write_record(f, name, ids, types, mask, hidden, cols)
    assert 0 in cases[3][3], "the second batch row is padded"


def make_tiny_tokenizer():
    """A WordPiece vocabulary made the same way on every run (`tokenizers`'
    trainer breaks ties by hash order): the specials, every character of
    SENTENCES (lowercased, accents stripped) alone and as a ## continuation,
    then the most frequent whole words and ## suffixes up to VOCAB pieces."""
    import collections
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, decoders
    norm, pre = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = collections.Counter(w for s in SENTENCES for w, _ in pre.pre_tokenize_str(norm.normalize_str(s)))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({c for w in words for c in w})
    pieces = specials + chars + ["##" + c for c in chars]
    for w, _ in sorted(words.items(), key=lambda x: (-x[1], x[0])):
        if len(pieces) < 140 and len(w) > 1:
            pieces.append(w)
    suffixes = collections.Counter("##" + w[-k:] for w in words for k in (2, 3) if len(w) > k)
    for p, _ in sorted(suffixes.items(), key=lambda x: (-x[1], x[0])):
        if len(pieces) < VOCAB and p not in pieces:
            pieces.append(p)
    assert len(pieces) == VOCAB, len(pieces)
    tok = Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]",
                                     max_input_chars_per_word=100))
    tok.add_special_tokens(specials)
    tok.normalizer = norm
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


def tiny_goldens():
    import transformers
    tok = make_tiny_tokenizer()
    out = os.path.join(OUT, "tiny")
    os.makedirs(out, exist_ok=True)
    cfg = transformers.BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=64, hidden_act="gelu",
                                  max_position_embeddings=64, type_vocab_size=2, layer_norm_eps=1e-12,
                                  pad_token_id=tok.token_to_id("[PAD]"))
    torch.manual_seed(1)
    model = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    model.config._attn_implementation = "eager"
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif "LayerNorm.bias" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif "embeddings" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
            p.copy_(p.to(torch.bfloat16).to(torch.float32))   # stored bf16: goldens from the same values
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    model.to(torch.float32)
    tok.save(os.path.join(out, "tokenizer.json"))
    write_cases(os.path.join(out, "hidden.txt"), model, tok, list(range(32)))
    print("tiny: vocab %d, %d bytes of weights" % (tok.get_vocab_size(),
                                                   os.path.getsize(os.path.join(out, "model.safetensors"))))


def minilm_goldens():
    import transformers
    from tokenizers import Tokenizer
    path = os.path.join(MODELS, "minilm-l6-v2")
    if not os.path.exists(os.path.join(path, "model.safetensors")):
        print("minilm: %s has no model.safetensors (scripts/fetch-models.sh); minilm_hidden.txt kept" % path)
        return
    tok = Tokenizer.from_file(os.path.join(SHARED, "models", "minilm-l6-v2", "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    model = transformers.BertModel.from_pretrained(path, add_pooling_layer=False).eval()
    model.config._attn_implementation = "eager"
    write_cases(os.path.join(OUT, "minilm_hidden.txt"), model, tok, list(range(0, 384, 12)))
    print("minilm: written")


def main():
    if sys.argv[1:2] == ["--full-dev"] and len(sys.argv) == 3:
        return full_dev(sys.argv[2])
    os.makedirs(OUT, exist_ok=True)
    tokenizer_goldens()
    tiny_goldens()
    minilm_goldens()


if __name__ == "__main__":
    main()
