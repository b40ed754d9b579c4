#!/usr/bin/env python3
"""llama.cpp's speed on the same GGUF, for docs/PERFORMANCE.md (not run in CI).

Measures prefill and single-stream greedy decode with llama-cpp-python (the package that
`scripts/install-llama-server.sh` builds into .venv-llama/), on the same ChatML prompt as
the engine bench, so the figures sit beside `cargo bench -p thinktree-llm --bench engine`
taken in the same session:

    .venv-llama/bin/python scripts/bench-llama-cpp.py [--threads 2] [--tokens 32] [--repeat 5]
"""
import argparse
import json
import pathlib
import statistics
import time

from llama_cpp import Llama

root = pathlib.Path(__file__).resolve().parent.parent
ap = argparse.ArgumentParser()
ap.add_argument("--model", default=str(root / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--tokens", type=int, default=32)
ap.add_argument("--repeat", type=int, default=5)
args = ap.parse_args()

fixture = json.loads((root / "tests/fixtures/smollm2_greedy.json").read_text())
prompt_ids = fixture["prompt_ids"]

llm = Llama(model_path=args.model, n_ctx=2048, n_threads=args.threads,
            n_threads_batch=args.threads, verbose=False)
prefill, decode = [], []
for _ in range(args.repeat):
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt_ids)
    t1 = time.perf_counter()
    # generate() continues from the evaluated prompt (prefix match, nothing recomputed)
    # and samples greedily with llama.cpp's own sampler.
    n = 0
    for _ in llm.generate(prompt_ids, top_k=1, temp=0.0, repeat_penalty=1.0, reset=False):
        n += 1
        if n == args.tokens:
            break
    t2 = time.perf_counter()
    prefill.append(len(prompt_ids) / (t1 - t0))
    decode.append(args.tokens / (t2 - t1))
print(f"llama.cpp (llama-cpp-python), {args.threads} threads, {len(prompt_ids)}-token prompt:")
print(f"  prefill {statistics.median(prefill):.0f} tok/s, decode {statistics.median(decode):.1f} tok/s "
      f"(median of {args.repeat})")
