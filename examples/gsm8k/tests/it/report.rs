//! The summary table's statistics.

use thinktree_gsm8k::cli::ReportArgs;
use thinktree_gsm8k::output::Record;
use thinktree_gsm8k::report::{
    Z95, markdown_table, mcnemar_exact, paired, paired_table, summarize, wilson_interval,
};
use thinktree_gsm8k::run::report_cli;

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
        budget: None,
        reflection: None,
        concurrency: None,
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
    // Solves that ran four at once took a quarter of the run's wall time each.
    for r in &mut rs {
        r.concurrency = Some(4);
    }
    let s = summarize(&rs, &["sc".into()]);
    assert!(close(s[0].problems_per_min, 120.0)); // 2 problems in 4 s at 4 at once
    assert!(close(s[0].tokens_per_s, 400.0));
}

/// Exact values: two-sided binomial tails at p = 1/2 (R's `binom.test(b, b + c)$p.value`).
#[test]
fn mcnemar_matches_reference_values() {
    assert!(close(mcnemar_exact(0, 0), 1.0));
    assert!(close(mcnemar_exact(3, 3), 1.0));
    // 2 * (1 + 5) / 32
    assert!(close(mcnemar_exact(1, 4), 0.375));
    assert!(close(mcnemar_exact(4, 1), 0.375));
    // 2 / 2^10
    assert!(close(mcnemar_exact(0, 10), 0.001_953_125));
    // binom.test(10, 40): 0.002221
    assert!((mcnemar_exact(10, 30) - 0.002_221).abs() < 1e-5);
    // Thousands of discordant pairs neither overflow nor lose the symmetric case.
    assert!(close(mcnemar_exact(2000, 2000), 1.0));
    assert!(mcnemar_exact(1900, 2100) < 0.01);
}

#[test]
fn paired_counts_only_problems_both_methods_solved() {
    let rs = vec![
        rec("a:0", "sc", true, true, 1, 1.0),
        rec("a:1", "sc", false, true, 1, 1.0),
        rec("a:2", "sc", false, false, 1, 1.0),
        rec("a:0", "mcts", false, true, 1, 1.0),
        rec("a:1", "mcts", true, true, 1, 1.0),
        rec("a:2", "mcts", true, true, 1, 1.0),
        rec("a:3", "mcts", true, true, 1, 1.0),
        rec("a:0", "greedy", true, true, 1, 1.0),
    ];
    let methods: Vec<String> = ["greedy", "sc", "mcts"].map(String::from).to_vec();
    let p = paired(&rs, &methods);
    assert_eq!(p.len(), 2);
    assert_eq!(
        (p[0].method.as_str(), p[0].baseline.as_str()),
        ("greedy", "sc")
    );
    assert_eq!((p[0].n, p[0].only_method, p[0].only_baseline), (1, 0, 0));
    // a:3 has no sc record: not paired.
    assert_eq!((p[1].n, p[1].only_method, p[1].only_baseline), (3, 2, 1));
    assert!(close(p[1].p_value, 1.0));
    let md = paired_table(&p);
    assert!(md.contains("| mcts vs sc | 3 | 2 | 1 | 1.000 |"), "{md}");
    // Without sc the first method is the baseline.
    let p = paired(&rs, &["mcts".into(), "greedy".into()]);
    assert_eq!(p[0].baseline, "mcts");
    // A run that gave every method one option (`--reflect`) pairs against sc's variant,
    // and the plain sc wins over a variant when both ran.
    let variants: Vec<String> = ["greedy+reflect", "sc+reflect"].map(String::from).to_vec();
    assert_eq!(paired(&[], &variants)[0].baseline, "sc+reflect");
    let both: Vec<String> = ["sc+reflect", "sc", "mcts"].map(String::from).to_vec();
    let p = paired(&[], &both);
    assert!(p.iter().all(|x| x.baseline == "sc"), "{p:?}");
}

/// `gsm8k report` merges files (a later record of the same pair wins), ignores a torn
/// last line, and writes the table, the paired comparisons and the plot.
#[test]
fn report_rebuilds_from_results_files() {
    let dir = tempfile::tempdir().unwrap();
    let line = |r: &Record| serde_json::to_string(r).unwrap() + "\n";
    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.jsonl");
    std::fs::write(
        &a,
        [
            line(&rec("x:0", "sc", false, true, 10, 10.0)),
            line(&rec("x:1", "sc", true, true, 10, 10.0)),
        ]
        .concat(),
    )
    .unwrap();
    std::fs::write(
        &b,
        [
            line(&rec("x:0", "sc", true, true, 10, 10.0)),
            line(&rec("x:0", "mcts", true, true, 20, 10.0)),
            line(&rec("x:1", "mcts", false, true, 20, 10.0)),
            "{\"id\": \"x:2\", \"meth".to_string(),
        ]
        .concat(),
    )
    .unwrap();
    let done = report_cli(&ReportArgs {
        files: vec![a.clone(), b],
        out: None,
    })
    .unwrap();
    assert_eq!(done.records.len(), 4);
    assert_eq!(done.summary[0].method, "sc");
    assert_eq!(done.summary[0].correct, 2, "the later file's x:0 wins");
    assert_eq!(
        (done.paired[0].only_method, done.paired[0].only_baseline),
        (0, 1)
    );
    let md = std::fs::read_to_string(&done.files.summary).unwrap();
    assert!(md.contains("| sc | 2 | 100.0% (2/2) |"), "{md}");
    assert!(md.contains("| mcts vs sc | 2 | 0 | 1 |"), "{md}");
    assert!(done.files.plot.is_file());
    let missing = report_cli(&ReportArgs {
        files: vec![dir.path().join("none.jsonl")],
        out: None,
    });
    assert!(
        missing
            .unwrap_err()
            .to_string()
            .contains("no such results file")
    );
}

/// Budgeted rows (`mcts@512`) pair with self-consistency at the same budget, and the
/// labels list every budget of a method together, smallest first, known methods in
/// `Method::ALL` order whatever order the file holds them in (concurrent solves write
/// them as they finish).
#[test]
fn budgets_pair_within_their_budget() {
    let at = |id: &str, m: &str, ok: bool, b: usize| Record {
        budget: Some(b),
        ..rec(id, m, ok, ok, 1, 1.0)
    };
    let rs = vec![
        at("a:0", "mcts", true, 512),
        at("a:0", "sc", false, 512),
        at("a:0", "mcts", false, 256),
        at("a:0", "sc", true, 256),
    ];
    let labels = thinktree_gsm8k::report::methods_of(&rs);
    assert_eq!(labels, ["sc@256", "sc@512", "mcts@256", "mcts@512"]);
    let p = paired(&rs, &labels);
    assert_eq!(p.len(), 2);
    assert_eq!(
        (p[0].method.as_str(), p[0].baseline.as_str()),
        ("mcts@256", "sc@256")
    );
    assert_eq!((p[0].only_method, p[0].only_baseline), (0, 1));
    assert_eq!(
        (p[1].method.as_str(), p[1].baseline.as_str()),
        ("mcts@512", "sc@512")
    );
    assert_eq!((p[1].only_method, p[1].only_baseline), (1, 0));
    let s = summarize(&rs, &labels);
    assert_eq!((s[3].method.as_str(), s[3].correct), ("mcts@512", 1));
}

#[test]
fn reflection_counts_are_summed_per_method() {
    use thinktree_gsm8k::output::Reflections;
    use thinktree_gsm8k::report::reflection_table;
    let with = |id: &str, m: &str, fixed: usize, broken: usize| Record {
        reflection: Some(Reflections {
            chains: 4,
            fixed,
            broken,
            changed: fixed + broken + 1,
        }),
        ..rec(id, m, false, false, 1, 1.0)
    };
    assert_eq!(
        reflection_table(&[rec("a:0", "sc", true, true, 1, 1.0)]),
        ""
    );
    let t = reflection_table(&[
        with("a:0", "sc", 1, 0),
        with("a:1", "sc", 0, 2),
        with("a:0", "greedy", 0, 0),
    ]);
    assert!(t.contains("| sc | 2 | 8 | 5 | 1 | 2 |"), "{t}");
    assert!(t.contains("| greedy | 1 | 4 | 1 | 0 | 0 |"), "{t}");
}
