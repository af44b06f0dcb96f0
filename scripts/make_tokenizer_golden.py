#!/usr/bin/env python3
"""Reference token ids from the Hugging Face `tokenizers` library, for tests/test_tokenizer_golden.cpp.

Run on a machine with `tokenizers` (the GPU machine: Python 3.12, tokenizers 0.23.2); only the
standard library and `tokenizers` are used. Everything is deterministic for a given --seed.

What it writes under --out (default tests/fixtures/tokenizer):
  deepseek_style/   a byte-level BPE tokenizer trained here with the DeepSeek-V3 family rules:
                    NFC; pre-tokenizer Sequence[Split \\p{N}{1,3}, Split CJK runs, Split letters/
                    punctuation/whitespace/newlines (DeepSeek-V3's pattern), ByteLevel(no prefix
                    space, no regex)]; special tokens <｜begin▁of▁sentence｜> (BOS, put first by a
                    TemplateProcessing post-processor), <｜end▁of▁sentence｜> and others; vocab 6000.
  gpt2_style/       variants of a smaller trained model (vocab 1200) that exercise what the
  split_behaviours/ DeepSeek rules do not: ByteLevel's GPT-2 regex with add_prefix_space, Digits,
  llama3_style/     every Split behaviour, invert, String patterns, Replace, ignore_merges, added
                    tokens with lstrip/rstrip/single_word/normalized, EOS-only and
                    Sequence post-processors, the (?i:...) Llama-3 pattern.
  NAME/             for each --extra NAME=path/to/tokenizer.json: that tokenizer over the corpus.
Each directory holds tokenizer.json, golden.jsonl and meta.json. golden.jsonl has one document a
line: {"text_b64": base64 of the document's bytes, "ids": encode(text, add_special_tokens=True)}
and, for the first documents, "ids_plain": encode(text, add_special_tokens=False).

The corpus (>= 200 KB) mixes code (Python standard library sources read on this machine, plus
generated C/JavaScript/JSON), prose in several scripts, CJK, emoji (ZWJ sequences, skin tones,
flags, keycaps), long digit runs and other numerals, whitespace runs (tabs, spaces, CRLF, NBSP,
ideographic space, U+0085, U+180E), decomposed and oddly ordered combining marks (for NFC), and
added-token look-alikes.

Invalid UTF-8: `tokenizers` accepts only str. Some documents are byte strings with ill-formed
UTF-8; they are stored as those bytes (text_b64) and encoded after bytes.decode("utf-8",
errors="replace") — each maximal ill-formed subpart becomes U+FFFD. indexcache's
Tokenizer::encode does the same replacement on raw bytes, so the C++ test feeds the raw bytes.

Benchmark: --bench times the library single-threaded (RAYON_NUM_THREADS=1,
TOKENIZERS_PARALLELISM=false, one encode() call per document, no batching) over each written set
and prints MB/s; --bench-only does that for the sets already under --out without regenerating.

Usage:
  python3 scripts/make_tokenizer_golden.py [--out DIR] [--seed N] [--extra NAME=PATH]... [--bench]
  python3 scripts/make_tokenizer_golden.py --bench-only [--out DIR]
"""
import os

# Before tokenizers is imported: its thread pool is sized once, at first use.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["RAYON_RS_NUM_CPUS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import base64  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import sysconfig  # noqa: E402
import time  # noqa: E402
import unicodedata  # noqa: E402

import tokenizers  # noqa: E402
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers  # noqa: E402
from tokenizers import pre_tokenizers, processors, trainers  # noqa: E402

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"

# DeepSeek-V3's pre-tokenizer patterns (Oniguruma syntax, as in its tokenizer.json).
DIGITS_PATTERN = r"\p{N}{1,3}"
CJK_PATTERN = "[一-龥぀-ゟ゠-ヿ]+"
DEEPSEEK_PATTERN = (
    r"""[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|"""
    r""" ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# Llama-3 / cl100k pattern.
LLAMA3_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

CORPUS_TARGET_BYTES = 260_000
VARIANT_TARGET_BYTES = 60_000
PLAIN_IDS_DOCUMENTS = 12

# ---- corpus ---------------------------------------------------------------------------------

STDLIB_FILES = [
    "textwrap.py", "heapq.py", "bisect.py", "fnmatch.py", "colorsys.py", "shlex.py",
    "json/decoder.py", "json/encoder.py", "string.py", "glob.py", "calendar.py", "difflib.py",
]

ENGLISH = (
    "the quick brown fox jumps over the lazy dog while a model reads tokens and writes them back "
    "calibration data should look like the traffic a server sees every day of the week "
    "sparse attention keeps only the best scoring keys for each query and skips the rest "
    "indexers share their choices across adjacent layers because the scores barely change "
    "people who serve large models care about latency memory and the cost of long prompts"
).split()
CONTRACTIONS = ["it's", "don't", "we're", "they've", "I'm", "you'll", "she'd", "IT'S", "Don't",
                "o'clock", "rock'n'roll", "'quoted'", "’curly’", "l'été"]
PUNCTUATION = [",", ".", ";", ":", "!", "?", "...", " —", " –", "(", ")", "[", "]", "{", "}",
               "\"", "'", "«", "»", "“", "”", "¿", "¡", "·", "•", "…", "@", "#", "$", "%",
               "&", "*", "+", "=", "<", ">", "/", "\\", "|", "~", "^", "`", "_", "-", "§", "¶"]
MULTILINGUAL = [
    "Größere Modelle benötigen mehr Speicher, außer man komprimiert sie geschickt.",
    "L'équipe a présenté ses résultats à l'université de Montréal — très intéressant!",
    "Él dijo: «¿Dónde está la estación?» y nadie respondió.",
    "Ça coûte 12,50 € ; c'est déjà payé.",
    "Tiếng Việt có nhiều dấu: người, được, những, trường học, phở bò.",
    "Ελληνικά: η γρήγορη καφέ αλεπού πηδά πάνω από τον σκύλο.",
    "Русский текст: съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Українська: ґанок, їжак, єнот; Беларуская: ўсё.",
    "עברית: שלום עולם, זהו מבחן של טקסט מימין לשמאל.",
    "العربية: مرحبا بالعالم، هذا اختبار للنص ١٢٣٤٥٦٧٨٩٠.",
    "हिन्दी: नमस्ते दुनिया, यह एक परीक्षण वाक्य है। संख्या १२३।",
    "ภาษาไทย: สวัสดีชาวโลก นี่คือประโยคทดสอบ ๑๒๓",
    "한국어: 안녕하세요 세계, 이것은 시험 문장입니다. 값은 3.14입니다.",
    "Türkçe: Işık ılık, İstanbul'da şişli çığ.",
    "Polski: Zażółć gęślą jaźń. Čeština: Příliš žluťoučký kůň.",
    "Māori: whānau, Hawaiʻi: ʻōlelo, IPA: [ˈfəʊnətɪk ˌtrænˈskrɪpʃən].",
    "Math: ∀x ∈ ℝ, x² ≥ 0; ∑ᵢ aᵢ = ∫₀¹ f(t) dt ≈ 3.14159… ≠ ∞; α→β ⇒ γ.",
    "Money: $1,234.56, ¥7,890, £12, ₹99, ₿0.001; 50% off!!! 2×3=6 ÷ 2.",
]
CHINESE = [
    "稀疏注意力只保留每个查询得分最高的键。", "我们在自己的数据上校准模型，然后导出层计划。",
    "深度求索发布了新的模型，上下文长度达到十二万八千个词元。", "这是一个测试句子：包含标点符号、数字123和English单词。",
    "相邻层的索引器选择几乎相同的令牌，所以可以共享。", "（括号）《书名号》【方括号】“引号”——破折号……省略号",
]
JAPANESE = [
    "これは日本語のテストです。カタカナとひらがなと漢字が混ざっています。",
    "東京都の天気は晴れ、最高気温は２５度でしょう。", "トークナイザーはテキストをトークンに分割します。",
    "ｱｲｳｴｵ（半角カナ）とＡＢＣ（全角英字）と１２３（全角数字）。", "「こんにちは」と彼は言った。ー・ヽヾゝゞ",
]
EMOJI = [
    "👍", "👍🏻", "👍🏼", "👍🏽", "👍🏾", "👍🏿", "👨‍👩‍👧‍👦", "👩🏽‍💻", "🏳️‍🌈", "🏴‍☠️", "🇯🇵", "🇺🇸", "🇪🇺",
    "1️⃣", "#️⃣", "❤️", "❤", "☺️", "🙂", "😀", "🤖", "🧑‍🚀", "👩‍❤️‍💋‍👨", "🫠", "✅", "⚠️", "🔥🔥🔥",
]
COMBINING = [
    "e\u0301", "a\u0300", "o\u0308", "u\u0308\u0304", "n\u0303", "c\u0327", "A\u030a", "\u212b",
    "a\u0301\u0323", "a\u0323\u0301", "o\u031b\u0309", "e\u0302\u0301", "\u1100\u1161\u11a8",
    "\u1112\u1161\u11ab", "\u0915\u093c", "\u0931", "\u05e9\u05c1\u05bc", "\u0b47\u0b3e",
    "\u3046\u3099", "\u304b\u3099", "x\u0301\u0323\u0302", "\u03b1\u0313\u0301\u0345",
    # Characters newer than Unicode 9.0 (tokenizers' NFC tables are 9.0): U+0D3B virama with a
    # reorderable mark before it, and the Dives Akuru pair that only Unicode 13+ composes.
    "x\u0301\u0d3b", "\U00011935\U00011930",
]
WHITESPACE = [" ", "  ", "   ", "    ", "\t", "\t\t", " \t ", "\n", "\n\n", "\r\n", "\r\n\r\n",
              "\r", "\u00a0", "\u3000", "\u2009", "\u202f", "\u0085", "\u2028", "\u180e",
              "\u200b", "\f", "\v", "        \n", " \n \n", "\n    "]
TOKEN_LOOKALIKES = [
    BOS, EOS, USER, ASSISTANT, "<think>", "</think>", "<｜begin", "▁of▁", "<think", "think>",
    "<mask>", " <mask> ", "<|endoftext|>", "cat", "concat", " cat ", "Cafe\u0301", "Café",
    "<s>", "</s>",
]


def stdlib_code(rng):
    root = pathlib.Path(sysconfig.get_paths()["stdlib"])
    chunks = []
    for name in STDLIB_FILES:
        path = root / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        start = rng.randrange(0, max(1, len(text) - 6000))
        chunks.append(text[start:start + rng.randint(2500, 6000)])
    return chunks


def generated_code(rng):
    names = ["count", "index", "buffer", "tokenCount", "max_len", "kv_cache", "Layer", "topK"]
    lines = []
    for _ in range(rng.randint(20, 60)):
        kind = rng.randrange(6)
        name = rng.choice(names)
        value = rng.randint(0, 10 ** rng.randint(1, 12))
        if kind == 0:
            lines.append(f"\tint {name} = {value};\t// {rng.choice(ENGLISH)}")
        elif kind == 1:
            lines.append(f"    if ({name} >= {value} && !done) {{ return {name}++; }}")
        elif kind == 2:
            lines.append(f'  const {name} = {{"key": "{rng.choice(ENGLISH)}", "n": {value / 7:.6f}}};')
        elif kind == 3:
            lines.append(f"        for (size_t i = 0; i < {value}; ++i) sum += a[i] * b[i];")
        elif kind == 4:
            lines.append("")
        else:
            lines.append(f"#define {name.upper()}_{value % 97} 0x{value:08X}  /* 0b{value % 256:08b} */")
    eol = "\r\n" if rng.random() < 0.3 else "\n"
    return eol.join(lines) + eol


def prose(rng):
    parts = []
    for _ in range(rng.randint(30, 120)):
        roll = rng.random()
        if roll < 0.70:
            parts.append(rng.choice(ENGLISH))
        elif roll < 0.78:
            parts.append(rng.choice(CONTRACTIONS))
        elif roll < 0.90:
            parts[-1:] = [(parts[-1] if parts else "") + rng.choice(PUNCTUATION)]
        elif roll < 0.95:
            parts.append(rng.choice(ENGLISH).capitalize())
        else:
            parts.append(rng.choice(["https://example.com/a/b?x=1&y=2", "user@example.org", "e.g.",
                                     "U.S.A.", "3.14", "v2.0.1", "C++17", "x86_64", "_private"]))
    return " ".join(parts) + rng.choice([".", "!\n", "?\n\n", "\n"])


def digits(rng):
    pieces = []
    for _ in range(rng.randint(5, 20)):
        roll = rng.randrange(8)
        if roll == 0:
            pieces.append("".join(rng.choice("0123456789") for _ in range(rng.randint(1, 64))))
        elif roll == 1:
            pieces.append(f"{rng.randint(0, 10**9):,}.{rng.randint(0, 99):02d}")
        elif roll == 2:
            pieces.append(f"+1 ({rng.randint(100, 999)}) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}")
        elif roll == 3:
            pieces.append("".join(rng.choice("٠١٢٣٤٥٦٧٨٩१२३४५") for _ in range(rng.randint(1, 9))))
        elif roll == 4:
            pieces.append("".join(rng.choice("１２３４５６７８９０²³¹¼½①②③ⅫⅣ〇") for _ in range(rng.randint(1, 7))))
        elif roll == 5:
            pieces.append(f"{rng.random() * 10 ** rng.randint(-5, 8):.10g}")
        elif roll == 6:
            pieces.append(f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00Z")
        else:
            pieces.append(f"a{rng.randint(0, 99999)}b{rng.randint(0, 9)}")
    return rng.choice([" ", "\n", ", ", "\t", "-"]).join(pieces) + "\n"


def mixed(rng):
    pools = [MULTILINGUAL, CHINESE, JAPANESE, EMOJI, COMBINING, WHITESPACE, TOKEN_LOOKALIKES,
             ENGLISH, PUNCTUATION]
    weights = [14, 12, 10, 8, 8, 10, 5, 25, 8]
    parts = []
    for _ in range(rng.randint(40, 160)):
        pool = rng.choices(pools, weights)[0]
        item = rng.choice(pool)
        if pool is MULTILINGUAL and rng.random() < 0.4:
            item = unicodedata.normalize("NFD", item)  # decomposed, for NFC
        parts.append(item)
        if rng.random() < 0.5:
            parts.append(rng.choice([" ", " ", " ", "\n", "", "  "]))
    return "".join(parts)


def whitespace_heavy(rng):
    parts = []
    for _ in range(rng.randint(30, 80)):
        parts.append(rng.choice(ENGLISH + CHINESE[:2] + ["x", "if", "{", "}", "1", "22"]))
        parts.append("".join(rng.choice(WHITESPACE) for _ in range(rng.randint(1, 4))))
    return "".join(parts)


def invalid_utf8_documents(rng):
    """Byte strings with ill-formed UTF-8 (stored raw; encoded after errors="replace")."""
    fragments = [b"\xff", b"\xfe", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xed\xbf\xbf",
                 b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\x80", b"\xbf\xbf", b"\xe2\x82",
                 b"\xf0\x9f\x98", b"\xc3", b"\xe4\xb8", b"\xc2\x41", b"\xe2\x28\xa1"]
    docs = []
    for _ in range(8):
        parts = []
        for _ in range(rng.randint(20, 60)):
            roll = rng.random()
            if roll < 0.35:
                parts.append(rng.choice(fragments))
            elif roll < 0.7:
                parts.append(rng.choice(ENGLISH).encode())
            elif roll < 0.85:
                parts.append(rng.choice(CHINESE + EMOJI).encode())
            else:
                parts.append(rng.choice([b" ", b"\n", b"  ", b"\t"]))
        docs.append(b"".join(parts))
    docs.append(b"\xe2\x82")  # nothing but a truncated sequence
    docs.append(b"ok\xf0\x9f\x98\x80\x80 end")
    return docs


def build_corpus(seed):
    """List of documents as bytes; valid UTF-8 except the invalid_utf8_documents."""
    rng = random.Random(seed)
    documents = [chunk.encode() for chunk in stdlib_code(rng)]
    generators = [generated_code, prose, prose, digits, mixed, mixed, mixed, whitespace_heavy]
    while sum(map(len, documents)) < CORPUS_TARGET_BYTES:
        generator = rng.choice(generators)
        text = "".join(generator(rng) for _ in range(rng.randint(1, 6)))
        documents.append(text.encode())
    documents.extend(invalid_utf8_documents(rng))
    documents.extend(edge_documents())
    rng.shuffle(documents)
    return documents


def edge_documents():
    return [text.encode() for text in [
        "", " ", "\n", "a", "1", "12", "1234567", " 1234567 ", "中", "👍🏽", "e\u0301",
        BOS, BOS + BOS, EOS + "x" + BOS, "x" + BOS + "y", "<think>\nok\n</think>", "   leading",
        "trailing   ", "\t\ttabs\t", "a\r\nb\rc\nd", "multiple   spaces   here",
        "'s 't 're 've 'm 'll 'd 'S 'T 'RE", "Café Cafe\u0301 <mask>x<mask> concat cat cat.",
    ]]


def decode_document(raw):
    return raw.decode("utf-8", errors="replace")


# ---- tokenizers -----------------------------------------------------------------------------

def train_deepseek_style(texts):
    tokenizer = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(DIGITS_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.Split(Regex(CJK_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.Split(Regex(DEEPSEEK_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    special = [AddedToken(content, special=True, normalized=False) for content in (BOS, EOS, PAD, USER, ASSISTANT)]
    trainer = trainers.BpeTrainer(vocab_size=6000, min_frequency=2, show_progress=False, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    tokenizer.add_tokens([AddedToken("<think>", special=False, normalized=True),
                          AddedToken("</think>", special=False, normalized=True)])
    bos_id = tokenizer.token_to_id(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)])
    return tokenizer


def train_small_model(texts):
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=1200, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return json.loads(tokenizer.to_str())


def variant(base, normalizer, pre_tokenizer, model_changes=None):
    """A tokenizer with the trained small model and the given components."""
    config = json.loads(json.dumps(base))
    config["added_tokens"] = []
    config["post_processor"] = None
    config["model"].update(model_changes or {})
    tokenizer = Tokenizer.from_str(json.dumps(config))
    if normalizer is not None:  # the trained model has none
        tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def gpt2_style(base):
    tokenizer = variant(base,
                        normalizers.Sequence([normalizers.NFC(), normalizers.Replace("\u2019", "'")]),
                        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True))
    tokenizer.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False),
                                  AddedToken("<mask>", special=True, lstrip=True, rstrip=True, normalized=False)])
    tokenizer.add_tokens([AddedToken("cat", single_word=True, normalized=False),
                          AddedToken("Cafe\u0301", normalized=True),
                          AddedToken(" think", normalized=False)])
    eos = tokenizer.token_to_id("<|endoftext|>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A <|endoftext|>", pair="$A <|endoftext|> $B <|endoftext|>", special_tokens=[("<|endoftext|>", eos)])
    return tokenizer


def split_behaviours(base):
    tokenizer = variant(base, normalizers.NFC(), pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Split("\t", behavior="removed", invert=False),
        pre_tokenizers.Split(" ", behavior="merged_with_next", invert=False),
        pre_tokenizers.Split(Regex(r"[\p{P}\p{S}]"), behavior="merged_with_previous", invert=False),
        pre_tokenizers.Split(Regex(r"\w+"), behavior="contiguous", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ]), {"ignore_merges": True})
    tokenizer.add_special_tokens([AddedToken("<s>", special=True, normalized=False),
                                  AddedToken("</s>", special=True, normalized=False)])
    tokenizer.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> $B </s>",
                                      special_tokens=[("<s>", tokenizer.token_to_id("<s>")),
                                                      ("</s>", tokenizer.token_to_id("</s>"))]),
    ])
    return tokenizer


def llama3_style(base):
    tokenizer = variant(base, None, pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ]))
    tokenizer.add_special_tokens([AddedToken("<|begin_of_text|>", special=True, normalized=False)])
    bos = tokenizer.token_to_id("<|begin_of_text|>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos)])
    return tokenizer


# ---- output ---------------------------------------------------------------------------------

def write_set(directory, tokenizer_json_text, documents, description):
    """Saves the tokenizer, reloads it from that file and writes the reference ids."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "tokenizer.json"
    path.write_text(tokenizer_json_text, encoding="utf-8")
    tokenizer = Tokenizer.from_file(str(path))  # the ids must come from what the file says
    tokenizer.no_truncation()
    tokenizer.no_padding()
    total_tokens = 0
    with open(directory / "golden.jsonl", "w", encoding="utf-8") as out:
        for index, raw in enumerate(documents):
            text = decode_document(raw)
            record = {"text_b64": base64.b64encode(raw).decode("ascii"),
                      "ids": tokenizer.encode(text, add_special_tokens=True).ids}
            if index < PLAIN_IDS_DOCUMENTS:
                record["ids_plain"] = tokenizer.encode(text, add_special_tokens=False).ids
            total_tokens += len(record["ids"])
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
    meta = {"description": description, "tokenizers_version": tokenizers.__version__,
            "python": sys.version.split()[0], "documents": len(documents),
            "bytes": sum(map(len, documents)), "tokens": total_tokens,
            "add_special_tokens": True, "invalid_utf8": "decoded with errors='replace' before encoding"}
    (directory / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {directory}: {meta['documents']} documents, {meta['bytes']} bytes, {total_tokens} tokens")


def compact_json(tokenizer):
    return json.dumps(json.loads(tokenizer.to_str()), ensure_ascii=False, separators=(",", ":")) + "\n"


def subset(documents, target_bytes, step):
    chosen, size = [], 0
    for raw in documents[::step]:
        if size >= target_bytes:
            break
        chosen.append(raw)
        size += len(raw)
    return chosen


def generate(out, seed, extras):
    documents = build_corpus(seed)
    texts = [decode_document(raw) for raw in documents]
    write_set(out / "deepseek_style", compact_json(train_deepseek_style(texts)), documents,
              "DeepSeek-V3-style byte-level BPE trained on the corpus (scripts/make_tokenizer_golden.py)")
    base = train_small_model(texts)
    small = subset(documents, VARIANT_TARGET_BYTES, 3) + edge_documents()
    for name, build in [("gpt2_style", gpt2_style), ("split_behaviours", split_behaviours),
                        ("llama3_style", llama3_style)]:
        write_set(out / name, compact_json(build(base)), small, f"variant {name} of a small trained model")
    written = ["deepseek_style", "gpt2_style", "split_behaviours", "llama3_style"]
    for name, path in extras:
        tokenizer_text = pathlib.Path(path).read_text(encoding="utf-8")
        write_set(out / name, tokenizer_text, documents, f"extra tokenizer from {path}")
        written.append(name)
    return written


# ---- benchmark ------------------------------------------------------------------------------

def read_documents(directory):
    with open(directory / "golden.jsonl", encoding="utf-8") as lines:
        return [base64.b64decode(json.loads(line)["text_b64"]) for line in lines]


def bench(out, names, repeats):
    print(f"tokenizers {tokenizers.__version__}, single thread (RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false), "
          f"one encode() per document")
    for name in names:
        directory = out / name
        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        texts = [decode_document(raw) for raw in read_documents(directory)]
        size = sum(len(text.encode()) for text in texts)
        start = time.perf_counter()
        for text in texts:
            tokenizer.encode(text, add_special_tokens=True)
        cold = time.perf_counter() - start
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for text in texts:
                tokenizer.encode(text, add_special_tokens=True)
            best = min(best, time.perf_counter() - start)
        print(f"bench {name}: {size} bytes, {len(texts)} documents, first pass {size / cold / 1e6:.2f} MB/s, "
              f"best of {repeats} {size / best / 1e6:.2f} MB/s")


def parse_extra(value):
    name, separator, path = value.partition("=")
    if not separator or not name or not path:
        raise argparse.ArgumentTypeError("expected NAME=path/to/tokenizer.json")
    if not all(character.isalnum() or character in "_-" for character in name):
        raise argparse.ArgumentTypeError("NAME may use letters, digits, '_' and '-'")
    return name, path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("tests/fixtures/tokenizer"))
    parser.add_argument("--seed", type=int, default=20260517)
    parser.add_argument("--extra", type=parse_extra, action="append", default=[],
                        help="NAME=path/to/tokenizer.json: also write golden ids for that tokenizer")
    parser.add_argument("--bench", action="store_true", help="benchmark the written sets afterwards")
    parser.add_argument("--bench-only", action="store_true", help="only benchmark the sets under --out")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.bench_only:
        names = sorted(path.parent.name for path in args.out.glob("*/golden.jsonl"))
        if not names:
            sys.exit(f"no golden sets under {args.out}")
        bench(args.out, names, args.repeats)
        return
    names = generate(args.out, args.seed, args.extra)
    if args.bench:
        bench(args.out, names, args.repeats)


if __name__ == "__main__":
    main()
