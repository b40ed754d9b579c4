//! Command-line options.

use std::path::PathBuf;

use clap::Parser;
use thinktree::llm::WeightFormat;
use thinktree::reason::{Method, ScorerSpec};

/// Solves run at once by default: enough rows per decode step to keep a 2-core machine's
/// kernels busy (docs/PERFORMANCE.md, "Many searches in one forward pass").
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Evaluate thinktree's reasoning methods on GSM8K-style math word problems.
///
/// Without options it runs MCTS with the default model on the problem set shipped in
/// `examples/gsm8k/data/default.jsonl`. Results go to one JSONL line per problem and
/// method as each finishes, then a table (`<out>.summary.md`) and a plot (`<out>.svg`).
#[derive(Debug, Clone, Parser)]
#[command(name = "gsm8k", version, about, long_about = None)]
pub struct Args {
    /// Problem set in the official GSM8K JSONL format (`question`, `answer` ending in
    /// `#### N`). Default: the set shipped with the example.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,

    /// Solve at most this many problems (after --offset).
    #[arg(long)]
    pub limit: Option<usize>,

    /// Skip this many problems at the start of the dataset.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,

    /// Methods to compare, comma-separated: greedy, sc, bon, beam, mcts, marco, rstar,
    /// deepconf, deepconf-online.
    #[arg(long, value_delimiter = ',', default_value = "mcts", value_parser = parse_method)]
    pub methods: Vec<Method>,

    /// MCTS simulations per problem (default: the method's tuned default).
    #[arg(long)]
    pub simulations: Option<usize>,

    /// Chains sampled per problem by self-consistency, best-of-N and DeepConf.
    #[arg(long)]
    pub samples: Option<usize>,

    /// DeepConf: share of traces kept (offline: the most confident; online: the share of
    /// the warm-up the threshold lets through). 0.1 is the paper's DeepConf-low, 0.9
    /// (default) its DeepConf-high. Records name the method `deepconf-low` at 0.1 and
    /// `deepconf-keep<SHARE>` at other shares than the default.
    #[arg(long, value_name = "SHARE")]
    pub deepconf_keep: Option<f64>,

    /// Marco-o1's reflection: a chain that reached an answer is told "Wait! Maybe I made
    /// some mistakes! I need to rethink from scratch." and goes on within the budget
    /// (greedy, sc, bon, beam: every finished chain; mcts, marco: an action beside each
    /// finished chain that the search may take; rstar and deepconf refuse it); the
    /// summary counts the answers it fixed and broke. Records name the method
    /// `<method>+reflect`, so its runs resume and merge apart from the plain method's.
    #[arg(long)]
    pub reflect: bool,

    /// rStar's mutual-consistency discriminator after any method: each distinct finished
    /// trajectory is cut after 20-80% of its steps and completed again; the best-scored
    /// trajectory whose completion agrees wins (else the method's choice). A quarter of
    /// the budget is held back for it. Records name the method `<method>+mc`.
    #[arg(long)]
    pub mutual_check: bool,

    /// Generated-token budget per problem, scorer calls included (equal-compute knob).
    #[arg(long, value_name = "TOKENS")]
    pub max_tokens: Option<usize>,

    /// Run every method at each of these generated-token budgets on the same problems
    /// (comma-separated, e.g. 256,512,1024,2048,4096): one results file per budget
    /// (`<out stem>.b<TOKENS>.jsonl`, each resumable), then one table, paired comparisons
    /// per budget and one plot of accuracy and coverage against mean generated tokens,
    /// a line per method, over all of them (`<out stem>.summary.md`, `<out stem>.svg`).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "TOKENS,...",
        conflicts_with = "max_tokens"
    )]
    pub budgets: Vec<usize>,

    /// Scorer guiding best-of-N, beam and MCTS: confidence, self-eval, verifier, rollout,
    /// prm:PATH, or a weighted list such as confidence:0.5,verifier:0.5.
    #[arg(long, value_parser = parse_scorer)]
    pub scorer: Option<ScorerSpec>,

    /// Base random seed; each problem derives its own from it and its index.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Solves (problem x method pairs) run at once, sharing one model in memory. In
    /// process their decode steps merge into shared forward passes (continuous batching):
    /// more rows per weight read, the same results as one at a time.
    #[arg(long, alias = "threads", default_value_t = DEFAULT_CONCURRENCY)]
    pub concurrency: usize,

    /// GGUF model file (default: models/SmolLM2-135M-Instruct.Q4_1.gguf, or
    /// $THINKTREE_MODEL; fetched with scripts/fetch-model.sh when missing).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,

    /// In-memory weight format of the in-process model: int8 (thinktree's 8-bit kernel,
    /// the fastest), f32 (exact arithmetic, 4x the memory), as-stored (candle's kernels on
    /// the GGUF's own quantization), q8_0, q4_0, f16.
    #[arg(long, default_value = "int8", value_parser = parse_weights)]
    pub weights: WeightFormat,

    /// A Jinja chat template (Hugging Face `apply_chat_template` syntax) to render prompts
    /// with instead of the GGUF's own, or instead of the few-shot completion prompt a base
    /// model without a template gets (in process and on --server alike).
    #[arg(long, value_name = "FILE")]
    pub chat_template: Option<PathBuf>,

    /// Memory for the in-process model's KV cache, in MiB (default: the engine's own).
    /// Contexts beyond it are evicted and recomputed on demand: slower, never different
    /// (a result never depends on cache pressure).
    #[arg(long, value_name = "MIB")]
    pub kv_budget_mb: Option<usize>,

    /// Run the model on OpenAI-compatible servers instead of in process: comma-separated
    /// base URLs (vLLM, SGLang, llama.cpp server, llama-cpp-python), e.g.
    /// http://127.0.0.1:8080,http://10.0.0.2:8000. Requests spread over all of them. The
    /// --model GGUF (the one the servers run) still supplies the tokenizer and chat
    /// template; its weights are not loaded.
    #[arg(long, value_name = "URL[,URL...]")]
    pub server: Option<String>,

    /// Name sent as `model` to the servers (vLLM and SGLang want the served model name).
    #[arg(long, value_name = "NAME", requires = "server")]
    pub server_model: Option<String>,

    /// Results file: one JSON line per problem and method. Without --resume an earlier
    /// non-empty file is moved to `<stem>.prev.jsonl`, never overwritten.
    #[arg(long, value_name = "FILE", default_value = "results.jsonl")]
    pub out: PathBuf,

    /// Keep the existing --out file and skip the (problem, method) pairs it already holds.
    #[arg(long)]
    pub resume: bool,

    /// Write each solve's tree into this directory: a self-contained HTML viewer page (open
    /// DIR/index.html), DOT and JSON. MCTS and beam: their trees; greedy, sc, bon: their
    /// chains side by side.
    #[arg(long, value_name = "DIR")]
    pub export_tree: Option<PathBuf>,

    /// No progress bar (for logs and CI).
    #[arg(long, short)]
    pub quiet: bool,
}

/// `gsm8k report FILE.jsonl [FILE...]`: rebuild the table, the paired comparisons and the
/// plot from results files without solving anything (several files merge; a (problem,
/// method) pair found in more than one keeps its last record).
#[derive(Debug, Clone, Parser)]
#[command(name = "gsm8k report", version, about, long_about = None)]
pub struct ReportArgs {
    /// Results files written by `gsm8k --out`.
    #[arg(required = true, value_name = "FILE.jsonl")]
    pub files: Vec<PathBuf>,

    /// Where the reports go: `<out>.summary.md` and `<out>.svg` (default: the first file).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Parses one method name; the error lists the valid names.
pub fn parse_method(s: &str) -> Result<Method, String> {
    s.parse::<Method>().map_err(|e| e.to_string())
}

/// Parses a scorer spec.
pub fn parse_scorer(s: &str) -> Result<ScorerSpec, String> {
    s.parse::<ScorerSpec>().map_err(|e| e.to_string())
}

impl Args {
    /// The same arguments for one budget of a `--budgets` run: that token budget, and
    /// results in `<out stem>.b<budget>.jsonl`.
    pub fn at_budget(&self, budget: usize) -> Args {
        Args {
            max_tokens: Some(budget),
            out: crate::journal::sibling(&self.out, &format!(".b{budget}.jsonl")),
            budgets: Vec::new(),
            ..self.clone()
        }
    }

    /// The methods in the order given, without repeats.
    pub fn unique_methods(&self) -> Vec<Method> {
        let mut out: Vec<Method> = Vec::new();
        for m in &self.methods {
            if !out.contains(m) {
                out.push(*m);
            }
        }
        out
    }
}

fn parse_weights(s: &str) -> Result<WeightFormat, String> {
    s.parse().map_err(|e: thinktree::llm::Error| e.to_string())
}
