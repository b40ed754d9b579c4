//! Terminal values that are estimates (a scorer's opinion of a finished chain) never prove
//! anything; exact ones (game results) do. And PUCT uses the priors from the first visit.

use thinktree_search::select::{ChildView, ParentView, SelectionRule};
use thinktree_search::{ActionsFn, FnEvaluator, Mcts, MctsConfig, Problem, Selection, StopReason};

/// Two moves of three digits each; every finished pair is worth 1.0.
struct TwoDigits {
    exact: bool,
}

impl Problem for TwoDigits {
    type State = Vec<u8>;
    type Action = u8;
    fn initial_state(&self) -> thinktree_search::Result<Vec<u8>> {
        Ok(Vec::new())
    }
    fn apply(&self, s: &Vec<u8>, a: &u8) -> thinktree_search::Result<Vec<u8>> {
        Ok([s.as_slice(), &[*a]].concat())
    }
    fn terminal_value(&self, s: &Vec<u8>) -> Option<f64> {
        (s.len() == 2).then_some(1.0)
    }
    fn terminal_is_exact(&self, _s: &Vec<u8>) -> bool {
        self.exact
    }
}

fn run(exact: bool) -> thinktree_search::SearchResult<Vec<u8>, u8> {
    let policy = ActionsFn(|_: &Vec<u8>| (0..3u8).map(|d| (d, 1.0)).collect::<Vec<_>>());
    let value = FnEvaluator(|_: &Vec<u8>| 0.5);
    let cfg = MctsConfig::builder()
        .selection(Selection::Puct { c: 1.0 })
        .simulations(500)
        .seed(1)
        .build()
        .unwrap();
    Mcts::new(cfg)
        .unwrap()
        .run(&TwoDigits { exact }, &policy, &value)
        .unwrap()
}

#[test]
fn estimated_terminals_prove_nothing_and_the_search_goes_on() {
    let r = run(false);
    // Every line was tried: the nine finished pairs are all candidates, and the search
    // ended because nothing was left to expand, not because 1.0 looked like a proof.
    assert_eq!(r.stats.stop_reason, StopReason::Exhausted);
    assert_eq!(r.terminals.len(), 9);
    assert_eq!(r.solved, None);
}

#[test]
fn exact_terminals_settle_the_search() {
    let r = run(true);
    assert_eq!(r.stats.stop_reason, StopReason::Solved);
    assert_eq!(r.solved, Some(1.0));
    assert!(r.terminals.len() < 9);
}

#[test]
fn puct_uses_the_priors_at_a_parent_without_visits() {
    let parent = ParentView {
        visits: 0.0,
        value: 0.5,
        simulations: 0,
    };
    let child = |prior| ChildView {
        visits: 0.0,
        value: 0.5,
        prior,
    };
    let rule = Selection::Puct { c: 1.0 };
    assert!(rule.score(&parent, &child(0.8)) > rule.score(&parent, &child(0.1)));
}
