//! Running methods over problems: parallel workers, one shared model, streamed results.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::model_path::{ensure_default_model, resolve_model_path};
use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use thinktree::engine::Engine;
use thinktree::engine::Usage;
use thinktree::llm::{EngineOptions, LocalEngine};
use thinktree::reason::answer::answers_match;
use thinktree::reason::{Method, Scorer, SolveConfig, solve_with_scorer};
use thinktree::remote::{RemoteEngine, RemoteOptions};

use crate::cli::Args;
use crate::data::{DEFAULT_NAME, Problem, load, select};
use crate::output::{Record, ResultsWriter, read_existing, sibling};
use crate::plot::plot_accuracy_vs_tokens;
use crate::report::{MethodSummary, markdown_table, summarize};

/// What one method produced on one problem, before it is scored against the gold answer.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    /// The chosen answer.
    pub predicted: Option<String>,
    /// Distinct candidate answers with their votes.
    pub candidates: Vec<(String, usize)>,
    /// Compute spent.
    pub usage: Usage,
    /// Engine calls made.
    pub model_calls: u64,
    /// Wall time of the solve.
    pub wall: Duration,
    /// The chosen reasoning steps.
    pub path: Vec<String>,
    /// The search tree as DOT, when exported.
    pub tree_dot: Option<String>,
    /// The search tree as JSON, when exported.
    pub tree_json: Option<String>,
}

/// Solves one question with one method. The gold answer is deliberately not an input.
///
/// The harness is generic over this so the scheduling, resume and reporting logic is the
/// same whatever produces the answers.
pub trait Solver: Sync {
    /// Solves `question` with `method`, seeded with `seed`.
    fn solve(&self, question: &str, method: Method, seed: u64) -> anyhow::Result<Attempt>;
}

/// The real solver: thinktree's reasoning layer over one shared engine, with each
/// method's scorer built once for the whole run (a `prm:` judge model is loaded once, not
/// per problem).
pub struct EngineSolver<'e, E: Engine> {
    engine: &'e E,
    configs: Vec<(SolveConfig, Box<dyn Scorer<E> + 'e>)>,
}

impl<E: Engine> std::fmt::Debug for EngineSolver<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineSolver")
            .field("engine", &self.engine.name())
            .field(
                "methods",
                &self
                    .configs
                    .iter()
                    .map(|(c, _)| c.method)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<'e, E: Engine + 'e> EngineSolver<'e, E> {
    /// A solver over `engine` with one config per method (see [`method_configs`]); builds
    /// each method's scorer now.
    pub fn new(engine: &'e E, configs: Vec<SolveConfig>) -> anyhow::Result<Self> {
        let configs = configs
            .into_iter()
            .map(|cfg| {
                let scorer = thinktree::scorers::for_config::<E>(&cfg)
                    .with_context(|| format!("building the scorer of method {}", cfg.method))?;
                Ok((cfg, scorer))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { engine, configs })
    }
}

/// One validated config per method: the method's tuned defaults with the command line's
/// budget and scorer overrides applied. Checked before the model is loaded, so a bad
/// setting fails in milliseconds.
pub fn method_configs(methods: &[Method], args: &Args) -> anyhow::Result<Vec<SolveConfig>> {
    methods
        .iter()
        .map(|&m| {
            let cfg = method_config(m, args);
            cfg.validate()
                .with_context(|| format!("invalid settings for method {m}"))?;
            Ok(cfg)
        })
        .collect()
}

/// The solve config of `method` under the command line's overrides.
pub fn method_config(method: Method, args: &Args) -> SolveConfig {
    let mut cfg = SolveConfig::new(method);
    if let Some(s) = args.simulations {
        cfg.simulations = s;
    }
    if let Some(s) = args.samples {
        cfg.samples = s;
    }
    if let Some(t) = args.max_tokens {
        cfg.token_budget = t;
    }
    if let Some(s) = &args.scorer {
        cfg.scorer = s.clone();
    }
    cfg.seed = args.seed;
    cfg.export_tree = args.export_tree.is_some();
    cfg
}

impl<E: Engine> Solver for EngineSolver<'_, E> {
    fn solve(&self, question: &str, method: Method, seed: u64) -> anyhow::Result<Attempt> {
        let (base, scorer) = self
            .configs
            .iter()
            .find(|(c, _)| c.method == method)
            .with_context(|| format!("method {method} was not configured"))?;
        let cfg = SolveConfig {
            seed,
            ..base.clone()
        };
        let sol = solve_with_scorer(self.engine, question, &cfg, &**scorer)?;
        Ok(Attempt {
            predicted: sol.answer,
            candidates: sol
                .candidates
                .into_iter()
                .map(|c| (c.answer, c.votes))
                .collect(),
            usage: sol.usage,
            model_calls: sol.engine_calls,
            wall: sol.wall,
            path: sol.path,
            tree_dot: sol.tree_dot,
            tree_json: sol.tree_json,
        })
    }
}

/// A fresh run never destroys an earlier one: a non-empty results file is moved to
/// `<stem>.prev.jsonl` first (one generation kept), so forgetting `--resume` loses nothing.
fn keep_previous(out: &Path, announce: bool) -> anyhow::Result<()> {
    let non_empty = std::fs::metadata(out).is_ok_and(|m| m.len() > 0);
    if non_empty {
        let prev = sibling(out, ".prev.jsonl");
        std::fs::rename(out, &prev).with_context(|| {
            format!(
                "moving earlier results {} to {}",
                out.display(),
                prev.display()
            )
        })?;
        if announce {
            eprintln!(
                "earlier results moved to {} (pass --resume to continue a run instead)",
                prev.display()
            );
        }
    }
    Ok(())
}

/// How [`evaluate`] runs.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Results file.
    pub out: PathBuf,
    /// Keep `out` and skip the pairs it holds.
    pub resume: bool,
    /// Problems solved at once.
    pub threads: usize,
    /// Directory for per-problem DOT/JSON trees.
    pub export_tree: Option<PathBuf>,
    /// Draw a progress bar.
    pub progress: bool,
    /// Base seed (combined with each problem id).
    pub seed: u64,
}

impl EvalOptions {
    /// The options the command line asks for.
    pub fn from_args(args: &Args) -> Self {
        Self {
            out: args.out.clone(),
            resume: args.resume,
            threads: args.threads,
            export_tree: args.export_tree.clone(),
            progress: !args.quiet,
            seed: args.seed,
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
}

/// The per-problem seed: the base seed mixed with a stable hash of the problem id, so a
/// problem gets the same seed whatever the thread count, order or `--offset`.
pub fn problem_seed(base: u64, id: &str) -> u64 {
    // FNV-1a: stable across platforms and Rust versions, unlike `DefaultHasher`.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    base ^ h
}

/// Scores an attempt against the gold answer.
pub fn to_record(problem: &Problem, method: Method, attempt: Attempt) -> Record {
    let correct = attempt
        .predicted
        .as_deref()
        .is_some_and(|p| answers_match(p, &problem.gold));
    let covered = correct
        || attempt
            .candidates
            .iter()
            .any(|(a, _)| answers_match(a, &problem.gold));
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
    }
}

fn error_record(problem: &Problem, method: Method, wall: Duration, e: &anyhow::Error) -> Record {
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

/// File-name-safe form of a problem id.
fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn export_tree(
    dir: &Path,
    problem: &Problem,
    method: Method,
    attempt: &Attempt,
) -> anyhow::Result<()> {
    let base = format!("{}-{method}", file_safe(&problem.id));
    if let Some(dot) = &attempt.tree_dot {
        let p = dir.join(format!("{base}.dot"));
        std::fs::write(&p, dot).with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(json) = &attempt.tree_json {
        let p = dir.join(format!("{base}.json"));
        std::fs::write(&p, json).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
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
    if opts.threads == 0 {
        bail!("--threads must be at least 1");
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

    let method_names: Vec<String> = methods.iter().map(Method::to_string).collect();
    let ids: HashSet<&str> = problems.iter().map(|p| p.id.as_str()).collect();
    let (writer, mut kept) = if opts.resume {
        let existing = read_existing(&opts.out)?;
        let writer = ResultsWriter::append(&opts.out, existing.valid_len)?;
        let kept: Vec<Record> = existing
            .records
            .into_iter()
            .filter(|r| {
                r.error.is_none() && ids.contains(r.id.as_str()) && method_names.contains(&r.method)
            })
            .collect();
        (writer, kept)
    } else {
        keep_previous(&opts.out, opts.progress)?;
        (ResultsWriter::create(&opts.out)?, Vec::new())
    };
    let done: HashSet<(String, String)> = kept.iter().map(Record::key).collect();
    let tasks: Vec<(&Problem, Method)> = problems
        .iter()
        .flat_map(|p| methods.iter().map(move |&m| (p, m)))
        .filter(|(p, m)| !done.contains(&(p.id.clone(), m.to_string())))
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
            let Some(&(problem, method)) = tasks.get(i) else {
                break;
            };
            let t0 = Instant::now();
            let seed = problem_seed(opts.seed, &problem.id);
            let record = match solver.solve(&problem.question, method, seed) {
                Ok(attempt) => {
                    if let Some(dir) = &opts.export_tree
                        && let Err(e) = export_tree(dir, problem, method, &attempt)
                    {
                        warn(&bar, &format!("warning: {e:#}"));
                    }
                    to_record(problem, method, attempt)
                }
                Err(e) => {
                    warn(
                        &bar,
                        &format!("warning: {} with {method} failed: {e:#}", problem.id),
                    );
                    error_record(problem, method, t0.elapsed(), &e)
                }
            };
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

    // Our own pool, at least as wide as the machine: the model's kernels parallelise
    // inside whichever rayon pool calls them, so a pool sized to --threads=1 would run
    // every matmul on one core.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads.max(cores))
        .build()
        .context("starting the worker pool")?;
    pool.install(|| (0..opts.threads).into_par_iter().for_each(worker));
    bar.finish_and_clear();

    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let new_records = new_records.into_inner().unwrap_or_else(|p| p.into_inner());
    let solved = new_records.len();
    kept.extend(new_records);
    // Report in dataset order whatever order the workers finished in.
    let order = |r: &Record| {
        problems
            .iter()
            .position(|p| p.id == r.id)
            .unwrap_or(usize::MAX)
    };
    kept.sort_by_key(|r| (order(r), method_names.iter().position(|m| *m == r.method)));
    let summary = summarize(&kept, &method_names);
    Ok(EvalOutcome {
        records: kept,
        skipped,
        solved,
        summary,
    })
}

/// Paths of the files written next to the results.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    /// The Markdown table.
    pub summary: PathBuf,
    /// The accuracy-vs-tokens plot.
    pub plot: PathBuf,
}

/// Writes `<out>.summary.md` and `<out>.svg`.
pub fn write_reports(
    out: &Path,
    summary: &[MethodSummary],
    heading: &str,
) -> anyhow::Result<ReportFiles> {
    let md_path = sibling(out, ".summary.md");
    let svg_path = sibling(out, ".svg");
    let md = format!("# {heading}\n\n{}", markdown_table(summary));
    std::fs::write(&md_path, md).with_context(|| format!("writing {}", md_path.display()))?;
    plot_accuracy_vs_tokens(summary, &svg_path)?;
    Ok(ReportFiles {
        summary: md_path,
        plot: svg_path,
    })
}

/// Everything `gsm8k` does: load the problems, check the settings, load the model (fetching
/// the default one if needed), evaluate, and write the table and the plot.
pub fn run_cli(args: &Args) -> anyhow::Result<(EvalOutcome, ReportFiles)> {
    let methods = args.unique_methods();
    let all = load(args.data.as_deref())?;
    let problems = select(all, args.offset, args.limit)?;
    let configs = method_configs(&methods, args)?;
    let model_path = match &args.model {
        Some(p) => resolve_model_path(Some(p))?,
        None => ensure_default_model()?,
    };
    if let Some(list) = &args.server {
        let mut opts = RemoteOptions::from_list(list)?;
        if let Some(name) = &args.server_model {
            opts = opts.model(name.clone());
        }
        let engine = RemoteEngine::from_gguf(opts, &model_path)?;
        if !args.quiet {
            eprintln!(
                "using {} (tokenizer from {})",
                engine.name(),
                model_path.display()
            );
        }
        let result = run_with(&engine, configs, &methods, &problems, args);
        if !args.quiet {
            for s in engine.server_stats() {
                eprintln!(
                    "{}: {} requests, {} failed and retried{}",
                    s.url,
                    s.requests,
                    s.failures,
                    if s.single_sample {
                        ", one sample per request"
                    } else {
                        ""
                    }
                );
            }
        }
        return result;
    }
    if !args.quiet {
        eprintln!("loading {} ...", model_path.display());
    }
    let engine = LocalEngine::load(&model_path, EngineOptions::default().weights(args.weights))?;
    run_with(&engine, configs, &methods, &problems, args)
}

/// Evaluates on `engine` and writes the reports.
fn run_with<E: Engine>(
    engine: &E,
    configs: Vec<SolveConfig>,
    methods: &[Method],
    problems: &[Problem],
    args: &Args,
) -> anyhow::Result<(EvalOutcome, ReportFiles)> {
    // Each method's scorer is built once, up front: a missing or mismatched `value:` /
    // `prm:` file is one clear error now, not a failed line for every problem, and a judge
    // model is loaded once for the run.
    let solver = EngineSolver::new(engine, configs)?;
    let dataset = args.data.as_ref().map_or_else(
        || format!("{DEFAULT_NAME} set"),
        |p| p.display().to_string(),
    );
    if !args.quiet {
        let names: Vec<String> = methods.iter().map(Method::to_string).collect();
        eprintln!(
            "{} problems from {dataset} (offset {}), methods {}, {} thread(s)",
            problems.len(),
            args.offset,
            names.join(","),
            args.threads
        );
    }
    let outcome = evaluate(&solver, problems, methods, &EvalOptions::from_args(args))?;
    let heading = format!(
        "{} on {dataset}: {} problems from offset {}, seed {}",
        engine.name(),
        problems.len(),
        args.offset,
        args.seed
    );
    let files = write_reports(&args.out, &outcome.summary, &heading)?;
    Ok((outcome, files))
}
