#!/usr/bin/env python3
"""Seeds the fuzz corpora (scripts/fuzz.sh) from real files: the default models' GGUF
headers and chat templates, the committed reference GGUFs, tokenizer test texts, the
bundled problem file and a value head in our safetensors layout. Idempotent."""
import json
import os
import struct
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gguf_string(data, key):
    """The string value of metadata `key` in a GGUF v3 file's bytes, or None."""
    k = key.encode()
    at = data.find(struct.pack("<Q", len(k)) + k)
    if at < 0:
        return None
    at += 8 + len(k)
    (ty,) = struct.unpack_from("<I", data, at)
    if ty != 8:
        return None
    (n,) = struct.unpack_from("<Q", data, at + 4)
    return data[at + 12 : at + 12 + n].decode("utf-8", "replace")


models = os.path.join(root, "models")
fixtures = os.path.join(root, "crates", "thinktree-llm", "tests", "fixtures", "reference")

# Whole model loads: the small reference files made by llama.cpp, and the head of each
# real model (header, metadata, part of the vocabulary: it fails as truncated, deep).
for name in ["quant_q2_k.gguf", "quant_q4_0.gguf", "llama_rope_scaling.gguf", "gemma3.gguf"]:
    p = os.path.join(fixtures, name)
    if os.path.exists(p):
        put("gguf_load", name, open(p, "rb").read())
templates = {}
for name in ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"]:
    p = os.path.join(models, name)
    if not os.path.exists(p):
        continue
    head = open(p, "rb").read(8 << 20)
    put("gguf_load", name + ".head", head[: 256 << 10])
    t = gguf_string(head, "tokenizer.chat_template")
    if t:
        templates[name] = t

# Chat templates: the models' own, ChatML and a Llama-3 style one with namespace().
templates["chatml"] = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
templates["llama3"] = (
    "{% set ns = namespace(system='') %}{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set ns.system = m['content'] | trim %}{% else %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
for name, t in templates.items():
    put("chat_template", name, t + "\0ssystem\x01uWhat is 2 + 2?\x01aIt is 4.\x01uAnd 3 + 3?")

# Texts: the tokenizer fixtures.
texts = []
for p in [os.path.join(root, "tests", "fixtures", "tokens.jsonl"),
          os.path.join(root, "tests", "fixtures", "gemma3_tokens.jsonl")]:
    if os.path.exists(p):
        for line in open(p, encoding="utf-8"):
            line = line.strip()
            if line:
                texts.append(json.loads(line)["text"])
for i, t in enumerate(texts):
    put("tokenizer_roundtrip", f"text{i}", t)
    put("answer", f"text{i}", t)

# Problem lines: the bundled default problems (our own, not GSM8K's).
p = os.path.join(root, "examples", "gsm8k", "data", "default.jsonl")
if os.path.exists(p):
    lines = open(p, encoding="utf-8").read().splitlines()
    put("problem_line", "default3", "\n".join(lines[:3]) + "\n")
    for i, line in enumerate(lines[:8]):
        put("problem_line", f"line{i}", line + "\n")
        put("answer", f"answer{i}", json.loads(line)["answer"])

# A value head in ValueHead::save's layout (input 4, hidden 2).
def safetensors(tensors):
    header, blobs, off = {}, [], 0
    for name, (dtype, shape, payload) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(payload)]}
        blobs.append(payload)
        off += len(payload)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def f32(*xs):
    return struct.pack(f"<{len(xs)}f", *xs)


put("value_head", "head", safetensors({
    "head.w1": ("F32", [2, 4], f32(0.1, -0.2, 0.3, 0.4, 0.5, 0.6, -0.7, 0.8)),
    "head.b1": ("F32", [2], f32(0.0, 0.1)),
    "head.w2": ("F32", [1, 2], f32(1.0, -1.0)),
    "head.b2": ("F32", [1], f32(0.2)),
    "norm.mean": ("F32", [4], f32(0, 0, 0, 0)),
    "norm.std": ("F32", [4], f32(1, 1, 1, 1)),
    "meta.version": ("U32", [1], struct.pack("<I", 1)),
}))
# Server answers: a completions body as llama-cpp-python sends it, for one and for two
# samples (mode byte: bit 0 drops Content-Length, bit 1 asks for next-token logprobs,
# bits 2-3 the number of samples less one), and one with top alternatives.
def choice(i, text, toks, finish="stop", top=False):
    lp = {"tokens": toks, "token_logprobs": [-0.5] * len(toks), "text_offset": list(range(len(toks)))}
    lp["top_logprobs"] = [{t: -0.5, " 3": -1.5} for t in toks] if top else None
    return {"text": text, "index": i, "logprobs": lp, "finish_reason": finish}


def body(choices):
    return json.dumps({"id": "cmpl-1", "object": "text_completion", "model": "m",
                       "choices": choices,
                       "usage": {"prompt_tokens": 9, "completion_tokens": sum(len(c["logprobs"]["tokens"]) for c in choices),
                                 "total_tokens": 0}})


put("remote_response", "one", bytes([0]) + body([choice(0, " 2", [" 2", "\n"])]).encode())
put("remote_response", "two", bytes([4]) + body([choice(0, " 2", [" 2"]), choice(1, " two", [" two"], "length")]).encode())
put("remote_response", "top", bytes([2]) + body([choice(0, " 2", [" 2"], top=True)]).encode())
put("remote_response", "nolen", bytes([1]) + body([choice(0, " 2", [" 2"])]).encode())

print(f"seeded {out}: " + ", ".join(
    f"{t} {len(os.listdir(os.path.join(out, t)))}" for t in sorted(os.listdir(out))))
