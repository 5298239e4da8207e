#!/usr/bin/env python3
"""Writes the shared tokenizer corpus and the byte-level BPE golden ids.

  python3 tests/golden/make_tokenizer_goldens.py            # corpus + goldens
  python3 tests/golden/make_tokenizer_goldens.py --corpus   # corpus only

Corpus format (tests/golden/tokenizer/corpus.txt), read by C tests too:
  one string per line, UTF-8; these escapes are used and nothing else:
    \\\\ backslash   \\n newline   \\r carriage return   \\t tab
    \\xHH one raw byte (used for other control bytes and for invalid UTF-8)
  A line is turned back into bytes by undoing the escapes; an empty line is
  the empty string. Strings holding invalid UTF-8 are given to HF (which takes
  Python str) as bytes.decode('utf-8', errors='replace'): one U+FFFD per
  maximal invalid subpart. The C tokenizers do the same replacement.

Golden format (tests/golden/tokenizer/<name>.ids): line i holds the ids of
corpus string i (add_special_tokens=False), space-separated; an empty line is
an empty encoding. <name>.splits: line i holds the UTF-8 byte lengths of the
pieces HF's Split(<regex>, "isolated") pre-tokenizer cuts string i into (no
tokenizer file of Llama 3 or Qwen2 is here, so their regexes are checked alone).
smollm2_variant.ids: add_special_tokens=True through SmolLM2's tokenizer.json
with the changes of VARIANT_FLAGS and a TemplateProcessing post-processor.
"""
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tokenizer")
SHARED = os.environ.get("LWC_SHARED", "/work/shared")
MODELS = os.environ.get("LWC_MODELS", "/work/main/models")

SEED = 20240611
PER_DATASET = 500
DATASETS = ["sst2", "agnews", "trec", "banking77"]

# Hand-written edge cases, as bytes (so invalid UTF-8 can be written).
EDGE = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r\n\r\n", " \n ", "\t\t x", " \t\n\r ",
    "hello", " hello", "hello ", "  hello  ", "hello  world", "hello\tworld", "hello\nworld",
    "hello\r\nworld", "hello\n\n\nworld", "line one\n  indented\n\ttabbed\n", "a  b   c    d",
    "trailing spaces   ", "   leading spaces", "x\u00a0y", "non\u2003breaking\u3000space", "a\u2028b\u2029c",
    "a\u0085b", "a\u000bb\u000cc", "zero\u200bwidth", "\u200d", "a\u001fb\u001cc",
    "I'm", "you're", "they've", "she'll", "he'd", "it's", "don't", "IT'S", "I'M", "YOU'RE", "WE'LL",
    "HE'D", "THEY'VE", "DON'T", "John'S car", "'s", "'S", "''s", "'ll'll", "rock 'n' roll", "’s curly",
    "123", "1234567890", "12345678901234567890123456789", "3.14159", "1,000,000", "1,234.56",
    "$1,299.99", "-42", "+1 (555) 123-4567", "2024-06-11", "10:30pm", "v1.2.3", "0x1F", "1e-10",
    "ⅫⅣ roman", "٣٤٥ arabic digits", "१२३ devanagari digits", "½ ¾ ² ³", "①②③", "x²+y²=z²",
    "日本語のテキスト", "中文字符测试", "한국어 텍스트", "ひらがな カタカナ", "日本 語", "漢字123",
    "مرحبا بالعالم", "العربية ١٢٣", "שלום עולם", "नमस्ते दुनिया", "हिन्दी", "ไทย ภาษา", "Ελληνικά", "Привет, мир!",
    "e\u0301", "cafe\u0301", "n\u0303o", "a\u0300\u0301\u0302", "\u0301 lone mark", "Zalgo z\u0336\u0358a\u0337\u035dl",
    "😀", "😀😀😀", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸🇫🇷", "I ❤️ NY", "emoji😀inside",
    " 😀 spaced 😀 ", "🤷🏿‍♀️", "✊🏻✊🏼✊🏽✊🏾✊🏿", "a👋b", "🎉🎉 party!!!",
    "<|endoftext|>", "<|im_start|>user hi<|im_end|>", "<|im_start|>system\nYou are helpful.<|im_end|>\n",
    "text<|endoftext|>more", " <|endoftext|> ", "<|endoftext|><|endoftext|>", "<|endoftext", "<|im_start|",
    "<|im_start|>assistant\n", "<s>hello</s>", "[INST] hi [/INST]", "<start_of_turn>user\nhi<end_of_turn>",
    "<bos>", "<pad>", "<unk>", "<|begin_of_text|>", "<repo_name>x<file_sep>",
    "!!!", "...", "?!?!", "---", "***bold***", "@user #tag", "http://example.com/a?b=c&d=e",
    "user@example.com", "C:\\path\\to\\file", "{\"json\": [1, 2, 3]}", "def f(x):\n    return x**2\n",
    "for (int i = 0; i < n; i++) {}", "snake_case_name", "CamelCaseName", "ALLCAPS", "MiXeD cAsE",
    "tab\tseparated\tvalues", "a.b.c", "end.", "(parens)", "[brackets]", "«guillemets»", "“quotes”",
    "–dash—em", "…", "©®™", "€£¥", "°C", "±×÷", "∑∫√∞", "→←↑↓",
    "a" * 300, "ab " * 100, "\n" * 50, " " * 100 + "x", "9" * 200, "😀" * 40,
    "Hello World! How are you doing today? I'm fine, thanks.",
    "The quick brown fox jumps over the lazy dog.",
    "Ünïcödé àccénts çà et là", "straße", "ǅ titlecase", "ﬁ ligature", "Ｆｕｌｌｗｉｄｔｈ １２３",
    "ℌ𝔢𝔩𝔩𝔬 math", "𝟏𝟐𝟑 math digits", "\U0001F600\U0001F601", "\U000E0001 tag", "\ufeffBOM",
    "\ufffd", "a\ufffdb", "\x00", "nul\x00inside", "\x7f", "\x01\x02\x03",
]
EDGE_BYTES = [s.encode("utf-8") for s in EDGE] + [
    b"\xff", b"\xfe\xff", b"abc\x80def", b"\xc3", b"\xc3(", b"\xe2\x82", b"\xe2\x82(", b"\xf0\x9f\x98",
    b"\xf0\x9f\x98 x", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80",
    b"ok \x80\x81\x82 ok", b"caf\xe9", b"\xe0\x80\x80", b"\xef\xbf\xbf", b"\xf0\x90\x80", b"x\xc2",
]


def escape(b):
    out = []
    for c in b.decode("utf-8", errors="surrogateescape"):
        o = ord(c)
        if c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif 0xDC80 <= o <= 0xDCFF:
            out.append("\\x%02X" % (o - 0xDC00))
        elif o < 0x20 or o == 0x7F or o in (0x85, 0x2028, 0x2029):
            # keep one string per line for every line-splitting reader
            out.append("".join("\\x%02X" % x for x in c.encode("utf-8")))
        else:
            out.append(c)
    return "".join(out)


def unescape(line):
    out = bytearray()
    i = 0
    raw = line.encode("utf-8")
    while i < len(raw):
        c = raw[i]
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        n = raw[i + 1:i + 2]
        if n == b"\\":
            out.append(0x5C); i += 2
        elif n == b"n":
            out.append(0x0A); i += 2
        elif n == b"r":
            out.append(0x0D); i += 2
        elif n == b"t":
            out.append(0x09); i += 2
        elif n == b"x":
            out.append(int(raw[i + 2:i + 4], 16)); i += 4
        else:
            raise ValueError("bad escape in %r" % line)
    return bytes(out)


def sample_lines():
    rng = random.Random(SEED)
    texts = []
    for name in DATASETS:
        with open(os.path.join(SHARED, "data", name, "train.jsonl"), encoding="utf-8") as f:
            rows = [json.loads(l)["text"] for l in f if l.strip()]
        texts += rng.sample(rows, PER_DATASET)
    return [t.encode("utf-8") for t in texts]


def write_corpus(path):
    strings = EDGE_BYTES + sample_lines()
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for s in strings:
            f.write(escape(s) + "\n")
    os.replace(tmp, path)


def read_corpus(path):
    with open(path, encoding="utf-8", newline="\n") as f:
        lines = f.read().split("\n")
    assert lines[-1] == ""
    return [unescape(l) for l in lines[:-1]]


def write_ids(path, all_ids):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for ids in all_ids:
            f.write(" ".join(map(str, ids)) + "\n")
    os.replace(tmp, path)


def main():
    corpus_path = os.path.join(OUT, "corpus.txt")
    write_corpus(corpus_path)
    corpus = read_corpus(corpus_path)
    assert corpus == EDGE_BYTES + sample_lines(), "corpus escape round trip"
    print("corpus: %d strings (%d hand-written)" % (len(corpus), len(EDGE_BYTES)))
    if "--corpus" in sys.argv:
        return
    texts = [b.decode("utf-8", errors="replace") for b in corpus]
    make_goldens(texts)


def make_goldens(texts):
    from tokenizers import Tokenizer
    from tokenizers.implementations import ByteLevelBPETokenizer

    smol = Tokenizer.from_file(os.path.join(SHARED, "models/smollm2-135m-instruct/tokenizer.json"))
    smol_ids = [smol.encode(t, add_special_tokens=False).ids for t in texts]
    for t, ids in zip(texts, smol_ids):
        assert smol.decode(ids, skip_special_tokens=False) == t
    write_ids(os.path.join(OUT, "smollm2.ids"), smol_ids)

    gdir = os.path.join(SHARED, "models/tokenizers/gpt2")
    gpt2 = ByteLevelBPETokenizer(os.path.join(gdir, "encoder.json"), os.path.join(gdir, "vocab.bpe"))
    gpt2.add_special_tokens(["<|endoftext|>"])
    gpt2_ids = [gpt2.encode(t).ids for t in texts]
    check_gpt2_slow(gdir, texts, gpt2_ids)
    write_ids(os.path.join(OUT, "gpt2.ids"), gpt2_ids)

    write_splits(texts)
    write_variant(texts)
    check_gguf_agrees(texts, smol_ids)
    print("goldens written")


SPLITS = {
    "llama3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}


# SmolLM2's tokenizer.json with added-token flags and a post-processor the
# shipped file does not use, to hold their HF semantics; the C test makes the
# same changes (check_tokenizer_bpe.c: make_variant).
VARIANT_FLAGS = {"<|endoftext|>": ("lstrip", "rstrip"), "<|im_start|>": ("lstrip",),
                 "<|im_end|>": ("rstrip",), "<repo_name>": ("single_word",)}


def write_variant(texts):
    from tokenizers import Tokenizer
    with open(os.path.join(SHARED, "models/smollm2-135m-instruct/tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    for tok in tj["added_tokens"]:
        for flag in VARIANT_FLAGS.get(tok["content"], ()):
            tok[flag] = True
    tj["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "<|im_end|>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [1], "tokens": ["<|im_start|>"]},
                           "<|im_end|>": {"id": "<|im_end|>", "ids": [2], "tokens": ["<|im_end|>"]}},
    }
    tok = Tokenizer.from_str(json.dumps(tj))
    write_ids(os.path.join(OUT, "smollm2_variant.ids"), [tok.encode(t).ids for t in texts])


def write_splits(texts):
    from tokenizers import Regex, pre_tokenizers
    for name, regex in SPLITS.items():
        split = pre_tokenizers.Split(Regex(regex), "isolated")
        rows = []
        for t in texts:
            pieces = split.pre_tokenize_str(t)
            assert "".join(p for p, _ in pieces) == t
            rows.append([len(p.encode("utf-8")) for p, _ in pieces])
        write_ids(os.path.join(OUT, name + ".splits"), rows)


def check_gpt2_slow(gdir, texts, ids):
    """transformers' Python GPT2Tokenizer (regex module) must agree with the Rust one."""
    from transformers import GPT2Tokenizer
    slow = GPT2Tokenizer(os.path.join(gdir, "encoder.json"), os.path.join(gdir, "vocab.bpe"))
    bad = [t for t, i in zip(texts, ids) if slow.encode(t) != i]
    print("gpt2: slow tokenizer disagrees on %d strings" % len(bad))
    for t in bad[:5]:
        print("   ", repr(t))


def check_gguf_agrees(texts, smol_ids):
    """Reports whether transformers' GGUF loading agrees with tokenizer.json.

    It does not fully: transformers rebuilds a plain ByteLevel pre-tokenizer and
    ignores tokenizer.ggml.pre == "smollm", which (as in llama.cpp) means the
    Digits(individual_digits) split first, so non-ASCII numbers such as '½'
    or '١' differ. The C test therefore holds the C GGUF tokenizer to the
    tokenizer.json goldens, which is what llama.cpp's "smollm" pre-tokenizer does."""
    path = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
    try:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    except Exception as e:  # noqa: BLE001 - report and go on: the C test compares GGUF to JSON anyway
        print("gguf: transformers could not load %s: %s" % (path, e))
        return
    bad = [t for t, i in zip(texts, smol_ids) if tok.encode(t, add_special_tokens=False) != i]
    print("gguf: transformers' GGUF tokenizer disagrees with tokenizer.json on %d strings" % len(bad))
    for t in bad[:5]:
        print("   ", repr(t))


if __name__ == "__main__":
    main()
