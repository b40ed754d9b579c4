#!/usr/bin/env python3
"""llama.cpp's own speed on a GGUF, for docs/PERFORMANCE.md (run by hand, not in CI).

Drives llama.cpp through llama-cpp-python's LOW-LEVEL API (ctypes bindings of llama.h:
`llama_decode`, `llama_get_logits_ith`, `llama_memory_seq_cp`, ...) on the CPU and reports
median, min and max over --reps repetitions of:

  prefill   tok/s of ONE `llama_decode` of a P-token prompt (logits for the last token);
  decode    single-stream greedy decode: T steps, each one `llama_decode` of one token,
            argmax of its logits in numpy, fed back as the next token;
  batch n   n sequences at once (each n > 1 in --batches): the prompt is decoded once in
            sequence 0 and its KV copied to sequences 1..n-1 with `llama_memory_seq_cp`
            (outside the timing), then T steps, each ONE `llama_decode` of a batch with one
            token per sequence (own position, logits for each), argmax per sequence in
            numpy; aggregate tok/s = n*T / time.

The prompt is a fixed English text tokenized by the model's own vocabulary (BOS first when
the GGUF asks for one), repeated and cut to P tokens. Every timing includes fetching the
logits and the numpy argmax, i.e. what a minimal greedy loop around llama.cpp costs.

Why not the high-level API: `Llama.generate` / `Llama.__call__` run their sampling loop
in Python (logit processing, sampler objects, token bookkeeping), about 5 ms a token, so
on a small model they measure the wrapper, not llama.cpp (an earlier version of this
script did exactly that: ~80 tok/s "decode" where llama.cpp itself does ~140).

Setup and usage (from the repository root; llama-cpp-python lives in .venv-llama/, see
scripts/install-llama-server.sh):

    .venv-llama/bin/python scripts/bench-llama-cpp.py                  # SmolLM2-135M Q4_1, 2 threads
    .venv-llama/bin/python scripts/bench-llama-cpp.py --model models/gemma-3-270m-q4_k_m.gguf
    .venv-llama/bin/python scripts/bench-llama-cpp.py --threads 2 --prompt-tokens 64 \\
        --decode-tokens 64 --batches 1,8,16 --reps 5 --json /tmp/llama-cpp-bench.json
    .venv-llama/bin/python scripts/bench-llama-cpp.py --prompt-tokens 16 --decode-tokens 8 \\
        --reps 1 --batches 1,4                                          # smoke test

Build llama-cpp-python with CMAKE_ARGS="-DGGML_NATIVE=ON" for speed comparisons, so that
llama.cpp uses every SIMD extension of this CPU (the "system" line of the output lists
what the library was compiled with). scripts/install-llama-server.sh runs a plain
`pip install`, and pip passes CMAKE_ARGS from the environment to the build. pip reuses a
cached wheel of the same version, so to force a native rebuild also disable its cache:

    CMAKE_ARGS=-DGGML_NATIVE=ON PIP_NO_CACHE_DIR=1 bash scripts/install-llama-server.sh --force

Settings (printed with the results and stored in --json): n_threads = n_threads_batch =
--threads; n_seq_max = the largest batch; n_ctx = n_seq_max * (P + T) (each sequence needs
P + T cells; llama.cpp rounds it up to a multiple of 256); n_batch = n_ubatch = max(P,
largest batch) (llama.cpp raises n_batch to at least 64; the output shows what it used); KV
cache F16 (llama.cpp's default) unless --kv-f32; flash attention off unless
--flash-attn; per-sequence KV streams (llama.cpp's default) unless --kv-unified; CPU weight
repacking on (llama.cpp's default) unless --no-repack; no GPU layers.
"""
import argparse
import ctypes
import datetime
import json
import pathlib
import platform
import statistics
import sys
import time

import numpy as np
import llama_cpp as L

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEXT = ("The quick brown fox jumps over the lazy dog. Janet has 16 eggs and sells 9 of them "
        "at the market for $2 each; how much money does she make every day? ")
GGML_TYPE = {0: "f32", 1: "f16"}


def parse_batches(s: str):
    out = sorted({int(x) for x in s.split(",") if x.strip()})
    if not out or out[0] < 1:
        raise argparse.ArgumentTypeError("--batches wants positive integers, e.g. 1,8,16")
    return out


ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                             formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf",
                help="GGUF file (relative paths: from the current directory, else the repo root)")
ap.add_argument("--threads", type=int, default=2, help="n_threads and n_threads_batch (default 2)")
ap.add_argument("--prompt-tokens", type=int, default=64, metavar="P", help="prompt length (default 64)")
ap.add_argument("--decode-tokens", type=int, default=64, metavar="T", help="decode steps (default 64)")
ap.add_argument("--batches", type=parse_batches, default=[1, 8, 16],
                help="sequence counts for batched decode (default 1,8,16; 1 = the single-stream row)")
ap.add_argument("--reps", type=int, default=5, metavar="R", help="timed repetitions (default 5)")
ap.add_argument("--warmup", type=int, default=1, help="untimed repetitions first (default 1)")
ap.add_argument("--kv-f32", action="store_true", help="F32 KV cache (default: F16, llama.cpp's default)")
ap.add_argument("--flash-attn", action="store_true", help="flash attention on (default off)")
ap.add_argument("--kv-unified", action="store_true",
                help="one KV buffer shared by all sequences (default: one stream per sequence)")
ap.add_argument("--no-repack", action="store_true",
                help="no CPU weight repacking (use_extra_bufts=false, as scripts/make-reference.py)")
ap.add_argument("--json", metavar="FILE", help="also write all figures and settings to FILE")
ap.add_argument("--verbose", action="store_true", help="show llama.cpp's own log")
args = ap.parse_args()

P, T, R = args.prompt_tokens, args.decode_tokens, args.reps
if P < 1 or T < 1 or R < 1 or args.threads < 1 or args.warmup < 0:
    sys.exit("error: --prompt-tokens, --decode-tokens, --reps and --threads must be >= 1")
model_path = pathlib.Path(args.model)
if not model_path.is_absolute() and not model_path.exists():
    model_path = ROOT / model_path
if not model_path.is_file():
    sys.exit(f"error: no model file {args.model} (see scripts/fetch-model.sh)")



# llama.cpp's log: everything with --verbose, else errors only. (ggml's levels: 1 debug,
# 2 info, 3 warn, 4 error, 5 continuation; llama-cpp-python's own filter maps them off by
# one and lets warnings through.)
@L.llama_log_callback
def _log(level, text, _user):
    global _log_last
    if level != 5:
        _log_last = level
    if args.verbose or _log_last >= 4:
        sys.stderr.write(text.decode("utf-8", errors="replace"))


_log_last = 0
L.llama_log_set(_log, ctypes.c_void_p(0))
L.llama_backend_init()

# ---- model and context ------------------------------------------------------------------
n_seq = max(args.batches)
mp = L.llama_model_default_params()
mp.n_gpu_layers = 0
if args.no_repack:
    mp.use_extra_bufts = False
model = L.llama_model_load_from_file(str(model_path).encode(), mp)
if not model:
    sys.exit(f"error: llama.cpp could not load {model_path}")
vocab = L.llama_model_get_vocab(model)
n_vocab = L.llama_vocab_n_tokens(vocab)

cp = L.llama_context_default_params()
cp.n_ctx = n_seq * (P + T)
cp.n_batch = cp.n_ubatch = max(P, n_seq)
cp.n_seq_max = n_seq
cp.n_threads = cp.n_threads_batch = args.threads
if args.kv_f32:
    cp.type_k = cp.type_v = 0  # GGML_TYPE_F32
cp.flash_attn = bool(args.flash_attn)
cp.kv_unified = bool(args.kv_unified)
ctx = L.llama_init_from_model(model, cp)
if not ctx:
    sys.exit("error: llama_init_from_model failed")
mem = L.llama_get_memory(ctx)


def model_desc():
    buf = ctypes.create_string_buffer(256)
    L.llama_model_desc(model, buf, len(buf))
    return buf.value.decode(errors="replace")


def tokenize(text: str, add_special: bool):
    b = text.encode("utf-8")
    n_max = len(b) + 8
    buf = (L.llama_token * n_max)()
    n = L.llama_tokenize(vocab, b, len(b), buf, n_max, add_special, False)
    if n < 0:
        raise RuntimeError(f"tokenize failed: {n}")
    return list(buf[:n])


add_bos = bool(L.llama_vocab_get_add_bos(vocab))
head = tokenize(TEXT, add_special=add_bos)
body = tokenize(TEXT, add_special=False)
prompt = head[:]
while len(prompt) < P:
    prompt += body
prompt = prompt[:P]

# ---- timed pieces -----------------------------------------------------------------------
batch = L.llama_batch_init(max(P, n_seq), 0, 1)


def decode(n_tokens):
    batch.n_tokens = n_tokens
    rc = L.llama_decode(ctx, batch)
    if rc != 0:
        raise RuntimeError(f"llama_decode returned {rc}")


def last_argmax():
    """argmax of the logits of the last output (llama_get_logits_ith also synchronizes)."""
    return int(np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, -1), shape=(n_vocab,)).argmax())


def prefill(seq=0):
    """One llama_decode of the prompt in `seq`; returns (seconds, argmax of the last logits)."""
    L.llama_memory_clear(mem, True)
    for i, t in enumerate(prompt):
        batch.token[i] = t
        batch.pos[i] = i
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = 1 if i == P - 1 else 0
    t0 = time.perf_counter()
    decode(P)
    tok = last_argmax()
    return time.perf_counter() - t0, tok


def decode_single(tok, steps):
    """`steps` llama_decode calls of one token each, greedy; returns seconds."""
    t0 = time.perf_counter()
    for k in range(steps):
        batch.token[0] = tok
        batch.pos[0] = P + k
        batch.n_seq_id[0] = 1
        batch.seq_id[0][0] = 0
        batch.logits[0] = 1
        decode(1)
        tok = last_argmax()
    return time.perf_counter() - t0


def decode_batched(n, steps):
    """Prompt in sequence 0, KV copied to 1..n-1, then `steps` llama_decode calls of n
    tokens (one per sequence); returns seconds of the steps only."""
    _, tok = prefill(0)
    for s in range(1, n):
        L.llama_memory_seq_cp(mem, 0, s, -1, -1)
    # Apply the pending copies now (between separate KV streams they are done lazily at
    # the next decode), so that the timed steps do not include them.
    if hasattr(L, "llama_kv_self_update"):
        L.llama_kv_self_update(ctx)
    toks = np.full(n, tok, dtype=np.int64)
    t0 = time.perf_counter()
    for k in range(steps):
        for s in range(n):
            batch.token[s] = int(toks[s])
            batch.pos[s] = P + k
            batch.n_seq_id[s] = 1
            batch.seq_id[s][0] = s
            batch.logits[s] = 1
        decode(n)
        logits = np.ctypeslib.as_array(L.llama_get_logits(ctx), shape=(n, n_vocab))
        toks = logits.argmax(axis=1)
    return time.perf_counter() - t0


# ---- run --------------------------------------------------------------------------------
multi = [n for n in args.batches if n > 1]
raw = {"prefill": [], "decode": [], **{f"batch{n}": [] for n in multi}}
for rep in range(args.warmup + R):
    timed = rep >= args.warmup
    steps = T if timed else min(T, 8)
    sec, tok = prefill()
    dsec = decode_single(tok, steps)
    if timed:
        raw["prefill"].append(P / sec)
        raw["decode"].append(T / dsec)
    for n in multi:
        bsec = decode_batched(n, steps)
        if timed:
            raw[f"batch{n}"].append(n * T / bsec)
L.llama_batch_free(batch)


def summary(xs, tokens_per_rep, tokens_per_call):
    med = statistics.median(xs)
    return {"median_tok_s": round(med, 2), "min_tok_s": round(min(xs), 2), "max_tok_s": round(max(xs), 2),
            "ms_per_decode_call": round(1000 * tokens_per_call / med, 3),
            "tokens_per_rep": tokens_per_rep, "per_rep_tok_s": [round(x, 2) for x in xs]}


results = {"prefill": summary(raw["prefill"], P, P),
           "decode": summary(raw["decode"], T, 1)}
for n in multi:
    results[f"batch{n}"] = {"n_seq": n, **summary(raw[f"batch{n}"], n * T, n)}

settings = {
    "threads": args.threads, "n_threads": cp.n_threads, "n_threads_batch": cp.n_threads_batch,
    "prompt_tokens": P, "decode_tokens": T, "batches": args.batches, "reps": R, "warmup": args.warmup,
    "n_ctx_requested": cp.n_ctx, "n_ctx": L.llama_n_ctx(ctx), "n_seq_max": L.llama_n_seq_max(ctx),
    "n_batch": L.llama_n_batch(ctx), "n_ubatch": L.llama_n_ubatch(ctx),
    "n_batch_requested": cp.n_batch, "n_ubatch_requested": cp.n_ubatch,
    "type_k": GGML_TYPE.get(cp.type_k, cp.type_k), "type_v": GGML_TYPE.get(cp.type_v, cp.type_v),
    "flash_attn": bool(cp.flash_attn), "kv_unified": bool(cp.kv_unified), "swa_full": bool(cp.swa_full),
    "use_extra_bufts (weight repack)": bool(mp.use_extra_bufts), "n_gpu_layers": mp.n_gpu_layers,
    "add_bos": add_bos, "prompt_text": TEXT,
}
system_info = L.llama_print_system_info().decode(errors="replace").strip()
doc = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "what": "llama.cpp via llama-cpp-python's low-level API (one llama_decode per step, numpy argmax)",
    "llama_cpp_python": L.__version__,
    "model_file": model_path.name,
    "model_desc": model_desc(),
    "model_size_bytes": L.llama_model_size(model),
    "model_n_params": L.llama_model_n_params(model),
    "n_vocab": n_vocab,
    "host": {"machine": platform.machine(), "python": platform.python_version(), "numpy": np.__version__},
    "system_info": system_info,
    "settings": settings,
    "prompt_ids": prompt,
    "results": results,
}

L.llama_free(ctx)
L.llama_model_free(model)

s = settings
print(f"llama.cpp via llama-cpp-python {L.__version__} low-level API, {model_path.name} ({doc['model_desc']})")
print(f"settings: threads {s['n_threads']} (batch {s['n_threads_batch']}), prompt {P} tokens, decode {T} steps, "
      f"n_seq_max {s['n_seq_max']}, n_ctx {s['n_ctx']} (requested {s['n_ctx_requested']}), "
      f"n_batch {s['n_batch']}, n_ubatch {s['n_ubatch']} (requested {cp.n_batch}), KV {s['type_k']}/{s['type_v']}, "
      f"flash_attn {'on' if s['flash_attn'] else 'off'}, kv_unified {'on' if s['kv_unified'] else 'off'}, "
      f"swa_full {'on' if s['swa_full'] else 'off'}, weight repack {'on' if mp.use_extra_bufts else 'off'}, "
      f"CPU only; {R} reps after {args.warmup} warm-up")
print(f"system: {system_info}")
rows = [("prefill", f"1 x {P} tok", results["prefill"]),
        ("decode 1 seq", f"{T} x 1 tok", results["decode"])]
rows += [(f"decode {n} seqs (aggregate)", f"{T} x {n} tok", results[f"batch{n}"]) for n in multi]
print(f"{'':28}{'calls':>12}{'median tok/s':>14}{'min':>10}{'max':>10}{'ms/call':>10}")
for name, calls, r in rows:
    print(f"{name:28}{calls:>12}{r['median_tok_s']:>14.1f}{r['min_tok_s']:>10.1f}{r['max_tok_s']:>10.1f}"
          f"{r['ms_per_decode_call']:>10.2f}")
if args.json:
    pathlib.Path(args.json).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
