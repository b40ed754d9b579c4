//! The summary table's statistics.

use thinktree_gsm8k::output::Record;
use thinktree_gsm8k::report::{Z95, markdown_table, summarize, wilson_interval};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-4
}

#[test]
fn wilson_matches_reference_values() {
    // Reference values of the Wilson score interval at z = 1.96.
    let (lo, hi) = wilson_interval(5, 10, Z95);
    assert!(close(lo, 0.2366) && close(hi, 0.7634), "{lo} {hi}");
    let (lo, hi) = wilson_interval(0, 10, Z95);
    assert!(close(lo, 0.0) && close(hi, 0.2775), "{lo} {hi}");
    let (lo, hi) = wilson_interval(10, 10, Z95);
    assert!(close(lo, 0.7225) && close(hi, 1.0), "{lo} {hi}");
    let (lo, hi) = wilson_interval(81, 263, Z95);
    assert!(close(lo, 0.2553) && close(hi, 0.3662), "{lo} {hi}");
    assert_eq!(wilson_interval(0, 0, Z95), (0.0, 1.0));
}

#[test]
fn wilson_contains_the_estimate_and_narrows_with_n() {
    for (k, n) in [(1, 3), (7, 20), (50, 100), (99, 100)] {
        let (lo, hi) = wilson_interval(k, n, Z95);
        let p = k as f64 / n as f64;
        assert!(lo <= p && p <= hi && (0.0..=1.0).contains(&lo) && hi <= 1.0);
    }
    let w = |n: usize| {
        let (lo, hi) = wilson_interval(n / 2, n, Z95);
        hi - lo
    };
    assert!(w(400) < w(100) && w(100) < w(10));
}

fn rec(
    id: &str,
    method: &str,
    correct: bool,
    covered: bool,
    gen_tokens: u64,
    wall_ms: f64,
) -> Record {
    Record {
        id: id.into(),
        method: method.into(),
        gold: "1".into(),
        predicted: Some(if correct { "1" } else { "2" }.into()),
        correct,
        covered,
        generated_tokens: gen_tokens,
        computed_tokens: gen_tokens * 2,
        prompt_tokens: 10,
        forward_calls: 3,
        model_calls: 2,
        wall_ms,
        path: vec![],
        candidates: vec![],
        error: None,
    }
}

#[test]
fn summary_counts_means_and_rates() {
    let mut rs = vec![
        rec("a:0", "sc", true, true, 100, 1000.0),
        rec("a:1", "sc", false, true, 300, 3000.0),
        rec("a:0", "greedy", false, false, 50, 500.0),
    ];
    rs[0].candidates = vec![("4".into(), 3), ("5".into(), 1), ("6".into(), 1)];
    rs[1].candidates = vec![("7".into(), 2)];
    let s = summarize(&rs, &["greedy".into(), "sc".into(), "mcts".into()]);
    assert_eq!(s.len(), 3);
    assert_eq!((s[1].n, s[1].correct, s[1].covered), (2, 1, 2));
    assert!(close(s[1].accuracy, 0.5) && close(s[1].coverage, 1.0));
    assert!(close(s[1].mean_generated, 200.0) && close(s[1].mean_computed, 400.0));
    assert!(close(s[1].problems_per_min, 30.0)); // 2 problems in 4 s
    assert!(close(s[1].tokens_per_s, 100.0));
    assert!(close(s[1].mean_candidates, 2.0) && s[1].multi_candidate == 1);
    assert_eq!(s[2].n, 0);
    let md = markdown_table(&s);
    assert!(md.contains("| sc | 2 | 50.0% (1/2) |"), "{md}");
    assert!(md.contains("| 100.0% | 2.0 | 1/2 | 200 |"), "{md}");
    assert!(md.contains("| greedy | 1 | 0.0% (0/1) |"), "{md}");
}
