//! DeepConf on the scripted engine: the offline filter, the online stop and the bill.

use thinktree_reason::testing::ScriptEngine;
use thinktree_reason::{DeepConf, Method, SolveConfig, TraceMeasure, solve};

const Q: &str = "Tom has 3 boxes with 4 apples each. He eats 2. How many are left?";

/// Two correct solutions reaching 10 and one wrong one reaching 12, with a token
/// confidence per solution.
fn engine(confidence: [f32; 3]) -> ScriptEngine {
    let mut e = ScriptEngine::new(&[
        "3 * 4 = 12 apples.\n12 - 2 = 10.\nThe answer is 10.",
        "3 * 4 = 14 apples.\n14 - 2 = 12.\nThe answer is 12.",
        "He has 3 * 4 = 12.\nHe eats 2, so 12 - 2 = 10.\nThe answer is 10.",
    ]);
    e.confidence = confidence.to_vec();
    e
}

fn config(method: Method) -> SolveConfig {
    let mut cfg = SolveConfig::new(method);
    cfg.samples = 8;
    cfg.token_budget = 4096;
    cfg.export_tree = true;
    cfg.deepconf.window = 8;
    cfg
}

#[test]
fn trace_measures_follow_the_definitions() {
    let dc = DeepConf {
        window: 2,
        tail: 2,
        ..DeepConf::default()
    };
    let c = [4.0, 2.0, 1.0, 3.0, 5.0];
    assert_eq!(dc.groups(&c), vec![3.0, 1.5, 2.0, 4.0]);
    assert_eq!(dc.trace(&c, TraceMeasure::Mean), 3.0);
    assert_eq!(dc.trace(&c, TraceMeasure::Lowest), 1.5);
    // Lowest 10% of 4 groups rounds up to one group.
    assert_eq!(dc.trace(&c, TraceMeasure::Bottom10), 1.5);
    assert_eq!(dc.trace(&c, TraceMeasure::Tail), 4.0);
    // Shorter than a window: one group of everything.
    assert_eq!(dc.groups(&[1.0]), vec![1.0]);
    assert_eq!(dc.trace(&[], TraceMeasure::Lowest), 0.0);
}

#[test]
fn offline_keeps_only_the_most_confident_traces_and_weights_the_vote() {
    // The wrong solution is the most confident: with the filter at 25%, only its traces
    // vote; with every trace kept, the two right solutions outvote it.
    let e = engine([1.0, 3.0, 1.0]);
    let mut cfg = config(Method::DeepConf);
    cfg.deepconf.keep = 0.25;
    let sol = solve(&e, Q, &cfg).unwrap();
    let tree = sol.tree.as_ref().unwrap();
    assert_eq!(
        tree.nodes.len(),
        1 + 8,
        "every sampled trace is in the tree"
    );
    let wrong = tree.nodes[1..]
        .iter()
        .filter(|n| n.answer.as_deref() == Some("12"))
        .count();
    assert!(
        (2..8).contains(&wrong),
        "the seeds must draw both kinds: {wrong}"
    );
    assert_eq!(sol.answer.as_deref(), Some("12"));
    let votes: usize = sol.candidates.iter().map(|c| c.votes).sum();
    assert_eq!(votes, 2, "25% of 8 traces vote: {:?}", sol.candidates);

    cfg.deepconf.keep = 1.0;
    let all = solve(&e, Q, &cfg).unwrap();
    assert_eq!(all.candidates.iter().map(|c| c.votes).sum::<usize>(), 8);
    // Confidence-weighted: 12's weight is 3x per trace.
    let weight = |a: &str| {
        all.candidates
            .iter()
            .find(|c| c.answer == a)
            .map_or(0.0, |c| c.weight)
    };
    let votes = |a: &str| {
        all.candidates
            .iter()
            .find(|c| c.answer == a)
            .map_or(0, |c| c.votes)
    };
    assert!((weight("12") - votes("12") as f64).abs() < 1e-9);
    assert!((weight("10") - votes("10") as f64 / 3.0).abs() < 1e-9);
    let want = if weight("12") > weight("10") {
        "12"
    } else {
        "10"
    };
    assert_eq!(all.answer.as_deref(), Some(want));
}

#[test]
fn online_stops_unconfident_traces_in_the_engine_and_bills_their_tokens() {
    // The wrong solution is unconfident: the warm-up's median sets the threshold, later
    // traces of the wrong solution stop after one window.
    let e = engine([2.0, 0.2, 2.0]);
    let mut cfg = config(Method::DeepConfOnline);
    cfg.samples = 16;
    cfg.deepconf.warmup = 4;
    cfg.deepconf.keep = 0.5;
    cfg.deepconf.consensus = None; // every trace is sampled
    let sol = solve(&e, Q, &cfg).unwrap();
    assert_eq!(sol.usage.generated_tokens, e.spent().generated_tokens);
    let tree = sol.tree.as_ref().unwrap();
    assert_eq!(tree.nodes.len(), 1 + 16);
    // Past the warm-up, a wrong trace is cut after exactly one window of tokens.
    let later = &tree.nodes[1 + 4..];
    let cut: Vec<_> = later.iter().filter(|n| n.tokens == 8).collect();
    assert!(!cut.is_empty(), "no trace was stopped");
    for n in &cut {
        assert!(
            "3 * 4 = 14 apples.\n14 - 2 = 12.\nThe answer is 12.".starts_with(&n.raw),
            "{n:?}"
        );
    }
    // Stopped traces never vote; the right answer wins.
    assert_eq!(sol.answer.as_deref(), Some("10"));
    assert!(sol.candidates.iter().all(|c| c.answer == "10"));
    assert!(!sol.early_stopped);

    // A settled vote stops the problem early, with fewer tokens.
    cfg.deepconf.consensus = Some(0.95);
    let early = solve(&engine([2.0, 0.2, 2.0]), Q, &cfg).unwrap();
    assert!(early.early_stopped);
    assert!(early.usage.generated_tokens < sol.usage.generated_tokens);
    assert_eq!(early.answer.as_deref(), Some("10"));
}

#[test]
fn bad_deepconf_settings_are_typed_errors() {
    for bad in [
        DeepConf {
            keep: 0.0,
            ..DeepConf::default()
        },
        DeepConf {
            window: 0,
            ..DeepConf::default()
        },
        DeepConf {
            consensus: Some(1.5),
            ..DeepConf::default()
        },
    ] {
        let mut cfg = SolveConfig::new(Method::DeepConf);
        cfg.deepconf = bad;
        assert!(solve(&engine([1.0; 3]), Q, &cfg).is_err());
    }
    assert_eq!(
        "deepconf-online".parse::<Method>().unwrap(),
        Method::DeepConfOnline
    );
}
