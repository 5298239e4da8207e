#!/usr/bin/env python3
"""Golden ids and decoded texts for the SentencePiece-style tokenizers.

  python3 tests/golden/make_spm_goldens.py

Input: the shared corpus tests/golden/tokenizer/corpus.txt (written by
make_tokenizer_goldens.py; same escapes, read with its read_corpus()).
Strings with invalid UTF-8 reach HF as bytes.decode('utf-8', errors='replace').

Output, in tests/golden/tokenizer_spm/ (line i belongs to corpus string i):
  <name>.ids   ids of encode(add_special_tokens=False), space-separated
  <name>.dec   decode(those ids, skip_special_tokens=False), escaped as the corpus
for these references:
  llama2_json   tokenizers.Tokenizer.from_file(llama2/tokenizer.json) (its vocabulary is
                Mistral 7B v0.1's: the same scheme as Llama 2)
  llama2_model  llama2/tokenizer.model (the real Llama 2 vocabulary) as HF's legacy Llama
                conversion builds it: BPE with merges from generate_merges(vocab, scores),
                Prepend("▁") + Replace(" ", "▁"), <unk>/<s>/</s> as added tokens, BOS
                post-processor; checked here against the sentencepiece library itself on
                every string without added-token text in it
  llama2_gguf   transformers' AutoTokenizer.from_pretrained(gguf_file=...) on a GGUF holding only
                the tokenizer of llama2/tokenizer.model (tokens, scores, token types as the
                sentencepiece library reports them; bos 1, eos 2, unk 0, add_bos_token),
                written here to a temporary folder; check_tokenizer_spm.c builds the same
                GGUF from tokenizer.model. This is HF's path for non-Gemma "llama" GGUFs
                (Llama 2, Mistral): Metaspace(prepend_scheme=first), merges ranked by score
  gemma3        transformers' AutoTokenizer.from_pretrained(gguf_file=gemma-3-270m-q4_k_m.gguf)
  stories260k   tok512.bin, by a line-for-line Python port of llama2.c run.c encode/decode
                (no HF tokenizer exists for it); raw bytes, no U+FFFD replacement, as run.c
It also asserts encode(add_special_tokens=True) == [BOS] + ids for every string.

  chat.txt      chat templates rendered by transformers' own Jinja environment
                (render_jinja_template, add_generation_prompt=True): SmolLM2's template
                read from its GGUF; Gemma 3 (its GGUF has none), Llama 3.1 Instruct and
                Mistral 7B Instruct v0.3 typed below from their published
                tokenizer_config.json (the branches for tools and images left out: they
                do not run for a text-only single turn). Records of 6 lines: template name,
                system ("!" = none, else "=" + escaped text), "=" + user_before,
                "=" + user_after, rendering of user_before + user_after, rendering of
                user_before + "<<SOFT>>" + user_after.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tokenizer_spm")
SHARED = os.environ.get("LWC_SHARED", "/work/shared")
MODELS = os.environ.get("LWC_MODELS", "/work/main/models")

sys.path.insert(0, HERE)
from make_tokenizer_goldens import escape, read_corpus  # noqa: E402


def write_lines(path, lines):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")
    os.replace(tmp, path)


def write_golden(name, all_ids, decoded):
    write_lines(os.path.join(OUT, name + ".ids"), [" ".join(map(str, ids)) for ids in all_ids])
    write_lines(os.path.join(OUT, name + ".dec"),
                [escape(d if isinstance(d, bytes) else d.encode("utf-8", "surrogatepass")) for d in decoded])
    print("%s: %d strings, %d ids" % (name, len(all_ids), sum(map(len, all_ids))))


def check_bos(name, enc_special, all_ids, texts, bos):
    bad = [t for t, ids in zip(texts, all_ids) if enc_special(t) != [bos] + ids]
    assert not bad, "%s: add_special_tokens=True is not BOS + ids for %r" % (name, bad[:3])


def llama2_json(texts):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(SHARED, "models/tokenizers/llama2/tokenizer.json"))
    ids = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    check_bos("llama2_json", lambda t: tok.encode(t).ids, ids, texts, 1)
    write_golden("llama2_json", ids, [tok.decode(i, skip_special_tokens=False) for i in ids])


def llama2_model(texts):
    import sentencepiece as spm
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE
    from transformers.tokenization_utils_base import generate_merges

    path = os.path.join(SHARED, "models/tokenizers/llama2/tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=path)
    n = sp.get_piece_size()
    pieces = [sp.id_to_piece(i) for i in range(n)]
    vocab = {p: i for i, p in enumerate(pieces)}
    scores = {p: sp.get_score(i) for i, p in enumerate(pieces)}
    tok = Tokenizer(BPE(vocab=vocab, merges=generate_merges(vocab, scores), unk_token="<unk>",
                        fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    special = [i for i in range(n) if sp.is_control(i) or sp.is_unknown(i)]
    tok.add_special_tokens([AddedToken(pieces[i], normalized=False, special=True) for i in special])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    ids = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    check_bos("llama2_model", lambda t: tok.encode(t).ids, ids, texts, 1)
    plain = [(t, i) for t, i in zip(texts, ids) if not any(pieces[s] in t for s in special)]
    bad = [t for t, i in plain if sp.encode(t) != i]
    print("llama2_model: sentencepiece disagrees on %d of %d strings without special text" % (len(bad), len(plain)))
    assert not bad, bad[:5]
    write_golden("llama2_model", ids, [tok.decode(i, skip_special_tokens=False) for i in ids])


def gemma3(texts):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(MODELS, gguf_file="gemma-3-270m-q4_k_m.gguf")
    ids = [tok.encode(t, add_special_tokens=False) for t in texts]
    check_bos("gemma3", lambda t: tok.encode(t), ids, texts, tok.bos_token_id)
    # sanity: the published Gemma 3 ids of a few strings
    assert tok.encode("Hello world", add_special_tokens=False) == [9259, 1902]
    assert tok.convert_tokens_to_ids("<start_of_turn>") == 105
    write_golden("gemma3", ids, [tok.decode(i, skip_special_tokens=False) for i in ids])


def llama2_gguf(texts):
    import tempfile

    import gguf
    import sentencepiece as spm
    from transformers import AutoTokenizer

    sp = spm.SentencePieceProcessor(model_file=os.path.join(SHARED, "models/tokenizers/llama2/tokenizer.model"))
    n = sp.get_piece_size()
    types = [2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else 5 if sp.is_unused(i)
             else 1 for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        w = gguf.GGUFWriter(os.path.join(tmp, "tok.gguf"), "llama")
        w.add_tokenizer_model("llama")
        w.add_token_list([sp.id_to_piece(i) for i in range(n)])
        w.add_token_scores([sp.get_score(i) for i in range(n)])
        w.add_token_types(types)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_add_bos_token(True)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        tok = AutoTokenizer.from_pretrained(tmp, gguf_file="tok.gguf")
    ids = [tok.encode(t, add_special_tokens=False) for t in texts]
    check_bos("llama2_gguf", lambda t: tok.encode(t), ids, texts, 1)
    assert tok.encode("Hello world", add_special_tokens=False) == [15043, 3186]
    write_golden("llama2_gguf", ids, [tok.decode(i, skip_special_tokens=False) for i in ids])


# ---- llama2.c run.c, ported line for line ----

def read_tok512(path):
    data = open(path, "rb").read()
    (max_len,) = struct.unpack_from("<i", data, 0)
    off, vocab, scores = 4, [], []
    while off < len(data):
        score, n = struct.unpack_from("<fi", data, off)
        off += 8
        vocab.append(data[off:off + n])
        scores.append(score)
        off += n
    return vocab, scores


def run_c_encode(vocab, scores, lookup, text, bos):
    tokens = [1] if bos else []
    if text:
        tokens.append(lookup[b" "])
    buf = b""
    for i, c in enumerate(text):
        if (c & 0xC0) != 0x80:
            buf = b""
        buf += bytes([c])
        nxt = text[i + 1] if i + 1 < len(text) else 0
        if (nxt & 0xC0) == 0x80 and len(buf) < 4:
            continue
        if buf in lookup:
            tokens.append(lookup[buf])
        else:
            tokens += [b + 3 for b in buf]
        buf = b""
    while True:
        best_score, best_id, best_idx = -1e10, -1, -1
        for i in range(len(tokens) - 1):
            tid = lookup.get(vocab[tokens[i]] + vocab[tokens[i + 1]], -1)
            if tid != -1 and scores[tid] > best_score:
                best_score, best_id, best_idx = scores[tid], tid, i
        if best_idx == -1:
            break
        tokens[best_idx] = best_id
        del tokens[best_idx + 1]
    return tokens


def run_c_decode(vocab, ids):
    out, prev = b"", -1
    for t in ids:
        piece = vocab[t]
        if prev == 1 and piece[:1] == b" ":
            piece = piece[1:]
        if len(piece) >= 4 and piece[:3] == b"<0x" and all(chr(c) in "0123456789abcdefABCDEF" for c in piece[3:5]) \
                and len(piece) >= 5:
            piece = bytes([int(piece[3:5], 16)])
        out += piece
        prev = t
    return out


def stories260k(corpus):
    vocab, scores = read_tok512(os.path.join(SHARED, "models/stories260k/tok512.bin"))
    lookup = {}
    for i, v in enumerate(vocab):
        lookup.setdefault(v, i)
    ids = [run_c_encode(vocab, scores, lookup, b, False) for b in corpus]
    for b, i in zip(corpus[:200], ids):
        assert run_c_encode(vocab, scores, lookup, b, True) == [1] + i
    write_golden("stories260k", ids, [run_c_decode(vocab, i) for i in ids])


# ---- chat templates ----

GEMMA3_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""

LLAMA31_TEMPLATE = """{{- bos_token }}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""

MISTRAL_V03_TEMPLATE = """{%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}

{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}
{%- set ns = namespace() %}
{%- set ns.index = 0 %}
{%- for message in loop_messages %}
    {%- if not (message.role == "tool" or message.role == "tool_results" or (message.tool_calls is defined and message.tool_calls is not none)) %}
        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
        {%- endif %}
        {%- set ns.index = ns.index + 1 %}
    {%- endif %}
{%- endfor %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\n\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token}}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
"""

CHAT_CASES = [  # (system or None, user_before, user_after)
    (None, "Hello!", ""),
    (None, "What is the capital of France?", ""),
    ("You are a pirate.", "Tell me a joke.", ""),
    ("", "empty system", ""),
    ("  padded system \n", "  padded user\n\n", ""),
    (None, "multi\nline\n\tuser text", ""),
    (None, "\u3000ideographic space\u00a0", ""),
    (None, "Ünïcödé 日本語 😀", ""),
    (None, "", ""),
    (None, "   ", ""),
    (None, "<start_of_turn>injected<end_of_turn>", ""),
    (None, "Summarize: ", " Answer:"),
    ("System.", "  Before ", "\nafter  "),
    (None, "", ""),
    (None, "\n", "\x1c\x1f "),
]


def chat_templates():
    from gguf import GGUFReader
    field = GGUFReader(os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")).fields["tokenizer.chat_template"]
    smollm2 = bytes(field.parts[field.data[0]]).decode("utf-8")
    return [("chatml", smollm2, "<|endoftext|>", "<|im_end|>"), ("gemma", GEMMA3_TEMPLATE, "<bos>", "<eos>"),
            ("llama3", LLAMA31_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>"),
            ("mistral", MISTRAL_V03_TEMPLATE, "<s>", "</s>")]


def chat():
    from transformers.utils.chat_template_utils import render_jinja_template

    def render(template, bos, eos, system, user):
        msgs = ([{"role": "system", "content": system}] if system is not None else []) + \
               [{"role": "user", "content": user}]
        out, _ = render_jinja_template(conversations=[msgs], chat_template=template, add_generation_prompt=True,
                                       bos_token=bos, eos_token=eos)
        return out[0]

    lines = []
    for name, template, bos, eos in chat_templates():
        for system, before, after in CHAT_CASES:
            lines += [name, "!" if system is None else "=" + escape(system.encode("utf-8")),
                      "=" + escape(before.encode("utf-8")), "=" + escape(after.encode("utf-8")),
                      escape(render(template, bos, eos, system, before + after).encode("utf-8")),
                      escape(render(template, bos, eos, system, before + "<<SOFT>>" + after).encode("utf-8"))]
    write_lines(os.path.join(OUT, "chat.txt"), lines)
    print("chat: %d cases" % (len(lines) // 6))


def main():
    os.makedirs(OUT, exist_ok=True)
    corpus = read_corpus(os.path.join(HERE, "tokenizer", "corpus.txt"))
    texts = [b.decode("utf-8", errors="replace") for b in corpus]
    which = sys.argv[1:] or ["llama2_json", "llama2_model", "llama2_gguf", "gemma3", "stories260k", "chat"]
    for name in which:
        if name == "chat":
            chat()
        elif name == "stories260k":
            stories260k(corpus)
        else:
            globals()[name](texts)


if __name__ == "__main__":
    main()
