//! The KV memory bound on a large search (issue 18): a 10,000-node MCTS on a tiny model
//! with a KV budget of 2 MiB keeps its cache under the budget (plus the contexts running
//! passes pin) and finds exactly what an unbounded run finds; evicted contexts are
//! recomputed from their tokens, so only the computed-token count may differ.
//!
//! Peak RSS is measured for real: each search runs in a child process (this test binary
//! again, running only [`child_solve`]) that reads its resident set before the search
//! and its high-water mark after (`VmRSS`, `VmHWM` in `/proc/self/status`).

use std::process::Command;

use thinktree::llm::{EngineOptions, LocalEngine};
use thinktree::reason::{Method, SolveConfig, solve};
use thinktree_llm::testing::{TinyModelConfig, write_tiny_llama_gguf};

const Q: &str = "Tom has 3 boxes with 4 apples each. He eats 2. How many are left?";
const BUDGET: usize = 2 << 20;
const CHILD: &str = "THINKTREE_MEMORY_CHILD";

fn config() -> SolveConfig {
    let mut cfg = SolveConfig::new(Method::Mcts);
    // A random model's steps are near-copies of each other at the default temperature,
    // and identical siblings merge; its chains end early and PUCT keeps revisiting the
    // ends. Sampling hot and exploring wide keeps the tree growing: 9,085 nodes from
    // 20,000 simulations at c = 8, 3,619 at the default c.
    cfg.temperature = 1.5;
    cfg.step_tokens = 3;
    cfg.max_steps = 40;
    cfg.expand = 4;
    cfg.simulations = 24_000;
    cfg.leaf_batch = 4;
    cfg.c_puct = 8.0;
    cfg.token_budget = 200_000;
    cfg.seed = 3;
    cfg.export_tree = true;
    cfg
}

fn status_kib(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/self/status"))
}

/// One search in this process, for the parent test; prints a JSON line of figures.
#[test]
#[ignore = "run by a_ten_thousand_node_mcts_... in a child process"]
fn child_solve() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let (path, budget) = spec.split_once('|').unwrap();
    let budget: usize = budget.parse().unwrap();
    let engine = LocalEngine::load(path, EngineOptions::default().kv_budget_bytes(budget)).unwrap();
    let before = status_kib("VmRSS:");
    let sol = solve(&engine, Q, &config()).unwrap();
    let peak = status_kib("VmHWM:");
    let s = engine.kv_cache().stats();
    let out = serde_json::json!({
        "rss_before_kib": before,
        "rss_peak_kib": peak,
        "kv_peak_bytes": s.peak_bytes,
        "evictions": s.evictions,
        "recomputed": s.recomputed_tokens,
        "nodes": sol.tree.as_ref().unwrap().nodes.len(),
        "answer": sol.answer,
        "path": sol.path,
        "generated": sol.usage.generated_tokens,
        "computed": sol.usage.computed_tokens,
        "candidates": serde_json::to_value(&sol.candidates).unwrap(),
    });
    println!("MEMORY-CHILD {out}");
}

fn run_child(path: &std::path::Path, budget: usize) -> serde_json::Value {
    let o = Command::new(std::env::current_exe().unwrap())
        .args([
            "memory::child_solve",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, format!("{}|{budget}", path.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("MEMORY-CHILD ").map(|(_, json)| json))
        .unwrap_or_else(|| panic!("no figures from the child: {stdout}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn a_ten_thousand_node_mcts_stays_in_a_2_mib_kv_budget_and_finds_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-memory.gguf");
    write_tiny_llama_gguf(&path, &TinyModelConfig::default()).unwrap();
    let a = run_child(&path, BUDGET);
    let b = run_child(&path, EngineOptions::default().kv_budget_bytes);
    eprintln!("bounded: {a}\nunbounded: {b}");

    let nodes = a["nodes"].as_u64().unwrap();
    assert!(nodes >= 10_000, "the tree has {nodes} nodes");
    for k in ["nodes", "answer", "path", "generated", "candidates"] {
        assert_eq!(a[k], b[k], "{k}");
    }
    assert!(a["evictions"].as_u64().unwrap() > 0);
    assert!(a["computed"].as_u64() >= b["computed"].as_u64());

    // The cache's own count: the budget plus what running passes pin (each of a batch's
    // rows pins its whole context: KV of every position, logits of every node on it).
    let engine = LocalEngine::load(&path, EngineOptions::default()).unwrap();
    let m = engine.model().config();
    let cfg = config();
    let pinned =
        cfg.leaf_batch.max(cfg.expand) * m.context_length * (m.kv_bytes_per_token() + 4 * m.vocab);
    let kv_peak = |v: &serde_json::Value| v["kv_peak_bytes"].as_u64().unwrap();
    assert!(
        kv_peak(&a) <= (BUDGET + pinned) as u64,
        "{a} (pinned bound {pinned})"
    );
    // Unbounded, the same search holds many times the budget.
    assert!(kv_peak(&b) > 4 * BUDGET as u64, "{b}");

    // The process: what the search added to the resident set. Everything but the KV
    // cache (the tree, texts, the solution) is the same in both runs; the unbounded run
    // measures it as its growth less its KV peak.
    let grew = |v: &serde_json::Value| {
        (v["rss_peak_kib"].as_u64().unwrap() - v["rss_before_kib"].as_u64().unwrap()) * 1024
    };
    let other = grew(&b).saturating_sub(kv_peak(&b));
    let slack = 4 << 20;
    assert!(
        grew(&a) <= kv_peak(&a) + other + slack,
        "bounded run grew {} B: KV peak {} + other {other} + slack {slack}",
        grew(&a),
        kv_peak(&a)
    );
    // And the KV the budget saved shows in the process (at least half of it: the
    // allocator keeps some freed pages).
    assert!(
        grew(&b) - grew(&a) >= (kv_peak(&b) - kv_peak(&a)) / 2,
        "bounded grew {} B, unbounded {} B",
        grew(&a),
        grew(&b)
    );
}
