#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of outside data (issue 18; docs/RELIABILITY.md).
#
#   bash scripts/fuzz.sh                         # every target, 10^6 executions or 30 min each
#   bash scripts/fuzz.sh --runs 3000 answer      # a smoke run of one target
#   bash scripts/fuzz.sh --runs 3000 --seed 1    # CI's smoke run: every target, reproducible
#   bash scripts/fuzz.sh --time 600 gguf_load    # ten minutes of one target
#
# Installs cargo-fuzz when missing, builds the targets in fuzz/ (libFuzzer; optimised with
# debug assertions and overflow checks on, cargo-fuzz's default; no sanitizer:
# the workspace forbids `unsafe` outside the SIMD kernels, so what we look for are
# panics, aborts, hangs and runaway allocations), seeds each corpus from real files (the
# default models' headers and templates, the test fixtures), then runs the targets one
# after another. Any crash stops the script with the reproducer under fuzz/artifacts/;
# each one found is kept as a regression input in a normal unit test.
# On the stable toolchain, RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly flags.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS=1000000
TIME=1800
SEED=0
TARGETS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --time) TIME="$2"; shift 2 ;;
        --seed) SEED="$2"; shift 2 ;;  # libFuzzer's seed (0: from the clock); CI fixes it
        -h|--help) sed -n 2,15p "$0"; exit 0 ;;
        *) TARGETS+=("$1"); shift ;;
    esac
done
ALL=(answer problem_line value_head chat_template remote_response tokenizer_metadata tokenizer_roundtrip gguf_load)
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")

export RUSTC_BOOTSTRAP=1 CARGO_INCREMENTAL=0
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# The round-trip target reads the real vocabularies of both default models.
bash scripts/fetch-model.sh >/dev/null
bash scripts/fetch-model.sh --model gemma3-270m >/dev/null

(cd fuzz && cargo fuzz build -s none)

python3 scripts/fuzz_seeds.py fuzz/corpus

for t in "${TARGETS[@]}"; do
    case "$t" in
        gguf_load) max_len=524288 ;;
        value_head) max_len=16384 ;;
        chat_template) max_len=16384 ;;
        *) max_len=4096 ;;
    esac
    mkdir -p "fuzz/corpus/$t"
    echo "=== $t: up to $RUNS executions or $TIME s (max_len $max_len)"
    # The allocation cap: libFuzzer reports a run whose resident memory passes 2 GiB as a
    # crash (out-of-memory). Without a sanitizer there are no malloc hooks, so libFuzzer's
    # per-allocation limit would not apply; the RSS limit does.
    rc=0
    (cd fuzz && cargo fuzz run -s none "$t" "corpus/$t" -- \
        -runs="$RUNS" -max_total_time="$TIME" -seed="$SEED" -max_len="$max_len" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1) > "fuzz/$t.log" 2>&1 || rc=$?
    grep -E "^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY)" "fuzz/$t.log" || true
    if [ "$rc" -ne 0 ]; then
        tail -40 "fuzz/$t.log" >&2
        echo "$t: libFuzzer exited with $rc (a crash, hang or allocation over the cap); the log is fuzz/$t.log, the input in fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
