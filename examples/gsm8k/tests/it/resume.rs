//! Streaming results, resuming after a kill, and the evaluation loop around a solver.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use thinktree::engine::Usage;
use thinktree::reason::{Method, SearchTree};
use thinktree_gsm8k::data::{Problem, default_problems, select};
use thinktree_gsm8k::evaluate::{EvalOptions, evaluate};
use thinktree_gsm8k::journal::{JournalError, read_existing, sibling};
use thinktree_gsm8k::output::{Record, is_finished};
use thinktree_gsm8k::run::write_reports;
use thinktree_gsm8k::solver::{Attempt, Solver, problem_seed};
use thinktree_gsm8k::variant::Variant;

/// A scripted solver for the harness's own logic: it answers from a fixed table keyed by
/// question and logs every call, so the tests can check what was (not) re-solved.
struct Scripted {
    answers: Vec<(String, Option<String>)>,
    calls: Mutex<Vec<(String, Method, u64)>>,
    fail_on: Option<String>,
}

impl Scripted {
    fn new(problems: &[Problem], wrong_every: usize) -> Self {
        let answers = problems
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let a = if i % wrong_every == wrong_every - 1 {
                    "-999".to_string()
                } else {
                    p.gold.clone()
                };
                (p.question.clone(), Some(a))
            })
            .collect();
        Self {
            answers,
            calls: Mutex::new(Vec::new()),
            fail_on: None,
        }
    }
    fn calls(&self) -> Vec<(String, Method, u64)> {
        self.calls.lock().unwrap().clone()
    }
}

impl Solver for Scripted {
    fn solve(&self, question: &str, method: Method, seed: u64) -> anyhow::Result<Attempt> {
        self.calls
            .lock()
            .unwrap()
            .push((question.to_string(), method, seed));
        if self.fail_on.as_deref() == Some(question) {
            anyhow::bail!("scripted failure");
        }
        let predicted = self
            .answers
            .iter()
            .find(|(q, _)| q == question)
            .and_then(|(_, a)| a.clone());
        let generated = 10 * (1 + method as u64);
        Ok(Attempt {
            candidates: predicted.iter().map(|a| (a.clone(), 1)).collect(),
            predicted,
            usage: Usage {
                prompt_tokens: 5,
                generated_tokens: generated,
                computed_tokens: generated + 5,
                forward_calls: generated,
            },
            model_calls: 1,
            wall: Duration::from_millis(2),
            path: vec!["step one".into(), "The answer is 1.".into()],
            tree: (method == Method::Mcts).then(SearchTree::default),
            reflections: Vec::new(),
        })
    }
}

fn opts(out: &Path, resume: bool, threads: usize) -> EvalOptions {
    EvalOptions {
        out: out.to_path_buf(),
        resume,
        concurrency: threads,
        export_tree: None,
        progress: false,
        seed: 7,
        budget: None,
        variant: Variant::default(),
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_pair_is_streamed_as_one_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("res.jsonl");
    let problems = select(default_problems().unwrap(), 0, Some(6)).unwrap();
    let solver = Scripted::new(&problems, 3);
    let methods = [Method::Greedy, Method::Mcts];
    let mut o = opts(&out, false, 2);
    o.export_tree = Some(dir.path().join("trees"));
    let res = evaluate(&solver, &problems, &methods, &o).unwrap();
    assert_eq!((res.solved, res.skipped), (12, 0));
    let ls = lines(&out);
    assert_eq!(ls.len(), 12);
    for l in &ls {
        let r: Record = serde_json::from_str(l).unwrap();
        assert_eq!(r.path.len(), 2);
    }
    // Records come back in dataset order; 2 of 6 problems are scripted wrong.
    assert_eq!(res.records[0].id, "default:0");
    assert_eq!(res.records[0].method, "greedy");
    let greedy = &res.summary[0];
    assert_eq!(
        (
            greedy.method.as_str(),
            greedy.n,
            greedy.correct,
            greedy.covered
        ),
        ("greedy", 6, 4, 4)
    );
    // Seeds depend on the problem id only, not on the thread that ran it.
    for (q, _, seed) in solver.calls() {
        let p = problems.iter().find(|p| p.question == q).unwrap();
        assert_eq!(seed, problem_seed(7, &p.id));
    }
    // MCTS trees were exported per problem.
    assert!(dir.path().join("trees/default_0-mcts.dot").is_file());
    assert!(dir.path().join("trees/default_5-mcts.json").is_file());
    assert!(!dir.path().join("trees/default_0-greedy.dot").exists());
    // The table and the plot land next to the results.
    let files = write_reports(&out, &res.records, &res.summary, &res.paired, "test").unwrap();
    assert_eq!(files.summary, sibling(&out, ".summary.md"));
    assert!(
        std::fs::read_to_string(&files.summary)
            .unwrap()
            .contains("| mcts | 6 |")
    );
    let svg = std::fs::read_to_string(&files.plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("greedy"));
}

#[test]
fn resume_skips_finished_pairs_and_repairs_a_torn_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("res.jsonl");
    let problems = select(default_problems().unwrap(), 0, Some(4)).unwrap();
    let methods = [Method::SelfConsistency];

    // A first run that "was killed": two complete lines and half of a third.
    let first = Scripted::new(&problems, 100);
    evaluate(&first, &problems[..3], &methods, &opts(&out, false, 1)).unwrap();
    let full = std::fs::read_to_string(&out).unwrap();
    let cut = full.len() - full.lines().last().unwrap().len() / 2 - 1;
    std::fs::write(&out, &full[..cut]).unwrap();
    let existing = read_existing::<Record>(&out).unwrap();
    assert!(existing.torn_tail);
    assert_eq!(existing.records.len(), 2);
    assert!(
        is_finished(&existing, "default:1", "sc") && !is_finished(&existing, "default:2", "sc")
    );

    let second = Scripted::new(&problems, 100);
    let res = evaluate(&second, &problems, &methods, &opts(&out, true, 1)).unwrap();
    assert_eq!((res.solved, res.skipped), (2, 2));
    let redone: Vec<String> = second.calls().into_iter().map(|(q, _, _)| q).collect();
    assert_eq!(
        redone,
        vec![problems[2].question.clone(), problems[3].question.clone()]
    );
    // The torn bytes are gone: every line parses and each pair appears once.
    let ls = lines(&out);
    assert_eq!(ls.len(), 4);
    let ids: Vec<String> = ls
        .iter()
        .map(|l| serde_json::from_str::<Record>(l).unwrap().id)
        .collect();
    assert_eq!(ids, ["default:0", "default:1", "default:2", "default:3"]);
    assert_eq!(res.summary[0].n, 4);
    assert_eq!(res.summary[0].correct, 4);

    // Resuming a complete file solves nothing.
    let third = Scripted::new(&problems, 100);
    let res = evaluate(&third, &problems, &methods, &opts(&out, true, 2)).unwrap();
    assert_eq!((res.solved, res.skipped), (0, 4));
    assert!(third.calls().is_empty());
}

#[test]
fn resume_only_counts_pairs_of_this_selection_and_method_list() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("res.jsonl");
    let problems = select(default_problems().unwrap(), 0, Some(3)).unwrap();
    let s = Scripted::new(&problems, 100);
    evaluate(
        &s,
        &problems,
        &[Method::Greedy, Method::Beam],
        &opts(&out, false, 1),
    )
    .unwrap();
    let s2 = Scripted::new(&problems, 100);
    let res = evaluate(
        &s2,
        &problems[1..],
        &[Method::Beam, Method::Mcts],
        &opts(&out, true, 1),
    )
    .unwrap();
    assert_eq!((res.solved, res.skipped), (2, 2));
    assert!(s2.calls().iter().all(|(_, m, _)| *m == Method::Mcts));
    assert_eq!(res.records.len(), 4);
    assert_eq!(lines(&out).len(), 8);
}

#[test]
fn failed_solves_are_recorded_and_retried_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("res.jsonl");
    let problems = select(default_problems().unwrap(), 0, Some(2)).unwrap();
    let mut s = Scripted::new(&problems, 100);
    s.fail_on = Some(problems[1].question.clone());
    let res = evaluate(&s, &problems, &[Method::Greedy], &opts(&out, false, 1)).unwrap();
    assert_eq!(res.summary[0].errors, 1);
    assert_eq!(res.summary[0].correct, 1);
    assert!(
        res.records[1]
            .error
            .as_deref()
            .unwrap()
            .contains("scripted failure")
    );

    let s2 = Scripted::new(&problems, 100);
    let res = evaluate(&s2, &problems, &[Method::Greedy], &opts(&out, true, 1)).unwrap();
    assert_eq!(res.solved, 1);
    assert_eq!((res.summary[0].correct, res.summary[0].errors), (2, 0));
    // The later success supersedes the failure when the file is read again.
    let existing = read_existing::<Record>(&out).unwrap();
    assert_eq!(existing.records.len(), 2);
    assert!(existing.records.iter().all(|r| r.error.is_none()));
}

#[test]
fn a_corrupt_line_in_the_middle_is_an_error_with_its_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("res.jsonl");
    let problems = select(default_problems().unwrap(), 0, Some(2)).unwrap();
    evaluate(
        &Scripted::new(&problems, 100),
        &problems,
        &[Method::Greedy],
        &opts(&out, false, 1),
    )
    .unwrap();
    let mut text = std::fs::read_to_string(&out).unwrap();
    text.insert_str(0, "garbage line\n");
    std::fs::write(&out, text).unwrap();
    let e = read_existing::<Record>(&out).unwrap_err();
    assert!(matches!(e, JournalError::Corrupt { line: 1, .. }), "{e:?}");
    let e = evaluate(
        &Scripted::new(&problems, 100),
        &problems,
        &[Method::Greedy],
        &opts(&out, true, 1),
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains(":1:"), "{e:#}");
}

#[test]
fn without_resume_the_file_starts_over_keeping_the_old_one_and_missing_file_resumes_empty() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sub/res.jsonl");
    let problems = select(default_problems().unwrap(), 0, Some(2)).unwrap();
    let res = evaluate(
        &Scripted::new(&problems, 100),
        &problems,
        &[Method::Greedy],
        &opts(&out, true, 1),
    )
    .unwrap();
    assert_eq!(res.solved, 2);
    let res = evaluate(
        &Scripted::new(&problems, 100),
        &problems,
        &[Method::Greedy],
        &opts(&out, false, 1),
    )
    .unwrap();
    assert_eq!(res.solved, 2);
    assert_eq!(lines(&out).len(), 2);
    // Starting over keeps the earlier run beside the new one.
    let prev = out.with_file_name("res.prev.jsonl");
    assert_eq!(lines(&prev).len(), 2);
}

#[test]
fn bad_options_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("res.jsonl");
    let problems = select(default_problems().unwrap(), 0, Some(1)).unwrap();
    let s = Scripted::new(&problems, 100);
    assert!(evaluate(&s, &problems, &[Method::Greedy], &opts(&out, false, 0)).is_err());
    assert!(evaluate(&s, &problems, &[], &opts(&out, false, 1)).is_err());
    assert!(evaluate(&s, &[], &[Method::Greedy], &opts(&out, false, 1)).is_err());
}

#[test]
fn a_variant_is_a_method_of_its_own_for_resume_and_reports() {
    // A --reflect run resumed on a file holding the plain run's records must solve every
    // pair again (they are different work) and keep both sets apart.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("res.jsonl");
    let problems = select(default_problems().unwrap(), 0, Some(3)).unwrap();
    let methods = [Method::Marco];
    let solver = Scripted::new(&problems, 2);
    evaluate(&solver, &problems, &methods, &opts(&out, false, 1)).unwrap();
    let mut o = opts(&out, true, 1);
    o.variant.reflect = true;
    let res = evaluate(&solver, &problems, &methods, &o).unwrap();
    assert_eq!((res.solved, res.skipped), (3, 0));
    assert_eq!(solver.calls().len(), 6);
    assert!(res.records.iter().all(|r| r.method == "marco+reflect"));
    assert_eq!(res.summary[0].method, "marco+reflect");
    let names: Vec<String> = read_existing::<Record>(&out)
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.method)
        .collect();
    assert_eq!(names.iter().filter(|m| *m == "marco").count(), 3);
    assert_eq!(names.iter().filter(|m| *m == "marco+reflect").count(), 3);
    // Resuming the same variant again skips all of its pairs.
    let again = evaluate(&solver, &problems, &methods, &o).unwrap();
    assert_eq!((again.solved, again.skipped), (0, 3));
}
