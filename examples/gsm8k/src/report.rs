//! The per-method summary table, and paired comparisons of methods on the same problems.

use std::fmt::Write as _;

use thinktree::reason::Method;

use crate::output::{Record, label};

/// Two-sided 95% normal quantile.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Wilson score interval for `successes` out of `n` at normal quantile `z`.
///
/// Used instead of the normal approximation because it stays inside [0, 1] and is
/// sensible at 0% and 100%, which small models on small splits hit. `n == 0` gives the
/// uninformative `(0, 1)`.
pub fn wilson_interval(successes: usize, n: usize, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n_f = n as f64;
    let p = successes.min(n) as f64 / n_f;
    let z2 = z * z;
    let denom = 1.0 + z2 / n_f;
    let center = (p + z2 / (2.0 * n_f)) / denom;
    let half = z * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denom;
    ((center - half).max(0.0), (center + half).min(1.0))
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodSummary {
    /// Method short name.
    pub method: String,
    /// Problems solved.
    pub n: usize,
    /// Problems answered correctly.
    pub correct: usize,
    /// Problems where some candidate was correct.
    pub covered: usize,
    /// Problems whose solve failed with an error.
    pub errors: usize,
    /// `correct / n`.
    pub accuracy: f64,
    /// Wilson 95% interval of the accuracy.
    pub ci: (f64, f64),
    /// `covered / n`.
    pub coverage: f64,
    /// Mean distinct candidate answers per problem (what aggregation chose among).
    pub mean_candidates: f64,
    /// Problems that ended with more than one distinct candidate.
    pub multi_candidate: usize,
    /// Mean generated tokens per problem.
    pub mean_generated: f64,
    /// Mean computed token positions per problem.
    pub mean_computed: f64,
    /// Mean engine calls per problem.
    pub mean_calls: f64,
    /// Problems per minute of the run's wall time spent on this method: each solve's
    /// latency divided by the solves running at once (`--concurrency`), summed. Exact for
    /// one at a time; with several, slightly above the run's own rate (the tail of a run
    /// has fewer solves going than the setting), which
    /// [`crate::evaluate::EvalOutcome::throughput`] measures.
    pub problems_per_min: f64,
    /// Generated tokens per second of solve time.
    pub tokens_per_s: f64,
}

/// Summarises the records of each method, in the order given (by [`Record::label`]:
/// `mcts`, or `mcts@512` in a `--budgets` run).
pub fn summarize(records: &[Record], methods: &[String]) -> Vec<MethodSummary> {
    methods
        .iter()
        .map(|m| {
            let rs: Vec<&Record> = records.iter().filter(|r| &r.label() == m).collect();
            let n = rs.len();
            let correct = rs.iter().filter(|r| r.correct).count();
            let covered = rs.iter().filter(|r| r.covered).count();
            let errors = rs.iter().filter(|r| r.error.is_some()).count();
            let candidates: usize = rs.iter().map(|r| r.candidates.len()).sum();
            let multi_candidate = rs.iter().filter(|r| r.candidates.len() > 1).count();
            let generated: u64 = rs.iter().map(|r| r.generated_tokens).sum();
            let comp: u64 = rs.iter().map(|r| r.computed_tokens).sum();
            let calls: u64 = rs.iter().map(|r| r.model_calls).sum();
            // Each solve's share of the run's wall time: its latency over the solves
            // running at once (exact for a run of one at a time).
            let wall_s: f64 = rs
                .iter()
                .map(|r| r.wall_ms / r.concurrency.unwrap_or(1).max(1) as f64)
                .sum::<f64>()
                / 1000.0;
            let mean = |total: u64| if n == 0 { 0.0 } else { total as f64 / n as f64 };
            let rate = |x: f64| if wall_s > 0.0 { x / wall_s } else { 0.0 };
            MethodSummary {
                method: m.clone(),
                n,
                correct,
                covered,
                errors,
                accuracy: if n == 0 {
                    0.0
                } else {
                    correct as f64 / n as f64
                },
                ci: wilson_interval(correct, n, Z95),
                coverage: if n == 0 {
                    0.0
                } else {
                    covered as f64 / n as f64
                },
                mean_candidates: mean(candidates as u64),
                multi_candidate,
                mean_generated: mean(generated),
                mean_computed: mean(comp),
                mean_calls: mean(calls),
                problems_per_min: rate(n as f64 * 60.0),
                tokens_per_s: rate(generated as f64),
            }
        })
        .collect()
}

/// The summary as a Markdown table (also printed to the terminal).
pub fn markdown_table(rows: &[MethodSummary]) -> String {
    let mut s = String::new();
    s.push_str("| method | n | accuracy | 95% CI (Wilson) | coverage | candidates/problem | >1 candidate | gen tok/problem | computed tok/problem | model calls/problem | problems/min | tok/s |\n");
    s.push_str(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {:.1}% ({}/{}) | {:.1}–{:.1}% | {:.1}% | {:.1} | {}/{} | {:.0} | {:.0} | {:.1} | {:.2} | {:.1} |",
            r.method,
            r.n,
            100.0 * r.accuracy,
            r.correct,
            r.n,
            100.0 * r.ci.0,
            100.0 * r.ci.1,
            100.0 * r.coverage,
            r.mean_candidates,
            r.multi_candidate,
            r.n,
            r.mean_generated,
            r.mean_computed,
            r.mean_calls,
            r.problems_per_min,
            r.tokens_per_s,
        );
    }
    let errors: usize = rows.iter().map(|r| r.errors).sum();
    if errors > 0 {
        let _ = writeln!(
            s,
            "\n{errors} solve(s) failed with an error and count as wrong (see the `error` field)."
        );
    }
    s
}

/// Two methods on the problems both solved: which each got right that the other did not.
#[derive(Debug, Clone, PartialEq)]
pub struct Paired {
    /// The method compared.
    pub method: String,
    /// The method it is compared against (self-consistency when it ran).
    pub baseline: String,
    /// Problems both methods have a record for.
    pub n: usize,
    /// Problems only `method` got right.
    pub only_method: usize,
    /// Problems only `baseline` got right.
    pub only_baseline: usize,
    /// McNemar's exact two-sided p-value of the difference.
    pub p_value: f64,
}

/// McNemar's exact test: the two-sided binomial probability, under "both methods are
/// equally good", of discordant pairs at least as lopsided as `b` against `c` (each
/// discordant problem is a fair coin). `1.0` when there are none.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    // P(X <= min(b, c)) for X ~ Binomial(n, 1/2), term by term in log space (n may be in
    // the thousands, where 2^n overflows).
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_choose = 0.0;
    let mut tail = 0.0;
    for k in 0..=b.min(c) {
        if k > 0 {
            ln_choose += ((n - k + 1) as f64).ln() - (k as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// Every method of `methods` (labels, as [`summarize`] takes them) but the baselines,
/// paired with the baseline of its budget on the problems both have a record for:
/// self-consistency (`sc`, or `sc@B` for budget `B`) when it ran, else a variant of it
/// (`sc+reflect`: a run that gave every method the same option), else the first method
/// of that budget.
pub fn paired(records: &[Record], methods: &[String]) -> Vec<Paired> {
    // `mcts@512` -> ("mcts", "@512"); a label without a budget has an empty suffix.
    let split = |m: &str| -> (String, String) {
        match m.split_once('@') {
            Some((name, b)) => (name.to_string(), format!("@{b}")),
            None => (m.to_string(), String::new()),
        }
    };
    let baseline_of = |m: &str| -> Option<&String> {
        let budget = split(m).1;
        let same: Vec<&String> = methods.iter().filter(|x| split(x).1 == budget).collect();
        same.iter()
            .find(|x| split(x).0 == "sc")
            .or_else(|| same.iter().find(|x| split(x).0.starts_with("sc+")))
            .or_else(|| same.first())
            .copied()
    };
    let right = |m: &str| -> std::collections::HashMap<&str, bool> {
        records
            .iter()
            .filter(|r| r.label() == m)
            .map(|r| (r.id.as_str(), r.correct))
            .collect()
    };
    methods
        .iter()
        .filter_map(|m| {
            let baseline = baseline_of(m)?;
            (baseline != m).then_some((m, baseline))
        })
        .map(|(m, baseline)| {
            let base = right(baseline);
            let (mut n, mut only_method, mut only_baseline) = (0, 0, 0);
            for (id, ok) in right(m) {
                let Some(&base_ok) = base.get(id) else {
                    continue;
                };
                n += 1;
                only_method += usize::from(ok && !base_ok);
                only_baseline += usize::from(base_ok && !ok);
            }
            Paired {
                method: m.clone(),
                baseline: baseline.clone(),
                n,
                only_method,
                only_baseline,
                p_value: mcnemar_exact(only_method, only_baseline),
            }
        })
        .collect()
}

/// The paired comparisons as a Markdown table (empty when there is nothing to pair).
pub fn paired_table(rows: &[Paired]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "Paired against self-consistency at the same budget (or the first method), on the \
         problems both solved (McNemar's exact test: a p-value above 0.05 means the \
         difference may well be noise):\n\n",
    );
    s.push_str("| method | problems | only method right | only baseline right | McNemar p |\n");
    s.push_str("| --- | ---: | ---: | ---: | ---: |\n");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} vs {} | {} | {} | {} | {:.3} |",
            r.method, r.baseline, r.n, r.only_method, r.only_baseline, r.p_value
        );
    }
    s
}

/// What `--reflect` did, per method: chains that reflected and how many of their answers
/// went from wrong to right, from right to wrong, or stayed. Empty when nothing reflected.
pub fn reflection_table(records: &[Record]) -> String {
    let mut rows: Vec<(String, usize, crate::output::Reflections)> = Vec::new();
    for r in records {
        let Some(x) = r.reflection else { continue };
        let label = r.label();
        let i = match rows.iter().position(|(l, _, _)| *l == label) {
            Some(i) => i,
            None => {
                rows.push((label, 0, Default::default()));
                rows.len() - 1
            }
        };
        let row = &mut rows[i];
        row.1 += 1;
        row.2.chains += x.chains;
        row.2.fixed += x.fixed;
        row.2.broken += x.broken;
        row.2.changed += x.changed;
    }
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "Reflection (\"Wait! Maybe I made some mistakes! I need to rethink from scratch.\" after \
         each chain's answer), judged against the gold answer afterwards:\n\n\
         | method | problems | chains reflected | answer changed | wrong -> right | right -> wrong |\n\
         | --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for (label, problems, x) in rows {
        s.push_str(&format!(
            "| {label} | {problems} | {} | {} | {} | {} |\n",
            x.chains, x.changed, x.fixed, x.broken
        ));
    }
    s
}

/// The methods of `records` ([`Record::label`]s): known methods in `Method::ALL` order,
/// others in order of first appearance; all
/// budgets of a method together, smallest first.
pub fn methods_of(records: &[Record]) -> Vec<String> {
    let mut keys: Vec<(String, Option<usize>)> = Vec::new();
    for r in records {
        if !keys.iter().any(|(m, b)| *m == r.method && *b == r.budget) {
            keys.push((r.method.clone(), r.budget));
        }
    }
    // Known methods in the order `--methods` documents them (a file written by concurrent
    // solves holds them in finishing order), others after them as they first appear.
    let order: Vec<String> = keys.iter().fold(Vec::new(), |mut o, (m, _)| {
        if !o.contains(m) {
            o.push(m.clone());
        }
        o
    });
    let rank = |m: &String| {
        let known = m
            .parse::<Method>()
            .ok()
            .and_then(|k| Method::ALL.iter().position(|x| *x == k));
        (
            known.unwrap_or(usize::MAX),
            order.iter().position(|x| x == m),
        )
    };
    keys.sort_by_key(|(m, b)| (rank(m), *b));
    keys.iter()
        .map(|(method, budget)| label(method, *budget))
        .collect()
}
