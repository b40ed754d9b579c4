//! The `selfplay` binary's work: solve training problems with MCTS and export labelled
//! step records.
//!
//! Each problem's search tree becomes Math-Shepherd records (docs/SELFPLAY.md): every
//! step with the share of finished paths below it whose answer matches the gold answer,
//! plus preference pairs of siblings. The search never sees the gold answer; it only
//! labels the finished tree. Records are appended as each problem finishes, and a
//! problems log (`<out stem>.problems.jsonl`, a [`crate::journal::Journal`]) makes the run
//! resumable with `--resume` and keeps a second run off the same files.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::data::{Problem, load, select};
use crate::journal::{Entry, Journal, Start};
use crate::model_path::{ensure_default_model, resolve_model_path};
use crate::solver::problem_seed;
use anyhow::{Context, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use thinktree::llm::{EngineOptions, LocalEngine};
use thinktree::reason::answer::answers_match;
use thinktree::reason::{Method, ScorerSpec, SolveConfig};
use thinktree::value::{
    LabelOptions, Record, SelfPlayOptions, leaf_counts, read_records, selfplay_problem,
    write_records,
};

/// Solve training problems with MCTS and write labelled per-step records (JSONL).
#[derive(Debug, Clone, Parser)]
#[command(name = "selfplay", version, about)]
pub struct Args {
    /// Training problems in GSM8K JSONL format (use the train split, never the test split).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Skip this many problems first.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Solve at most this many problems.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Records file (JSONL, one record per line).
    #[arg(long, value_name = "FILE", default_value = "records.jsonl")]
    pub out: PathBuf,
    /// Continue a stopped run: skip problems already in the problems log.
    #[arg(long)]
    pub resume: bool,
    /// MCTS simulations per problem.
    #[arg(long, default_value_t = 16)]
    pub simulations: usize,
    /// Generated-token budget per problem.
    #[arg(long, value_name = "TOKENS", default_value_t = 512)]
    pub max_tokens: usize,
    /// Scorer guiding the search (default: the MCTS default).
    #[arg(long)]
    pub scorer: Option<String>,
    /// Keep step records only for steps with at least this many finished paths below.
    #[arg(long, default_value_t = 1)]
    pub min_leaves: usize,
    /// Sibling pairs need estimates at least this far apart.
    #[arg(long, default_value_t = 0.5)]
    pub pair_margin: f64,
    /// Open leaves completed by sampling to the end after the search (most visited
    /// first), so their steps get an outcome.
    #[arg(long, default_value_t = 8)]
    pub rollout_leaves: usize,
    /// Completions per such leaf.
    #[arg(long, default_value_t = 1)]
    pub rollouts: usize,
    /// Generated tokens per completion at most.
    #[arg(long, default_value_t = 192)]
    pub rollout_tokens: usize,
    /// Base seed (each problem derives its own from its id).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Problems solved at once, sharing one model: their decode steps merge into shared
    /// forward passes, and each problem's records are what it gets alone.
    #[arg(long, default_value_t = crate::cli::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// GGUF model (default: SmolLM2-135M-Instruct in models/, or $THINKTREE_MODEL).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// One line of the problems log: one solved training problem.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProblemLine {
    /// Problem id.
    pub problem: String,
    /// The search's answer.
    pub answer: Option<String>,
    /// Gold answer (used only to label, after the search).
    pub gold: String,
    /// Whether the answer matches the gold.
    pub correct: bool,
    /// Step records written.
    pub step_records: usize,
    /// Preference-pair records written.
    pub pair_records: usize,
    /// Finished paths in the tree.
    pub leaves: usize,
    /// Finished paths whose answer matches the gold.
    pub correct_leaves: usize,
    /// Tokens the search generated.
    pub generated_tokens: u64,
    /// Token positions the search computed.
    pub computed_tokens: u64,
    /// Tokens the labelling rollouts generated.
    pub rollout_generated_tokens: u64,
    /// Token positions the labelling rollouts computed.
    pub rollout_computed_tokens: u64,
}

impl Entry for ProblemLine {
    type Key = String;
    fn key(&self) -> String {
        self.problem.clone()
    }
}

/// The problems log beside the records file: `records.jsonl` → `records.problems.jsonl`.
pub fn problems_log(out: &Path) -> PathBuf {
    let stem = out.file_stem().map_or_else(
        || "records".to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    out.with_file_name(format!("{stem}.problems.jsonl"))
}

/// Trims the records file to the problems the log holds (a problem whose records were
/// written but whose log line was not is solved again).
fn trim_records(out: &Path, done: &HashSet<String>) -> anyhow::Result<()> {
    if out.exists() {
        let kept: Vec<Record> = read_records(out)?
            .into_iter()
            .filter(|r| done.contains(r.problem()))
            .collect();
        let mut f = File::create(out)?;
        write_records(&mut f, &kept)?;
    }
    Ok(())
}

/// Everything `selfplay` does; returns the one-line summary it prints.
pub fn run(args: &Args) -> anyhow::Result<String> {
    let mut cfg = SolveConfig::new(Method::Mcts);
    cfg.simulations = args.simulations;
    cfg.token_budget = args.max_tokens;
    if let Some(s) = &args.scorer {
        cfg.scorer = s.parse::<ScorerSpec>()?;
    }
    cfg.validate()?;
    let opts = SelfPlayOptions {
        label: LabelOptions {
            min_leaves: args.min_leaves,
            pair_margin: args.pair_margin,
        },
        rollout_leaves: args.rollout_leaves,
        rollouts: args.rollouts,
        rollout_tokens: args.rollout_tokens,
        ..SelfPlayOptions::default()
    };
    let problems = select(load(Some(&args.data))?, args.offset, args.limit)?;
    let log = problems_log(&args.out);
    let start = if args.resume {
        Start::Resume
    } else {
        Start::New
    };
    // The log's lock guards the records file too: both are only written under it.
    let (log_journal, existing) = Journal::<ProblemLine>::open(&log, start)?;
    if !args.resume && std::fs::metadata(&args.out).is_ok_and(|m| m.len() > 0) {
        bail!(
            "{} exists: pass --resume to continue it, or choose another --out",
            args.out.display()
        );
    }
    let done: HashSet<String> = existing.records.iter().map(|p| p.problem.clone()).collect();
    trim_records(&args.out, &done)?;
    let todo: Vec<_> = problems
        .into_iter()
        .filter(|p| !done.contains(&p.id))
        .collect();
    let model = match &args.model {
        Some(p) => resolve_model_path(Some(p))?,
        None => ensure_default_model()?,
    };
    let engine = LocalEngine::load(&model, EngineOptions::default())?;
    // One scorer for the whole run (a `prm:` judge model is loaded once).
    let scorer = thinktree::scorers::build::<LocalEngine>(&cfg.scorer, &cfg)?;
    let open = |p: &Path| OpenOptions::new().create(true).append(true).open(p);
    let records_file = open(&args.out).with_context(|| args.out.display().to_string())?;
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(todo.len() as u64)
    };
    bar.set_style(ProgressStyle::with_template(
        "{bar:30} {pos}/{len} problems [{elapsed_precise}<{eta_precise}] {msg}",
    )?);
    // Problems are solved `--concurrency` at once, each on a thread of its own (the
    // engine merges their decode steps); each problem's records and log line are written
    // together, under one lock, as it finishes.
    struct Tally {
        records_file: File,
        solved: usize,
        right: usize,
        steps: usize,
        pairs: usize,
        failure: Option<anyhow::Error>,
    }
    let tally = Mutex::new(Tally {
        records_file,
        solved: 0,
        right: 0,
        steps: 0,
        pairs: 0,
        failure: None,
    });
    let (next, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
    let solve = |p: &Problem| -> anyhow::Result<(ProblemLine, Vec<Record>)> {
        let cfg = SolveConfig {
            seed: problem_seed(args.seed, &p.id),
            ..cfg.clone()
        };
        let play = selfplay_problem(&engine, &*scorer, &p.id, &p.question, &p.gold, &cfg, &opts)
            .with_context(|| format!("problem {}", p.id))?;
        let (sol, records) = (&play.solution, &play.records);
        let correct = sol
            .answer
            .as_deref()
            .is_some_and(|a| answers_match(a, &p.gold));
        let counts = sol
            .tree
            .as_ref()
            .map(|t| leaf_counts(t, &p.gold, &play.rollouts))
            .and_then(|c| c.first().copied())
            .unwrap_or((0, 0));
        let n_steps = records
            .iter()
            .filter(|r| matches!(r, Record::Step(_)))
            .count();
        let line = ProblemLine {
            problem: p.id.clone(),
            answer: sol.answer.clone(),
            gold: p.gold.clone(),
            correct,
            step_records: n_steps,
            pair_records: records.len() - n_steps,
            leaves: counts.0,
            correct_leaves: counts.1,
            generated_tokens: sol.usage.generated_tokens,
            computed_tokens: sol.usage.computed_tokens,
            rollout_generated_tokens: play.rollout_usage.generated_tokens,
            rollout_computed_tokens: play.rollout_usage.computed_tokens,
        };
        Ok((line, play.records))
    };
    let worker = || {
        while !stop.load(Ordering::Relaxed) {
            let Some(p) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            let done = solve(p);
            let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let written = done.and_then(|(line, records)| {
                write_records(&mut t.records_file, &records)?;
                log_journal.write(&line)?;
                Ok((line, records.len()))
            });
            match written {
                Ok((line, n_records)) => {
                    t.solved += 1;
                    t.right += usize::from(line.correct);
                    t.steps += line.step_records;
                    t.pairs += n_records - line.step_records;
                    bar.set_message(format!(
                        "{}/{} right, {} steps, {} pairs",
                        t.right, t.solved, t.steps, t.pairs
                    ));
                    bar.inc(1);
                }
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    t.failure.get_or_insert(e);
                }
            }
        }
    };
    let worker = &worker;
    std::thread::scope(|s| {
        for _ in 0..args.concurrency.max(1) {
            s.spawn(worker);
        }
    });
    let t = tally.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = t.failure {
        return Err(e);
    }
    let (solved, right, steps, pairs) = (t.solved, t.right, t.steps, t.pairs);
    bar.finish();
    Ok(format!(
        "selfplay: {solved} problems solved now ({right} right), {steps} step records and {pairs} pairs appended to {} (log: {})",
        args.out.display(),
        log.display()
    ))
}
