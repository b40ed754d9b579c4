//! The `train-value` binary's work: train a value head on self-play records.
//!
//! Reads step records written by `selfplay`, recomputes each step's feature vector (the
//! frozen model's final hidden state after `prompt + context + step`, shared prefixes
//! computed once per problem), trains a small MLP with AdamW against the Monte-Carlo
//! labels, prints and saves the per-epoch loss and validation accuracy as CSV
//! (`<out stem>.csv` next to the weights), and writes the weights as safetensors.
//! Use the result with `gsm8k --scorer value:PATH`.

use std::path::PathBuf;

use crate::model_path::{ensure_default_model, resolve_model_path};
use anyhow::bail;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use thinktree::engine::Engine;
use thinktree::llm::{EngineOptions, LocalEngine};
use thinktree::value::{
    Example, Record, StepRecord, TrainConfig, read_records, step_features, train, write_history_csv,
};

/// Train a value head (MLP on the model's hidden state) on self-play records.
#[derive(Debug, Clone, Parser)]
#[command(name = "train-value", version, about)]
pub struct Args {
    /// Records written by `selfplay` (JSONL).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Where to write the weights (safetensors); the CSV goes next to it.
    #[arg(long, value_name = "FILE", default_value = "value.safetensors")]
    pub out: PathBuf,
    /// The GGUF model whose hidden states are the features (the one the search will use).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Passes over the training set.
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 1e-2)]
    pub weight_decay: f64,
    /// Hidden units of the head.
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    /// Share of problems held out for validation.
    #[arg(long, default_value_t = 0.2)]
    pub val_frac: f64,
    /// Examples per optimiser step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Use only steps with at least this many finished paths below them.
    #[arg(long, default_value_t = 1)]
    pub min_leaves: usize,
    /// Seed of the initialisation, the split and the shuffles.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
}

fn bar(quiet: bool, len: usize, what: &str) -> anyhow::Result<ProgressBar> {
    let b = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len as u64)
    };
    b.set_style(ProgressStyle::with_template(&format!(
        "{{bar:30}} {{pos}}/{{len}} {what} [{{elapsed_precise}}<{{eta_precise}}] {{msg}}"
    ))?);
    Ok(b)
}

/// Everything `train-value` does (progress and the per-epoch table go to the terminal).
pub fn run(args: &Args) -> anyhow::Result<()> {
    let cfg = TrainConfig {
        epochs: args.epochs,
        lr: args.lr,
        weight_decay: args.weight_decay,
        hidden: args.hidden,
        val_frac: args.val_frac,
        seed: args.seed,
        batch_size: args.batch_size,
    };
    cfg.validate()?;
    let records = read_records(&args.data)?;
    let steps: Vec<&StepRecord> = records
        .iter()
        .filter_map(|r| match r {
            Record::Step(s) if s.leaves >= args.min_leaves => Some(s),
            _ => None,
        })
        .collect();
    if steps.is_empty() {
        bail!(
            "{} holds no step records with >= {} finished paths below",
            args.data.display(),
            args.min_leaves
        );
    }
    let positive = steps.iter().filter(|s| s.mc_value >= 0.5).count();
    println!(
        "{} step records from {} problems ({} with mc_value >= 0.5)",
        steps.len(),
        steps
            .iter()
            .map(|s| s.problem.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        positive
    );
    let model = match &args.model {
        Some(p) => resolve_model_path(Some(p))?,
        None => ensure_default_model()?,
    };
    let engine = LocalEngine::load(&model, EngineOptions::default())?;
    let fb = bar(args.quiet, steps.len(), "features")?;
    let (features, usage) = step_features(&engine, &steps, |i| fb.set_position(i as u64))?;
    fb.finish();
    println!(
        "features: {} vectors of {} from {} ({} tokens computed)",
        features.len(),
        features.first().map_or(0, Vec::len),
        engine.name(),
        usage.computed_tokens
    );
    let examples: Vec<Example> = steps
        .iter()
        .zip(features)
        .map(|(s, f)| Example {
            features: f,
            label: s.mc_value as f32,
            group: s.problem.clone(),
        })
        .collect();
    let eb = bar(args.quiet, cfg.epochs, "epochs")?;
    let trained = train(&examples, &cfg, |s| {
        let val = match (s.val_loss, s.val_acc) {
            (Some(l), Some(a)) => format!("val_loss {l:.4} val_acc {a:.3}"),
            _ => "no validation set".into(),
        };
        let line = format!(
            "epoch {:>3}  train_loss {:.4}  {val}",
            s.epoch, s.train_loss
        );
        // A hidden bar drops its printed lines; the figures must show either way.
        if eb.is_hidden() {
            println!("{line}");
        } else {
            eb.println(line);
        }
        eb.inc(1);
    })?;
    eb.finish();
    trained.head.save(&args.out)?;
    let csv = args.out.with_extension("csv");
    write_history_csv(&csv, &trained.history)?;
    println!(
        "trained on {} examples, validated on {} | weights: {} | history: {}",
        trained.sizes.0,
        trained.sizes.1,
        args.out.display(),
        csv.display()
    );
    Ok(())
}
