#!/usr/bin/env python3
"""Tiny random GGUF models plus what llama.cpp computes on them (run by hand, not in CI).

Writes crates/thinktree-llm/tests/fixtures/reference/<name>.gguf and <name>.json for:

    llama               arch llama, SentencePiece vocab, GQA (4 heads, 2 kv heads), normal RoPE
    llama_rope_scaling  llama + Llama-3 `rope_freqs.weight` factors + linear rope scaling x2
    qwen2               arch qwen2, byte-level BPE vocab (pre "qwen2"), q/k/v biases, NeoX RoPE
    qwen3               arch qwen3, same BPE vocab, q/k RMSNorm, head_dim 32 != 64/4, tied output
    gemma3              arch gemma3, SentencePiece vocab without space prefix, user-defined
                        "\\n" tokens, head_dim 16 != 64/2, 6 layers (5 sliding, 1 global), window 4
    quant_<type>        arch llama, hidden 256, 1 layer, quantized by llama.cpp's own quantizer
                        (pure mix) from an F32 source: f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k
                        q3_k q4_k q5_k q6_k

Each JSON holds llama.cpp's tokenization of a prompt and of a few test strings, its logits
for every prompt position (6 significant digits) and a 16-token greedy continuation, all
from llama-cpp-python's low-level API on the CPU (2 threads, F32 KV cache, no flash
attention, no CPU weight repacking). Weights come from numpy with fixed seeds, so a rerun
with the same llama-cpp-python / gguf / numpy versions rewrites identical files.

Setup and usage (from the repository root):

    bash scripts/install-llama-server.sh                 # .venv-llama with llama-cpp-python 0.3.16
    .venv-llama/bin/pip install gguf numpy
    .venv-llama/bin/python scripts/make-reference.py [--out DIR] [--only NAME ...]

With `--gemma PATH` (Gemma 3 270M, `bash scripts/fetch-model.sh --model gemma3-270m`) it
instead writes tests/fixtures/gemma3_270m_greedy.json: a few-shot completion prompt of our
own, its ids (BOS first) and llama.cpp's 64-token greedy continuation with top-two gaps.
"""
import argparse
import collections
import ctypes
import json
import pathlib
import re
import sys
import tempfile

import numpy as np
import gguf
import llama_cpp as L

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "crates/thinktree-llm/tests/fixtures/reference"

PROMPT = "Janet has 16 eggs and sells 9 for $2 each.\nHow many are left?"
TEST_STRINGS = [
    "Hello world",
    " leading space and  two  spaces",
    "1234567 + 89 = 1234656",
    "caf\u00e9 na\u00efve \u00e9t\u00e9",
    "\u65e5\u672c\u8a9e",
    "emoji \U0001F642!",
    "line one\nline two\n\n\nend",
    "the theme of the thesis",
]
N_GREEDY = 16
N_THREADS = 2
N_CTX = 128

# Small GSM8K-flavoured corpus the toy tokenizers are "trained" on (plain BPE merges).
CORPUS = """\
Janet has 16 eggs and sells 9 for $2 each. How many are left?
She eats 3 of them for breakfast and bakes muffins with 4 of them.
How many eggs does Janet have left after she sells the rest at the market?
The answer is the number of eggs that are left.
A robe takes 2 bolts of blue fiber and half that much white fiber.
How many bolts in total does it take?
Josh decides to try flipping a house. He buys a house for $80000 and then puts in $50000 in repairs.
This increased the value of the house by 150%. How much profit did he make?
James decides to run 3 sprints 3 times a week. He runs 60 meters each sprint.
How many total meters does he run a week?
There are 15 trees in the grove. Grove workers will plant trees in the grove today.
After they are done, there will be 21 trees. How many trees did the grove workers plant today?
If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?
Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?
the the the the a a a and and is is of of to to in in he he she she
"""


# --------------------------------------------------------------------------------------
# toy tokenizers
# --------------------------------------------------------------------------------------

def train_bpe(words: collections.Counter, n_merges: int):
    """Plain BPE on {tuple(symbols): count}; ties go to the lexicographically smallest pair."""
    words = {tuple(w): c for w, c in words.items()}
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        if pairs[best] < 2:
            break
        merges.append(best)
        new_words = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] = new_words.get(tuple(out), 0) + c
        words = new_words
    return merges


def spm_vocab(kind: str, n_merges: int):
    """SentencePiece-style vocab. kind "llama": <unk> <s> </s>, space prefix; kind "gemma":
    <pad> <eos> <bos> <unk>, two control and three user-defined tokens, no space prefix."""
    prefix = kind == "llama"
    words = collections.Counter()
    chars = collections.Counter()
    for line in CORPUS.splitlines():
        text = (" " + line if prefix else line).replace(" ", "\u2581")
        # split before each U+2581 so pieces never span a word boundary
        for w in re.findall("\u2581?[^\u2581]+|\u2581+", text):
            words[w] += 1
            chars.update(w)
    for c in "abcdefghijklmnopqrstuvwxyz0123456789.,?!$%'-:\u2581":
        chars[c] += 0
    merges = train_bpe(words, n_merges)
    pieces = [a + b for a, b in merges]
    pieces += [c for c, _ in sorted(chars.items(), key=lambda kv: (-kv[1], kv[0])) if c not in pieces]

    T = gguf.TokenType
    if kind == "llama":
        head = [("<unk>", T.UNKNOWN), ("<s>", T.CONTROL), ("</s>", T.CONTROL)]
    else:
        head = [("<pad>", T.CONTROL), ("<eos>", T.CONTROL), ("<bos>", T.CONTROL), ("<unk>", T.UNKNOWN),
                ("<start_of_turn>", T.CONTROL), ("<end_of_turn>", T.CONTROL),
                ("\n", T.USER_DEFINED), ("\n\n", T.USER_DEFINED), ("\n\n\n", T.USER_DEFINED)]
    tokens = [t for t, _ in head]
    types = [int(ty) for _, ty in head]
    scores = [0.0] * len(head)
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(int(T.BYTE))
        scores.append(0.0)
    for rank, p in enumerate(pieces):
        tokens.append(p)
        types.append(int(T.NORMAL))
        scores.append(-float(rank))
    assert len(set(tokens)) == len(tokens)
    return tokens, scores, types


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def bpe_vocab(n_merges: int):
    """GPT-2 byte-level BPE vocab: 256 byte characters, merges, then three control tokens."""
    b2u = bytes_to_unicode()
    # rough stand-in for the qwen2 pre-tokenizer regex (only decides which merges exist)
    pat = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\r\n\w]?[^\W\d_]+|\d| ?[^\s\w]+[\r\n]*|\s*[\r\n]+|\s+")
    words = collections.Counter()
    for line in CORPUS.splitlines(keepends=True):
        for w in pat.findall(line):
            words["".join(b2u[b] for b in w.encode())] += 1
    merges = train_bpe(words, n_merges)
    tokens = [b2u[b] for b in range(256)] + [a + b for a, b in merges]
    assert len(set(tokens)) == len(tokens)
    types = [int(gguf.TokenType.NORMAL)] * len(tokens)
    for t in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]:
        tokens.append(t)
        types.append(int(gguf.TokenType.CONTROL))
    return tokens, types, [f"{a} {b}" for a, b in merges]


# --------------------------------------------------------------------------------------
# GGUF writers
# --------------------------------------------------------------------------------------

class Weights:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def mat(self, n_out, n_in, scale=None):
        """numpy (n_out, n_in) = ggml ne {n_in, n_out}; default scale 1/sqrt(n_in)."""
        s = 1.0 / np.sqrt(n_in) if scale is None else scale
        return (self.rng.standard_normal((n_out, n_in)) * s).astype(np.float32)

    def norm(self, n, noise=0.1):
        return (1.0 + noise * self.rng.standard_normal(n)).astype(np.float32)

    def vec(self, n, scale=0.1):
        return (scale * self.rng.standard_normal(n)).astype(np.float32)


def add_spm_tokenizer(w: gguf.GGUFWriter, kind: str, n_merges: int):
    tokens, scores, types = spm_vocab(kind, n_merges)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    if kind == "llama":
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_add_space_prefix(True)
    else:
        w.add_pad_token_id(0)
        w.add_eos_token_id(1)
        w.add_bos_token_id(2)
        w.add_unk_token_id(3)
        w.add_add_space_prefix(False)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    return len(tokens)


def add_bpe_tokenizer(w: gguf.GGUFWriter, n_merges: int):
    tokens, types, merges = bpe_vocab(n_merges)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    eot = tokens.index("<|endoftext|>")
    w.add_bos_token_id(eot)
    w.add_eos_token_id(tokens.index("<|im_end|>"))
    w.add_pad_token_id(eot)
    w.add_add_bos_token(False)
    return len(tokens)


def write_gguf(path: pathlib.Path, arch: str, cfg: dict, tensors_fn):
    """cfg: hyper-parameters; tensors_fn(n_vocab) -> list of (name, array)."""
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(path.stem)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_context_length(cfg["n_ctx_train"])
    w.add_embedding_length(cfg["n_embd"])
    w.add_block_count(cfg["n_layer"])
    w.add_feed_forward_length(cfg["n_ff"])
    w.add_head_count(cfg["n_head"])
    w.add_head_count_kv(cfg["n_head_kv"])
    w.add_layer_norm_rms_eps(cfg["rms_eps"])
    w.add_rope_freq_base(cfg["rope_base"])
    if "head_dim" in cfg:
        w.add_key_length(cfg["head_dim"])
        w.add_value_length(cfg["head_dim"])
    if "rope_scaling_linear" in cfg:
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(cfg["rope_scaling_linear"])
    if "sliding_window" in cfg:
        w.add_sliding_window(cfg["sliding_window"])
    if cfg["vocab"] in ("llama", "gemma"):
        n_vocab = add_spm_tokenizer(w, cfg["vocab"], cfg["n_merges"])
    else:
        n_vocab = add_bpe_tokenizer(w, cfg["n_merges"])
    w.add_vocab_size(n_vocab)
    for name, arr in tensors_fn(n_vocab):
        w.add_tensor(name, np.ascontiguousarray(arr, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return n_vocab


def llama3_rope_factors(head_dim, base, factor=8.0, low=1.0, high=32.0, old_ctx=8192):
    """What convert_hf_to_gguf.py writes as rope_freqs.weight for rope_type "llama3"."""
    out = []
    for i in range(0, head_dim, 2):
        freq = 1.0 / base ** (i / head_dim)
        wavelen = 2 * np.pi / freq
        if wavelen < old_ctx / high:
            out.append(1.0)
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def model_tensors(cfg, wt: Weights):
    """Tensors for llama / qwen2 / qwen3 / gemma3 layouts, per cfg."""
    arch = cfg["arch"]
    d, ff, nh, nkv = cfg["n_embd"], cfg["n_ff"], cfg["n_head"], cfg["n_head_kv"]
    hd = cfg.get("head_dim", d // nh)
    rs = cfg.get("resid_scale", 1.0)  # std multiplier of the matrices that write the residual

    def fn(n_vocab):
        t = [("token_embd.weight", wt.mat(n_vocab, d, cfg["embd_scale"]))]
        if "rope_freqs" in cfg:
            t.append(("rope_freqs.weight", cfg["rope_freqs"]))
        for il in range(cfg["n_layer"]):
            p = f"blk.{il}."
            t.append((p + "attn_norm.weight", wt.norm(d)))
            t.append((p + "attn_q.weight", wt.mat(nh * hd, d)))
            t.append((p + "attn_k.weight", wt.mat(nkv * hd, d)))
            t.append((p + "attn_v.weight", wt.mat(nkv * hd, d)))
            if arch == "qwen2":
                t.append((p + "attn_q.bias", wt.vec(nh * hd)))
                t.append((p + "attn_k.bias", wt.vec(nkv * hd)))
                t.append((p + "attn_v.bias", wt.vec(nkv * hd)))
            if arch in ("qwen3", "gemma3"):
                t.append((p + "attn_q_norm.weight", wt.norm(hd)))
                t.append((p + "attn_k_norm.weight", wt.norm(hd)))
            t.append((p + "attn_output.weight", wt.mat(d, nh * hd, rs / np.sqrt(nh * hd))))
            if arch == "gemma3":
                t.append((p + "post_attention_norm.weight", wt.norm(d)))
            t.append((p + "ffn_norm.weight", wt.norm(d)))
            t.append((p + "ffn_gate.weight", wt.mat(ff, d)))
            t.append((p + "ffn_up.weight", wt.mat(ff, d)))
            t.append((p + "ffn_down.weight", wt.mat(d, ff, rs / np.sqrt(ff))))
            if arch == "gemma3":
                t.append((p + "post_ffw_norm.weight", wt.norm(d)))
        # output_norm's scale sets the logits' spread (and so the greedy top-2 gaps)
        t.append(("output_norm.weight", wt.norm(d) * cfg.get("out_norm_scale", 1.0)))
        if not cfg["tied"]:
            t.append(("output.weight", wt.mat(n_vocab, d, cfg["out_scale"])))
        return t
    return fn


# Seeds and output scales were picked so that the logits spread like a real model's (std
# about 2.5) and the 16-token greedy continuations vary and have no near-ties at the top.
LLAMA_BASE = dict(arch="llama", vocab="llama", n_merges=110, n_ctx_train=256, n_embd=64, n_layer=2,
                  n_ff=96, n_head=4, n_head_kv=2, rms_eps=1e-5, rope_base=10000.0,
                  embd_scale=1.0, out_scale=0.3, tied=False)

ARCH_FIXTURES = {
    "llama": dict(LLAMA_BASE, seed=1004),
    "llama_rope_scaling": dict(LLAMA_BASE, seed=1005, n_ff=48, rope_base=500000.0,
                               rope_scaling_linear=2.0, rope_freqs=llama3_rope_factors(16, 500000.0),
                               tied=True, embd_scale=0.1, out_norm_scale=3.0),
    "qwen2": dict(arch="qwen2", vocab="bpe", n_merges=100, seed=1005, n_ctx_train=256, n_embd=64,
                  n_layer=2, n_ff=48, n_head=4, n_head_kv=2, rms_eps=1e-6, rope_base=1000000.0,
                  embd_scale=1.0, out_scale=0.3, tied=False),
    "qwen3": dict(arch="qwen3", vocab="bpe", n_merges=100, seed=1007, n_ctx_train=256, n_embd=64,
                  n_layer=2, n_ff=48, n_head=4, n_head_kv=2, head_dim=32, rms_eps=1e-6,
                  rope_base=1000000.0, embd_scale=0.1, resid_scale=2.0, out_norm_scale=3.0, tied=True),
    "gemma3": dict(arch="gemma3", vocab="gemma", n_merges=110, seed=1005, n_ctx_train=256, n_embd=64,
                   n_layer=6, n_ff=32, n_head=2, n_head_kv=1, head_dim=16, rms_eps=1e-6,
                   rope_base=1000000.0, sliding_window=4, embd_scale=0.05, out_norm_scale=6.0,
                   tied=True),
}

# K-quants need rows of 256: n_embd, n_head*head_dim and n_ff are all 256.
QUANT_SOURCE = dict(LLAMA_BASE, seed=2004, n_embd=256, n_layer=1, n_ff=256, n_head=4, n_head_kv=1,
                    tied=True, embd_scale=0.1, resid_scale=2.0, out_norm_scale=1.6)

QUANT_TYPES = {  # fixture suffix -> llama_ftype
    "f16": L.LLAMA_FTYPE_MOSTLY_F16,
    "bf16": L.LLAMA_FTYPE_MOSTLY_BF16,
    "q8_0": L.LLAMA_FTYPE_MOSTLY_Q8_0,
    "q4_0": L.LLAMA_FTYPE_MOSTLY_Q4_0,
    "q4_1": L.LLAMA_FTYPE_MOSTLY_Q4_1,
    "q5_0": L.LLAMA_FTYPE_MOSTLY_Q5_0,
    "q5_1": L.LLAMA_FTYPE_MOSTLY_Q5_1,
    "q2_k": L.LLAMA_FTYPE_MOSTLY_Q2_K,
    "q3_k": L.LLAMA_FTYPE_MOSTLY_Q3_K_M,
    "q4_k": L.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "q5_k": L.LLAMA_FTYPE_MOSTLY_Q5_K_M,
    "q6_k": L.LLAMA_FTYPE_MOSTLY_Q6_K,
}


# --------------------------------------------------------------------------------------
# llama.cpp
# --------------------------------------------------------------------------------------

@L.llama_log_callback
def _quiet_log(level, text, user_data):
    pass


class LlamaCpp:
    def __init__(self, path: pathlib.Path, n_ctx: int = N_CTX):
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = 0
        mp.use_extra_bufts = False  # no CPU repacking of Q4_0/IQ4_NL: plain ggml kernels
        self.model = L.llama_model_load_from_file(str(path).encode(), mp)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        cp = L.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = n_ctx
        cp.n_ubatch = n_ctx
        cp.n_threads = N_THREADS
        cp.n_threads_batch = N_THREADS
        cp.type_k = 0  # GGML_TYPE_F32 (default is F16)
        cp.type_v = 0
        cp.flash_attn = False
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise RuntimeError("llama_init_from_model failed")

    def close(self):
        L.llama_free(self.ctx)
        L.llama_model_free(self.model)

    def tokenize(self, text: str, add_special: bool, parse_special: bool = False):
        b = text.encode("utf-8")
        n_max = len(b) + 8
        buf = (L.llama_token * n_max)()
        n = L.llama_tokenize(self.vocab, b, len(b), buf, n_max, add_special, parse_special)
        if n < 0:
            raise RuntimeError(f"tokenize failed: {n}")
        return list(buf[:n])

    def _decode(self, ids, pos0, all_logits):
        batch = L.llama_batch_init(len(ids), 0, 1)
        try:
            for i, t in enumerate(ids):
                batch.token[i] = t
                batch.pos[i] = pos0 + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = 1 if (all_logits or i == len(ids) - 1) else 0
            batch.n_tokens = len(ids)
            rc = L.llama_decode(self.ctx, batch)
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc}")
            rows = range(len(ids)) if all_logits else [len(ids) - 1]
            return [np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, i), shape=(self.n_vocab,)).copy()
                    for i in rows]
        finally:
            L.llama_batch_free(batch)

    def run(self, ids, n_greedy):
        L.llama_memory_clear(L.llama_get_memory(self.ctx), True)
        logits = self._decode(ids, 0, True)
        greedy, gaps = [], []
        last = logits[-1]
        for k in range(n_greedy):
            top2 = np.argsort(-last, kind="stable")[:2]
            greedy.append(int(top2[0]))
            gaps.append(float(last[top2[0]] - last[top2[1]]))
            if k + 1 < n_greedy:
                last = self._decode([greedy[-1]], len(ids) + k, False)[0]
        return logits, greedy, gaps


def tensor_types(path: pathlib.Path):
    counts = collections.Counter(t.tensor_type.name for t in gguf.GGUFReader(str(path)).tensors)
    return dict(sorted(counts.items()))


def sig6(x: float) -> float:
    return float(f"{x:.6g}")


def record(out: pathlib.Path, name: str, arch: str, cfg: dict):
    path = out / f"{name}.gguf"
    add_bos = cfg.get("vocab") != "bpe"
    lc = LlamaCpp(path)
    try:
        prompt_ids = lc.tokenize(PROMPT, add_special=add_bos)
        logits, greedy, gaps = lc.run(prompt_ids, N_GREEDY)
        toks = [{"text": s, "ids": lc.tokenize(s, add_special=False)} for s in TEST_STRINGS]
        n_vocab = lc.n_vocab
    finally:
        lc.close()
    config = {k: v for k, v in cfg.items() if k not in ("rope_freqs",)}
    if "rope_freqs" in cfg:
        config["rope_freqs"] = [float(x) for x in cfg["rope_freqs"]]
    doc = {
        "arch": arch,
        "file": path.name,
        "llama_cpp_python": L.__version__,
        "gguf_py": getattr(gguf, "__version__", None) or _dist_version("gguf"),
        "numpy": np.__version__,
        "llama_cpp_settings": {"n_threads": N_THREADS, "n_ctx": N_CTX, "type_k": "f32", "type_v": "f32",
                               "flash_attn": False, "use_extra_bufts": False, "device": "cpu"},
        "config": config,
        "n_vocab": n_vocab,
        "tensor_types": tensor_types(path),
        "prompt": PROMPT,
        "add_bos": add_bos,
        "prompt_ids": prompt_ids,
        "greedy_ids": greedy,
        "greedy_top2_gap": [round(g, 6) for g in gaps],
        "tokenize": toks,
        "logits": [[sig6(x) for x in row] for row in logits],
    }
    write_json(out / f"{name}.json", doc)
    print(f"{name}: {len(prompt_ids)} prompt tokens, greedy {greedy[:6]}..., "
          f"min gap {min(gaps):.4f}, {path.stat().st_size} bytes", flush=True)


def _dist_version(name):
    from importlib.metadata import version
    return version(name)


def write_json(path: pathlib.Path, doc: dict):
    """One key per line; each logits row on its own line; deterministic."""
    lines = []
    for k, v in doc.items():
        if k == "logits":
            rows = ",\n  ".join(json.dumps(r, separators=(",", ":")) for r in v)
            lines.append(f'"logits": [\n  {rows}\n]')
        elif k == "tokenize":
            rows = ",\n  ".join(json.dumps(r, ensure_ascii=False) for r in v)
            lines.append(f'"tokenize": [\n  {rows}\n]')
        else:
            lines.append(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}")
    path.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")


GEMMA_PROMPT = (
    "Question: Tom has 3 boxes with 4 apples each. He eats 2 apples. How many apples are left?\n"
    "Answer: Tom has 3 * 4 = 12 apples. After eating 2 he has 12 - 2 = 10. The answer is 10.\n\n"
    "Question: A shop sells pens for $2 each. Mia buys 5 pens and pays with a $20 bill. "
    "How much change does she get?\nAnswer:"
)


def record_gemma(path: pathlib.Path):
    lc = LlamaCpp(path, n_ctx=512)
    try:
        ids = lc.tokenize(GEMMA_PROMPT, add_special=True)
        _, greedy, gaps = lc.run(ids, 64)
    finally:
        lc.close()
    doc = {
        "model": path.name,
        "llama_cpp_python": L.__version__,
        "llama_cpp_settings": {"n_threads": N_THREADS, "n_ctx": 512, "type_k": "f32", "type_v": "f32"},
        "prompt": GEMMA_PROMPT,
        "add_bos": True,
        "prompt_ids": ids,
        "greedy_ids": greedy,
        "greedy_top2_gap": [round(g, 6) for g in gaps],
    }
    dest = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/gemma3_270m_greedy.json"
    dest.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{dest}: {len(ids)} prompt tokens, greedy {greedy[:8]}...")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*", help="fixture names to (re)make (default: all)")
    ap.add_argument("--keep-f32-source", action="store_true",
                    help="also keep quant_f32.gguf (about 2 MB)")
    ap.add_argument("--gemma", type=pathlib.Path,
                    help="record the Gemma 3 270M greedy fixture from this GGUF and stop")
    args = ap.parse_args()
    if args.gemma:
        L.llama_log_set(_quiet_log, ctypes.c_void_p())
        L.llama_backend_init()
        record_gemma(args.gemma)
        return
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    want = lambda n: not args.only or n in args.only
    L.llama_log_set(_quiet_log, ctypes.c_void_p())
    L.llama_backend_init()

    for name, cfg in ARCH_FIXTURES.items():
        if not want(name):
            continue
        write_gguf(out / f"{name}.gguf", cfg["arch"], cfg, model_tensors(cfg, Weights(cfg["seed"])))
        record(out, name, cfg["arch"], cfg)

    quant_names = [f"quant_{t}" for t in QUANT_TYPES]
    if any(want(n) for n in quant_names + ["quant_f32"]):
        with tempfile.TemporaryDirectory() as tmp:
            src = pathlib.Path(tmp) / "quant_f32.gguf"
            write_gguf(src, "llama", QUANT_SOURCE, model_tensors(QUANT_SOURCE, Weights(QUANT_SOURCE["seed"])))
            if args.keep_f32_source or (args.only and "quant_f32" in args.only):
                (out / "quant_f32.gguf").write_bytes(src.read_bytes())
                record(out, "quant_f32", "llama", dict(QUANT_SOURCE))
            for t, ftype in QUANT_TYPES.items():
                name = f"quant_{t}"
                if not want(name):
                    continue
                qp = L.llama_model_quantize_default_params()
                qp.nthread = N_THREADS
                qp.ftype = ftype
                qp.pure = True
                rc = L.llama_model_quantize(str(src).encode(), str(out / f"{name}.gguf").encode(),
                                            ctypes.byref(qp))
                if rc != 0:
                    sys.exit(f"llama_model_quantize({name}) failed: {rc}")
                record(out, name, "llama", dict(QUANT_SOURCE, quantized_from="quant_f32 (not kept)",
                                                ftype=int(ftype), pure=True))
    L.llama_backend_free()


if __name__ == "__main__":
    main()
