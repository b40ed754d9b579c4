//! `gsm8k`'s whole job: load the problems and the model (in process or on servers),
//! evaluate, and write the table and the plot.

use std::path::{Path, PathBuf};

use anyhow::Context;
use thinktree::engine::Engine;
use thinktree::llm::{EngineOptions, LocalEngine};
use thinktree::reason::{Method, SolveConfig};
use thinktree::remote::{RemoteEngine, RemoteOptions};

use crate::cli::{Args, ReportArgs};
use crate::data::{DEFAULT_NAME, Problem, load, select};
use crate::evaluate::{EvalOptions, EvalOutcome, evaluate};
use crate::journal::{read_existing, sibling, write_file};
use crate::model_path::{ensure_default_model, resolve_model_path};
use crate::output::{Record, label};
use crate::plot::plot_accuracy_vs_tokens;
use crate::report::{
    MethodSummary, Paired, markdown_table, methods_of, paired, paired_table, reflection_table,
    summarize,
};
use crate::solver::{EngineSolver, method_configs};

/// Paths of the files written next to the results.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    /// The Markdown table.
    pub summary: PathBuf,
    /// The accuracy-vs-tokens plot.
    pub plot: PathBuf,
}

/// Writes `<out>.summary.md` (the table, then the paired comparisons) and `<out>.svg`.
pub fn write_reports(
    out: &Path,
    records: &[Record],
    summary: &[MethodSummary],
    paired: &[Paired],
    heading: &str,
) -> anyhow::Result<ReportFiles> {
    let md_path = sibling(out, ".summary.md");
    let svg_path = sibling(out, ".svg");
    let md = format!(
        "# {heading}\n\n{}\n{}\n{}",
        markdown_table(summary),
        paired_table(paired),
        reflection_table(records)
    );
    write_file(&md_path, md.as_bytes())
        .with_context(|| format!("writing {}", md_path.display()))?;
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
    // Every budget's settings are checked before the model loads, too.
    for &b in &args.budgets {
        method_configs(&methods, &args.at_budget(b))?;
    }
    let model_path = match &args.model {
        Some(p) => resolve_model_path(Some(p))?,
        None => ensure_default_model()?,
    };
    let template = match &args.chat_template {
        Some(path) => {
            let src = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading --chat-template {}: {e}", path.display()))?;
            Some(thinktree::gguf::ChatTemplate::from_source(&src)?)
        }
        None => None,
    };
    if let Some(list) = &args.server {
        let mut opts = RemoteOptions::from_list(list)?;
        if let Some(name) = &args.server_model {
            opts = opts.model(name.clone());
        }
        if let Some(t) = template {
            opts = opts.chat_template(t);
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
        eprintln!(
            "loading {} ... (8-bit matmul kernel: {})",
            model_path.display(),
            thinktree::llm::kernel()
        );
    }
    let mut opts = EngineOptions::default().weights(args.weights);
    if let Some(mb) = args.kv_budget_mb {
        opts = opts.kv_budget_bytes(mb.saturating_mul(1 << 20));
    }
    if let Some(t) = template {
        opts = opts.chat_template(t);
    }
    let engine = LocalEngine::load(&model_path, opts)?;
    let done = run_with(&engine, configs, &methods, &problems, args)?;
    let b = engine.batch_stats();
    if !args.quiet && b.steps > 0 {
        eprintln!(
            "decode: {} forward steps, {} shared by several solves (up to {} at once), {:.1} rows a step",
            b.steps,
            b.merged_steps,
            b.most_calls,
            b.rows as f64 / b.steps as f64
        );
    }
    Ok(done)
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
    // model is loaded once for the run (once per budget with --budgets).
    let solver = if args.budgets.is_empty() {
        Some(EngineSolver::new(engine, configs)?)
    } else {
        None
    };
    let dataset = args.data.as_ref().map_or_else(
        || format!("{DEFAULT_NAME} set"),
        |p| p.display().to_string(),
    );
    let opts = EvalOptions::from_args(args);
    if !args.quiet {
        let names: Vec<String> = methods.iter().map(|&m| opts.variant.name(m)).collect();
        eprintln!(
            "{} problems from {dataset} (offset {}), methods {}, {} at once",
            problems.len(),
            args.offset,
            names.join(","),
            args.concurrency
        );
    }
    let outcome = match &solver {
        Some(solver) => evaluate(solver, problems, methods, &opts)?,
        None => evaluate_budgets(engine, methods, problems, args, &opts)?,
    };
    let heading = format!(
        "{} on {dataset}: {} problems from offset {}, seed {}",
        engine.name(),
        problems.len(),
        args.offset,
        args.seed
    );
    let files = write_reports(
        &args.out,
        &outcome.records,
        &outcome.summary,
        &outcome.paired,
        &heading,
    )?;
    Ok((outcome, files))
}

/// A `--budgets` run: every method at every budget, one results file per budget, the
/// outcome merged over all of them (rows `method@budget`). `opts` are the run's options;
/// each budget writes its own results file.
fn evaluate_budgets<E: Engine>(
    engine: &E,
    methods: &[Method],
    problems: &[Problem],
    args: &Args,
    opts: &EvalOptions,
) -> anyhow::Result<EvalOutcome> {
    let (mut records, mut solved, mut skipped) = (Vec::new(), 0, 0);
    let (mut wall, mut generated_now) = (std::time::Duration::ZERO, 0);
    for &budget in &args.budgets {
        let at = args.at_budget(budget);
        if !args.quiet {
            eprintln!("budget {budget} tokens per problem -> {}", at.out.display());
        }
        let solver = EngineSolver::new(engine, method_configs(methods, &at)?)?;
        let at_opts = EvalOptions {
            budget: Some(budget),
            out: at.out.clone(),
            ..opts.clone()
        };
        let outcome = evaluate(&solver, problems, methods, &at_opts)?;
        records.extend(outcome.records);
        solved += outcome.solved;
        skipped += outcome.skipped;
        wall += outcome.wall;
        generated_now += outcome.generated_now;
    }
    // Rows in the order asked for: method by method, budgets ascending.
    let mut budgets = args.budgets.clone();
    budgets.sort_unstable();
    let labels: Vec<String> = methods
        .iter()
        .flat_map(|&m| {
            let name = opts.variant.name(m);
            budgets.iter().map(move |&b| label(&name, Some(b)))
        })
        .collect();
    Ok(EvalOutcome {
        summary: summarize(&records, &labels),
        paired: paired(&records, &labels),
        records,
        skipped,
        solved,
        wall,
        generated_now,
    })
}

/// What `gsm8k report` rebuilt.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    /// Every record read, merged.
    pub records: Vec<Record>,
    /// One row per method, in order of first appearance.
    pub summary: Vec<MethodSummary>,
    /// Each method against self-consistency (or the first method).
    pub paired: Vec<Paired>,
    /// The files written.
    pub files: ReportFiles,
}

/// `gsm8k report`: reads the results files (a torn last line is ignored, as `--resume`
/// does), merges them, and writes the table, the paired comparisons and the plot.
pub fn report_cli(args: &ReportArgs) -> anyhow::Result<Rebuilt> {
    let mut records: Vec<Record> = Vec::new();
    for path in &args.files {
        if !path.is_file() {
            anyhow::bail!("{}: no such results file", path.display());
        }
        for r in read_existing::<Record>(path)?.records {
            match records
                .iter_mut()
                .find(|x| x.id == r.id && x.method == r.method && x.budget == r.budget)
            {
                Some(old) => *old = r,
                None => records.push(r),
            }
        }
    }
    if records.is_empty() {
        anyhow::bail!("no results in {}", args.files[0].display());
    }
    let methods = methods_of(&records);
    let summary = summarize(&records, &methods);
    let paired = paired(&records, &methods);
    let out = args.out.clone().unwrap_or_else(|| args.files[0].clone());
    let names: Vec<String> = args.files.iter().map(|p| p.display().to_string()).collect();
    let heading = format!("Results of {}", names.join(", "));
    let files = write_reports(&out, &records, &summary, &paired, &heading)?;
    Ok(Rebuilt {
        records,
        summary,
        paired,
        files,
    })
}
