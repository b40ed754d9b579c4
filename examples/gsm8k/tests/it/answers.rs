//! Answer handling as the harness relies on it: gold parsing and matching model text.

use thinktree::reason::answer::{answers_match, extract_answer, gold_answer};
use thinktree_gsm8k::data::Problem;
use thinktree_gsm8k::evaluate::to_record;
use thinktree_gsm8k::solver::Attempt;

#[test]
fn typical_small_model_endings_are_read() {
    let cases = [
        ("She has 7 + 5 = 12 pencils.\nThe answer is 12.", "12"),
        ("Total: $1,250.00", "1250"),
        ("So the final answer is \\boxed{47.5}.", "47.5"),
        ("3 * 8 = 24\n#### 24", "24"),
        ("The answer is: 30 liters", "30"),
        ("It was -4 and rose 11, so now it is 7 degrees", "7"),
    ];
    for (text, want) in cases {
        assert_eq!(extract_answer(text).as_deref(), Some(want), "{text}");
    }
}

#[test]
fn gold_and_prediction_compare_numerically() {
    let gold = gold_answer("2 * 0.75 = 1.5\n#### 1.50").unwrap();
    assert_eq!(gold, "1.5");
    assert!(answers_match("$1.5", &gold));
    assert!(answers_match("1.500", &gold));
    assert!(!answers_match("15", &gold));
}

#[test]
fn records_mark_correct_and_covered() {
    let p = Problem {
        id: "t:0".into(),
        question: "q".into(),
        gold: "18".into(),
    };
    let attempt = |pred: Option<&str>, cands: &[&str]| Attempt {
        predicted: pred.map(str::to_string),
        candidates: cands.iter().map(|c| (c.to_string(), 1)).collect(),
        ..Attempt::default()
    };
    let r = to_record(&p, "sc", attempt(Some("18.0"), &["18.0", "20"]));
    assert!(r.correct && r.covered);
    assert_eq!(r.method, "sc");
    let r = to_record(&p, "mcts", attempt(Some("20"), &["20", "$18"]));
    assert!(!r.correct && r.covered);
    let r = to_record(&p, "greedy", attempt(None, &[]));
    assert!(!r.correct && !r.covered);
}
