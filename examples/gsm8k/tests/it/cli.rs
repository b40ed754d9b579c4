//! Command-line parsing.

use clap::Parser;
use thinktree::reason::{Method, ScorerSpec};
use thinktree_gsm8k::cli::Args;

#[test]
fn defaults_run_mcts_on_the_shipped_set() {
    let a = Args::try_parse_from(["gsm8k"]).unwrap();
    assert_eq!(a.methods, vec![Method::Mcts]);
    assert!(a.data.is_none());
    assert_eq!(a.offset, 0);
    assert_eq!(a.limit, None);
    assert_eq!(a.concurrency, thinktree_gsm8k::cli::DEFAULT_CONCURRENCY);
    assert_eq!(a.out.to_str(), Some("results.jsonl"));
    assert!(!a.resume);
}

#[test]
fn all_options_parse() {
    let a = Args::try_parse_from([
        "gsm8k",
        "--data",
        "x.jsonl",
        "--limit",
        "7",
        "--offset",
        "3",
        "--methods",
        "greedy,sc,bon,beam,mcts,marco,rstar,deepconf,deepconf-online",
        "--simulations",
        "12",
        "--samples",
        "5",
        "--max-tokens",
        "900",
        "--scorer",
        "confidence:0.5,verifier:0.5",
        "--seed",
        "42",
        "--concurrency",
        "2",
        "--model",
        "m.gguf",
        "--out",
        "r/out.jsonl",
        "--resume",
        "--export-tree",
        "trees",
        "--quiet",
    ])
    .unwrap();
    assert_eq!(a.data.as_deref().and_then(|p| p.to_str()), Some("x.jsonl"));
    assert_eq!((a.limit, a.offset), (Some(7), 3));
    assert_eq!(a.methods, Method::ALL.to_vec());
    assert_eq!(
        (a.simulations, a.samples, a.max_tokens),
        (Some(12), Some(5), Some(900))
    );
    assert!(matches!(a.scorer, Some(ScorerSpec::Weighted(ref parts)) if parts.len() == 2));
    assert_eq!((a.seed, a.concurrency), (42, 2));
    assert!(a.resume && a.quiet);
    assert_eq!(
        a.export_tree.as_deref().and_then(|p| p.to_str()),
        Some("trees")
    );
}

#[test]
fn repeated_methods_are_deduplicated_in_order() {
    let a =
        Args::try_parse_from(["gsm8k", "--methods", "mcts,greedy", "--methods", "mcts"]).unwrap();
    assert_eq!(a.unique_methods(), vec![Method::Mcts, Method::Greedy]);
}

#[test]
fn unknown_method_is_a_clear_error() {
    let e = Args::try_parse_from(["gsm8k", "--methods", "greedy,alphazero"]).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("alphazero"), "{msg}");
    assert!(msg.contains("greedy, sc, bon, beam, mcts"), "{msg}");
}

#[test]
fn bad_scorer_and_bad_numbers_are_errors() {
    assert!(Args::try_parse_from(["gsm8k", "--scorer", "oracle"]).is_err());
    assert!(Args::try_parse_from(["gsm8k", "--limit", "-3"]).is_err());
    assert!(Args::try_parse_from(["gsm8k", "--concurrency", "many"]).is_err());
    // `--threads`, the flag's old name, still works.
    let a = Args::try_parse_from(["gsm8k", "--threads", "3"]).unwrap();
    assert_eq!(a.concurrency, 3);
}

/// `--help` names every method the parser accepts (it once listed seven of nine).
#[test]
fn help_names_every_method() {
    use clap::CommandFactory;
    let help = Args::command().render_long_help().to_string();
    let line = help
        .split("--methods")
        .nth(1)
        .and_then(|rest| rest.split("--simulations").next())
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for m in Method::ALL {
        assert!(
            line.split([' ', ',', '.']).any(|w| w == m.as_str()),
            "--help lacks {}: {line}",
            m.as_str()
        );
    }
}

#[test]
fn variant_options_are_spelled_into_method_names() {
    use thinktree_gsm8k::variant::Variant;
    let v = |args: &[&str]| {
        let mut all = vec!["gsm8k"];
        all.extend_from_slice(args);
        Variant::from_args(&Args::try_parse_from(all).unwrap())
    };
    let plain = v(&[]);
    assert_eq!(plain.name(Method::Mcts), "mcts");
    assert_eq!(plain.name(Method::DeepConfOnline), "deepconf-online");
    assert_eq!(v(&["--reflect"]).name(Method::Marco), "marco+reflect");
    assert_eq!(v(&["--mutual-check"]).name(Method::RStar), "rstar+mc");
    let low = v(&["--deepconf-keep", "0.1"]);
    assert_eq!(low.name(Method::DeepConf), "deepconf-low");
    assert_eq!(low.name(Method::DeepConfOnline), "deepconf-online-low");
    // The keep share only names the methods it changes.
    assert_eq!(low.name(Method::SelfConsistency), "sc");
    assert_eq!(
        v(&["--deepconf-keep", "0.9"]).name(Method::DeepConf),
        "deepconf"
    );
    assert_eq!(
        v(&["--deepconf-keep", "0.25"]).name(Method::DeepConf),
        "deepconf-keep0.25"
    );
    assert_eq!(
        v(&["--reflect", "--mutual-check"]).name(Method::Greedy),
        "greedy+reflect+mc"
    );
}
