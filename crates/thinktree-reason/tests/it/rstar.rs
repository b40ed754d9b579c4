//! rStar's five-action MCTS on the scripted engine: action legality, values, the bill.

use thinktree_reason::testing::ScriptEngine;
use thinktree_reason::{Discriminator, Method, SearchTree, SolveConfig, TreeNode, solve};

const Q: &str = "Tom has 3 boxes with 4 apples each. He eats 2. How many are left?";

/// Solutions written with rStar's default markers, so every action has a continuation.
fn engine() -> ScriptEngine {
    ScriptEngine::new(&[
        "3 * 4 = 12 apples.\n12 - 2 = 10.\nThe answer is 10.",
        "3 * 4 = 14 apples.\n14 - 2 = 12.\nThe answer is 12.",
        concat!(
            "Question 1: How many apples are in the boxes?\n",
            "Answer 1: 3 * 4 = 12 apples.\n",
            "Question 2: How many are left after he eats 2?\n",
            "Answer 2: 12 - 2 = 10. The answer is 10."
        ),
        concat!(
            "Let me restate the problem with all its conditions: 3 boxes, 4 apples each, 2 eaten.\n",
            "Question 1: How many apples are there?\n",
            "Answer 1: 3 * 4 = 12 apples.\n",
            "The answer is 10."
        ),
    ])
}

/// The action that made `n`, read from its steps against its parent's.
fn action(tree: &SearchTree, n: &TreeNode) -> &'static str {
    let Some(p) = n.parent.map(|p| &tree.nodes[p]) else {
        return "root";
    };
    let last = n.steps.last().map_or("", String::as_str);
    if last.starts_with("Let me restate") {
        "A5"
    } else if last.starts_with("Answer") && n.steps.len() == p.steps.len() {
        "A4"
    } else if last.starts_with("Answer") || last.starts_with("Question") {
        "A3"
    } else if n.steps.len() > p.steps.len() + 1
        || (n.terminal && n.steps.len() != p.steps.len() + 1)
    {
        "A2"
    } else {
        "A1"
    }
}

#[test]
fn actions_follow_rstars_rules_and_terminals_carry_their_confidence() {
    let e = engine();
    let mut cfg = SolveConfig::new(Method::RStar);
    cfg.simulations = 24;
    cfg.token_budget = 4000;
    cfg.export_tree = true;
    let before = e.spent();
    let sol = solve(&e, Q, &cfg).unwrap();
    let tree = sol.tree.as_ref().unwrap();
    assert!(tree.nodes.len() > 6, "{tree:#?}");
    let mut seen = std::collections::HashSet::new();
    for n in &tree.nodes[1..] {
        let a = action(tree, n);
        seen.insert(a);
        let parent = &tree.nodes[n.parent.unwrap()];
        match a {
            // A5 only from the root.
            "A5" => assert_eq!(parent.id, 0, "{n:?}"),
            // A4 only right after A3.
            "A4" => assert_eq!(action(tree, parent), "A3", "{n:?}"),
            _ => {}
        }
        // Terminals carry a confidence in (0, 1]; open nodes none.
        match (n.terminal, n.value) {
            (true, Some(v)) => assert!(v > 0.0 && v <= 1.0, "{n:?}"),
            (true, None) => panic!("a terminal without a value: {n:?}"),
            (false, v) => assert!(v.is_none(), "{n:?}"),
        }
    }
    // Only the root has a restated child, at most one.
    assert!(
        tree.nodes
            .iter()
            .filter(|n| action(tree, n) == "A5")
            .count()
            <= 1
    );
    for a in ["A1", "A2", "A3", "A5"] {
        assert!(seen.contains(a), "{a} never taken: {seen:?}");
    }
    assert_eq!(sol.answer.as_deref(), Some("10"), "{:?}", sol.candidates);
    // Every token of every action is billed.
    let spent = e.spent();
    assert_eq!(
        sol.usage.generated_tokens,
        spent.generated_tokens - before.generated_tokens
    );
    assert_eq!(
        sol.usage.prompt_tokens,
        spent.prompt_tokens - before.prompt_tokens
    );
}

#[test]
fn rstar_respects_the_budget_and_works_with_the_discriminator() {
    let e = engine();
    let mut cfg = SolveConfig::new(Method::RStar);
    cfg.token_budget = 300;
    cfg.discriminator = Some(Discriminator::default());
    let sol = solve(&e, Q, &cfg).unwrap();
    assert!(
        sol.usage.generated_tokens <= 300 + 3 * 96,
        "{:?}",
        sol.usage
    );
    let m = sol.mutual.unwrap();
    assert!(m.checked >= 1 && m.consistent <= m.checked);
    assert!(sol.answer.is_some());
}
