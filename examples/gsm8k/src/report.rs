//! The per-method summary table.

use std::fmt::Write as _;

use crate::output::Record;

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
    /// Problems per minute of solve time (single stream: summed per-problem wall time,
    /// so the figure does not depend on `--threads`).
    pub problems_per_min: f64,
    /// Generated tokens per second of solve time.
    pub tokens_per_s: f64,
}

/// Summarises the records of each method, in the order given.
pub fn summarize(records: &[Record], methods: &[String]) -> Vec<MethodSummary> {
    methods
        .iter()
        .map(|m| {
            let rs: Vec<&Record> = records.iter().filter(|r| &r.method == m).collect();
            let n = rs.len();
            let correct = rs.iter().filter(|r| r.correct).count();
            let covered = rs.iter().filter(|r| r.covered).count();
            let errors = rs.iter().filter(|r| r.error.is_some()).count();
            let candidates: usize = rs.iter().map(|r| r.candidates.len()).sum();
            let multi_candidate = rs.iter().filter(|r| r.candidates.len() > 1).count();
            let generated: u64 = rs.iter().map(|r| r.generated_tokens).sum();
            let comp: u64 = rs.iter().map(|r| r.computed_tokens).sum();
            let calls: u64 = rs.iter().map(|r| r.model_calls).sum();
            let wall_s: f64 = rs.iter().map(|r| r.wall_ms).sum::<f64>() / 1000.0;
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
