//! `selfplay`: solve training problems with MCTS and export labelled step records.
//!
//! Each problem's search tree becomes Math-Shepherd records (docs/SELFPLAY.md): every
//! step with the share of finished paths below it whose answer matches the gold answer,
//! plus preference pairs of siblings. The search never sees the gold answer; it only
//! labels the finished tree. Records are appended as each problem finishes, and a
//! problems log (`<out stem>.problems.jsonl`) makes the run resumable with `--resume`.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
use thinktree_gsm8k::data::{load, select};
use thinktree_gsm8k::model_path::{ensure_default_model, resolve_model_path};
use thinktree_gsm8k::run::problem_seed;

/// Solve training problems with MCTS and write labelled per-step records (JSONL).
#[derive(Debug, Parser)]
#[command(name = "selfplay", version, about)]
struct Args {
    /// Training problems in GSM8K JSONL format (use the train split, never the test split).
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Skip this many problems first.
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Solve at most this many problems.
    #[arg(long)]
    limit: Option<usize>,
    /// Records file (JSONL, one record per line).
    #[arg(long, value_name = "FILE", default_value = "records.jsonl")]
    out: PathBuf,
    /// Continue a stopped run: skip problems already in the problems log.
    #[arg(long)]
    resume: bool,
    /// MCTS simulations per problem.
    #[arg(long, default_value_t = 16)]
    simulations: usize,
    /// Generated-token budget per problem.
    #[arg(long, value_name = "TOKENS", default_value_t = 512)]
    max_tokens: usize,
    /// Scorer guiding the search (default: the MCTS default).
    #[arg(long)]
    scorer: Option<String>,
    /// Keep step records only for steps with at least this many finished paths below.
    #[arg(long, default_value_t = 1)]
    min_leaves: usize,
    /// Sibling pairs need estimates at least this far apart.
    #[arg(long, default_value_t = 0.5)]
    pair_margin: f64,
    /// Open leaves completed by sampling to the end after the search (most visited
    /// first), so their steps get an outcome.
    #[arg(long, default_value_t = 8)]
    rollout_leaves: usize,
    /// Completions per such leaf.
    #[arg(long, default_value_t = 1)]
    rollouts: usize,
    /// Generated tokens per completion at most.
    #[arg(long, default_value_t = 192)]
    rollout_tokens: usize,
    /// Base seed (each problem derives its own from its id).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// GGUF model (default: SmolLM2-135M-Instruct in models/, or $THINKTREE_MODEL).
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// One line of the problems log.
#[derive(Debug, Serialize, Deserialize)]
struct ProblemLine {
    problem: String,
    answer: Option<String>,
    gold: String,
    correct: bool,
    step_records: usize,
    pair_records: usize,
    leaves: usize,
    correct_leaves: usize,
    generated_tokens: u64,
    computed_tokens: u64,
    rollout_generated_tokens: u64,
    rollout_computed_tokens: u64,
}

fn problems_log(out: &Path) -> PathBuf {
    let stem = out.file_stem().map_or_else(
        || "records".to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    out.with_file_name(format!("{stem}.problems.jsonl"))
}

/// Problems finished in an earlier run; the records file is trimmed to them (a problem
/// whose records were written but whose log line was not is solved again).
fn resume_state(out: &Path, log: &Path) -> anyhow::Result<HashSet<String>> {
    let mut done = HashSet::new();
    if log.exists() {
        for line in BufReader::new(File::open(log)?).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let p: ProblemLine = serde_json::from_str(&line)
                .with_context(|| format!("{}: bad line", log.display()))?;
            done.insert(p.problem);
        }
    }
    if out.exists() {
        let kept: Vec<Record> = read_records(out)?
            .into_iter()
            .filter(|r| done.contains(r.problem()))
            .collect();
        let mut f = File::create(out)?;
        write_records(&mut f, &kept)?;
    }
    Ok(done)
}

fn run(args: &Args) -> anyhow::Result<()> {
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
    let done = if args.resume {
        resume_state(&args.out, &log)?
    } else {
        if log.exists() || args.out.exists() {
            bail!(
                "{} or {} exists: pass --resume to continue it, or choose another --out",
                args.out.display(),
                log.display()
            );
        }
        HashSet::new()
    };
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
    let mut records_file = open(&args.out).with_context(|| args.out.display().to_string())?;
    let mut log_file = open(&log).with_context(|| log.display().to_string())?;
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(todo.len() as u64)
    };
    bar.set_style(ProgressStyle::with_template(
        "{bar:30} {pos}/{len} problems [{elapsed_precise}<{eta_precise}] {msg}",
    )?);
    let (mut solved, mut right, mut steps, mut pairs) = (0usize, 0usize, 0usize, 0usize);
    for p in &todo {
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
            .search_tree
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
        write_records(&mut records_file, records)?;
        writeln!(log_file, "{}", serde_json::to_string(&line)?)?;
        log_file.flush()?;
        solved += 1;
        right += usize::from(correct);
        steps += n_steps;
        pairs += records.len() - n_steps;
        bar.set_message(format!(
            "{right}/{solved} right, {steps} steps, {pairs} pairs"
        ));
        bar.inc(1);
    }
    bar.finish();
    println!(
        "selfplay: {solved} problems solved now ({right} right), {steps} step records and {pairs} pairs appended to {} (log: {})",
        args.out.display(),
        log.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    thinktree_gsm8k::thread_env::main_with::<Args>(run)
}
