//! The evaluation scheduler: (problem, method) pairs handed to parallel workers over one
//! shared model, each result streamed to the results journal as it finishes.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use thinktree::reason::Method;
use thinktree::reason::answer::answers_match;

use crate::cli::Args;
use crate::data::Problem;
use crate::journal::{Entry, Journal, Start};
use crate::output::{Record, label};
use crate::report::MethodSummary;
use crate::report::{Paired, paired, summarize};
use crate::solver::{Attempt, Solver, problem_seed};
use crate::trees;
use crate::variant::Variant;

/// How [`evaluate`] runs.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Results file.
    pub out: PathBuf,
    /// Keep `out` and skip the pairs it holds.
    pub resume: bool,
    /// Solves (problem, method pairs) run at once, each on a thread of its own; on one
    /// in-process engine their decode steps merge into shared forward passes.
    pub concurrency: usize,
    /// Directory for per-problem DOT/JSON trees.
    pub export_tree: Option<PathBuf>,
    /// Draw a progress bar.
    pub progress: bool,
    /// Base seed (combined with each problem id).
    pub seed: u64,
    /// The token budget every record is tagged with (a `--budgets` run), if any.
    pub budget: Option<usize>,
    /// The options spelled into each method's name in the records (`marco+reflect`).
    pub variant: Variant,
}

impl EvalOptions {
    /// The options the command line asks for.
    pub fn from_args(args: &Args) -> Self {
        Self {
            out: args.out.clone(),
            resume: args.resume,
            concurrency: args.concurrency,
            export_tree: args.export_tree.clone(),
            progress: !args.quiet,
            seed: args.seed,
            budget: None,
            variant: Variant::from_args(args),
        }
    }
}

/// The outcome of an evaluation.
#[derive(Debug, Clone)]
pub struct EvalOutcome {
    /// Records of the selected problems and methods: those found on resume plus new ones.
    pub records: Vec<Record>,
    /// Pairs skipped because the results file already held them.
    pub skipped: usize,
    /// Pairs solved in this run.
    pub solved: usize,
    /// One row per method.
    pub summary: Vec<MethodSummary>,
    /// Each method against self-consistency (or the first method) on the same problems.
    pub paired: Vec<Paired>,
    /// Wall-clock time of the solves run now (all of them, however many ran at once).
    pub wall: Duration,
    /// Tokens the solves run now generated.
    pub generated_now: u64,
}

impl EvalOutcome {
    /// The run's throughput line: pairs solved now per minute and generated tokens per
    /// second of wall time, every solve running at once counted (the table's speed
    /// columns estimate each method's share from its solves' latencies). `None` when
    /// nothing was solved.
    pub fn throughput(&self) -> Option<String> {
        let s = self.wall.as_secs_f64();
        (self.solved > 0 && s > 0.0).then(|| {
            format!(
                "{} solves in {:.1} s of wall time: {:.2} solves/min, {:.1} generated tok/s",
                self.solved,
                s,
                self.solved as f64 * 60.0 / s,
                self.generated_now as f64 / s
            )
        })
    }
}

/// Scores an attempt against the gold answer; `method` is the name the record carries
/// ([`Variant::name`]).
pub fn to_record(problem: &Problem, method: &str, attempt: Attempt) -> Record {
    let correct = attempt
        .predicted
        .as_deref()
        .is_some_and(|p| answers_match(p, &problem.gold));
    let covered = correct
        || attempt
            .candidates
            .iter()
            .any(|(a, _)| answers_match(a, &problem.gold));
    let right = |a: &Option<String>| {
        a.as_deref()
            .is_some_and(|a| answers_match(a, &problem.gold))
    };
    let reflection = (!attempt.reflections.is_empty()).then(|| {
        let mut r = crate::output::Reflections::default();
        for x in &attempt.reflections {
            r.chains += 1;
            match (right(&x.before), right(&x.after)) {
                (false, true) => r.fixed += 1,
                (true, false) => r.broken += 1,
                _ => {}
            }
            let same = match (&x.before, &x.after) {
                (Some(a), Some(b)) => answers_match(a, b),
                (None, None) => true,
                _ => false,
            };
            r.changed += usize::from(!same);
        }
        r
    });
    Record {
        id: problem.id.clone(),
        method: method.to_string(),
        gold: problem.gold.clone(),
        predicted: attempt.predicted,
        correct,
        covered,
        generated_tokens: attempt.usage.generated_tokens,
        computed_tokens: attempt.usage.computed_tokens,
        prompt_tokens: attempt.usage.prompt_tokens,
        forward_calls: attempt.usage.forward_calls,
        model_calls: attempt.model_calls,
        wall_ms: attempt.wall.as_secs_f64() * 1000.0,
        path: attempt.path,
        candidates: attempt.candidates,
        error: None,
        budget: None,
        reflection,
        concurrency: None,
    }
}

fn error_record(problem: &Problem, method: &str, wall: Duration, e: &anyhow::Error) -> Record {
    Record {
        id: problem.id.clone(),
        method: method.to_string(),
        gold: problem.gold.clone(),
        predicted: None,
        correct: false,
        covered: false,
        generated_tokens: 0,
        computed_tokens: 0,
        prompt_tokens: 0,
        forward_calls: 0,
        model_calls: 0,
        wall_ms: wall.as_secs_f64() * 1000.0,
        path: Vec::new(),
        candidates: Vec::new(),
        error: Some(format!("{e:#}")),
        budget: None,
        reflection: None,
        concurrency: None,
    }
}

/// Running totals behind the progress message.
#[derive(Debug, Default)]
struct Progress {
    per_method: Vec<(String, usize, usize)>,
    generated: u64,
}

impl Progress {
    fn add(&mut self, r: &Record) {
        self.generated += r.generated_tokens;
        match self.per_method.iter_mut().find(|(m, _, _)| *m == r.method) {
            Some(e) => {
                e.1 += usize::from(r.correct);
                e.2 += 1;
            }
            None => self
                .per_method
                .push((r.method.clone(), usize::from(r.correct), 1)),
        }
    }

    fn message(&self, elapsed: Duration) -> String {
        let accs: Vec<String> = self
            .per_method
            .iter()
            .map(|(m, c, n)| format!("{m} {c}/{n} ({:.0}%)", 100.0 * *c as f64 / *n as f64))
            .collect();
        let tps = self.generated as f64 / elapsed.as_secs_f64().max(1e-9);
        format!("{} | {tps:.1} tok/s", accs.join(", "))
    }
}

/// Prints above the progress bar, or to stderr when there is none (a hidden bar drops
/// its `println`s, and a failed solve must never go unreported).
fn warn(bar: &ProgressBar, msg: &str) {
    if bar.is_hidden() {
        eprintln!("{msg}");
    } else {
        bar.println(msg);
    }
}

/// Solves every (problem, method) pair not already in the results file, streaming one
/// line per pair, and summarises all records of the selection.
///
/// Pairs are handed out in problem-major order (every method of problem 0, then of problem
/// 1, ...) from a shared queue, so a run stopped early still compares the methods on the
/// same problems. A failing solve is recorded with its error and the run goes on; a
/// failing write stops it.
pub fn evaluate<S: Solver>(
    solver: &S,
    problems: &[Problem],
    methods: &[Method],
    opts: &EvalOptions,
) -> anyhow::Result<EvalOutcome> {
    if opts.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if methods.is_empty() {
        bail!("no methods given (use --methods greedy,sc,bon,beam,mcts)");
    }
    if problems.is_empty() {
        bail!("no problems to solve");
    }
    if let Some(dir) = &opts.export_tree {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating --export-tree directory {}", dir.display()))?;
    }

    let method_names: Vec<String> = methods.iter().map(|&m| opts.variant.name(m)).collect();
    let ids: HashSet<&str> = problems.iter().map(|p| p.id.as_str()).collect();
    let start = if opts.resume {
        Start::Resume
    } else {
        Start::Replace
    };
    let (writer, existing) = Journal::<Record>::open(&opts.out, start)?;
    if let Some(prev) = &existing.moved_to
        && opts.progress
    {
        eprintln!(
            "earlier results moved to {} (pass --resume to continue a run instead)",
            prev.display()
        );
    }
    let mut kept: Vec<Record> = existing
        .records
        .into_iter()
        .filter(|r| {
            r.error.is_none()
                && r.budget == opts.budget
                && ids.contains(r.id.as_str())
                && method_names.contains(&r.method)
        })
        .collect();
    let done: HashSet<(String, String)> = kept.iter().map(Record::key).collect();
    let tasks: Vec<(&Problem, Method, &str)> = problems
        .iter()
        .flat_map(|p| {
            methods
                .iter()
                .zip(&method_names)
                .map(move |(&m, name)| (p, m, name.as_str()))
        })
        .filter(|(p, _, name)| !done.contains(&(p.id.clone(), name.to_string())))
        .collect();
    let skipped = problems.len() * methods.len() - tasks.len();

    let bar = if opts.progress {
        ProgressBar::new(tasks.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:28.cyan/blue} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
    ) {
        bar.set_style(style);
    }
    let progress = Mutex::new(Progress::default());
    let new_records: Mutex<Vec<Record>> = Mutex::new(Vec::with_capacity(tasks.len()));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let started = Instant::now();

    let worker = |_: usize| {
        while !stop.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(problem, method, name)) = tasks.get(i) else {
                break;
            };
            let t0 = Instant::now();
            let seed = problem_seed(opts.seed, &problem.id);
            let mut record = match solver.solve(&problem.question, method, seed) {
                Ok(attempt) => {
                    if let Some(dir) = &opts.export_tree
                        && let Err(e) =
                            trees::export(dir, problem, &label(name, opts.budget), &attempt)
                    {
                        warn(&bar, &format!("warning: {e:#}"));
                    }
                    to_record(problem, name, attempt)
                }
                Err(e) => {
                    warn(
                        &bar,
                        &format!("warning: {} with {name} failed: {e:#}", problem.id),
                    );
                    error_record(problem, name, t0.elapsed(), &e)
                }
            };
            record.budget = opts.budget;
            record.concurrency = Some(opts.concurrency);
            // Nothing is written after the first failed write (the pair is redone on
            // resume): the run stops there.
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if let Err(e) = writer.write(&record) {
                stop.store(true, Ordering::Relaxed);
                let mut f = failure.lock().unwrap_or_else(|p| p.into_inner());
                f.get_or_insert(e.into());
                break;
            }
            {
                let mut p = progress.lock().unwrap_or_else(|p| p.into_inner());
                p.add(&record);
                bar.set_message(p.message(started.elapsed()));
            }
            bar.inc(1);
            new_records
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(record);
        }
    };

    // Plain threads, not a rayon pool: a solve blocks while the engine's scheduler decodes
    // its rows, and the model's other work (prefill, scorers) runs in rayon's global pool,
    // which blocked workers must not occupy.
    let worker = &worker;
    std::thread::scope(|s| {
        for w in 0..opts.concurrency {
            s.spawn(move || worker(w));
        }
    });
    bar.finish_and_clear();

    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let new_records = new_records.into_inner().unwrap_or_else(|p| p.into_inner());
    let wall = started.elapsed();
    let solved = new_records.len();
    let generated_now = new_records.iter().map(|r| r.generated_tokens).sum();
    kept.extend(new_records);
    // Report in dataset order whatever order the workers finished in.
    let order = |r: &Record| {
        problems
            .iter()
            .position(|p| p.id == r.id)
            .unwrap_or(usize::MAX)
    };
    kept.sort_by_key(|r| (order(r), method_names.iter().position(|m| *m == r.method)));
    let labels: Vec<String> = method_names.iter().map(|m| label(m, opts.budget)).collect();
    if let Some(dir) = &opts.export_tree {
        let index = trees::write_index(dir, &kept)?;
        if opts.progress {
            eprintln!("trees: open {} in a browser", index.display());
        }
    }
    let summary = summarize(&kept, &labels);
    let paired = paired(&kept, &labels);
    Ok(EvalOutcome {
        records: kept,
        skipped,
        solved,
        summary,
        paired,
        wall,
        generated_now,
    })
}
