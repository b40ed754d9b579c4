//! What answers a problem: the [`Solver`] trait the scheduler is generic over, and the
//! real one, thinktree's reasoning layer over one shared engine.

use std::time::Duration;

use anyhow::Context;
use thinktree::engine::{Engine, Usage};
use thinktree::reason::{Method, Reflection, Scorer, SearchTree, SolveConfig, solve_with_scorer};

use crate::cli::Args;

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
    /// The explored tree (beam, MCTS), when exported.
    pub tree: Option<SearchTree>,
    /// Chains that reflected (`--reflect`): answers before and after.
    pub reflections: Vec<Reflection>,
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
    if let Some(k) = args.deepconf_keep {
        cfg.deepconf.keep = k;
    }
    cfg.reflect = args.reflect;
    if args.mutual_check {
        cfg.discriminator = Some(thinktree::reason::Discriminator::default());
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
            tree: sol.tree,
            reflections: sol.reflections,
        })
    }
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
