//! Everything that shapes one solve.

use super::aggregate::Aggregation;
use super::extract::Extractor;
use super::method::Method;
use super::scorer::ScorerSpec;
use super::split::StepSplit;
use crate::error::{Error, Result};

/// The settings of [`super::solve`]. [`SolveConfig::new`] gives tuned defaults per method;
/// change fields directly, then [`SolveConfig::validate`] (solve validates again).
#[derive(Debug, Clone)]
pub struct SolveConfig {
    /// The search method.
    pub method: Method,
    /// Chains sampled by self-consistency and best-of-N.
    pub samples: usize,
    /// Paths kept per depth by beam search.
    pub beam_width: usize,
    /// Children sampled per expansion (beam: per kept path; MCTS: per expansion, in one
    /// batched call).
    pub expand: usize,
    /// MCTS simulations (selection → expansion → evaluation → backup).
    pub simulations: usize,
    /// MCTS leaves expanded and evaluated together per iteration (virtual loss keeps them
    /// apart); their step sampling shares forward passes.
    pub leaf_batch: usize,
    /// PUCT exploration constant.
    pub c_puct: f64,
    /// Progressive widening `(k, alpha)`: a node with N visits may have `k·N^alpha`
    /// children. None expands all `expand` children at once.
    pub widening: Option<(f64, f64)>,
    /// Generated tokens allowed per problem, scorer rollouts included (so methods compare
    /// at equal compute); every method stops when it is spent.
    pub token_budget: usize,
    /// Tokens per step at most.
    pub step_tokens: usize,
    /// Steps per path at most.
    pub max_steps: usize,
    /// Where a step ends.
    pub split: StepSplit,
    /// The value function of best-of-N, beam and MCTS.
    pub scorer: ScorerSpec,
    /// How the final answer is picked from finished paths.
    pub aggregation: Aggregation,
    /// Sampling temperature of the policy (greedy ignores it).
    pub temperature: f32,
    /// Nucleus mass (None: off).
    pub top_p: Option<f32>,
    /// Top-k truncation (None: off).
    pub top_k: Option<usize>,
    /// Seed: the same seed, question and config give the same solution.
    pub seed: u64,
    /// Adaptive compute: stop once the leading answer holds this share of the votes (at
    /// least three cast) or can no longer be overtaken. Self-consistency and best-of-N
    /// check after each wave of `batch` chains (so use `batch < samples` with it); MCTS
    /// stops once its most visited first step can no longer be overtaken. None: spend the
    /// whole budget.
    pub early_stop: Option<f64>,
    /// Chains decoded together by self-consistency and best-of-N (one batch row each).
    pub batch: usize,
    /// Self-consistency and best-of-N sample each chain in one call instead of step by
    /// step, so all chains of a wave decode as one batch even on an engine whose
    /// `sample_many` does not batch different prefixes. Costs whatever the model writes
    /// after its answer line (small chat models usually stop right there). Token-chunk
    /// splits always step.
    pub whole_chains: bool,
    /// Rollouts per node of the rollout scorer.
    pub rollouts: usize,
    /// Generated tokens per rollout of the rollout scorer.
    pub rollout_tokens: usize,
    /// System prompt override (None: [`super::DEFAULT_SYSTEM_PROMPT`]).
    pub system_prompt: Option<String>,
    /// Fill [`super::Solution::tree`]: MCTS's and beam's trees; the chains of greedy,
    /// self-consistency and best-of-N side by side under the root.
    pub export_tree: bool,
    /// How final answers are read.
    pub extractor: Extractor,
    /// DeepConf's settings (its two methods only).
    pub deepconf: crate::DeepConf,
    /// Marco-o1's reflection: a chain that reached an answer is continued after
    /// [`crate::REFLECTION`], within the budget, and its new answer counts
    /// ([`crate::Solution::reflections`] keeps both). Greedy, self-consistency, best-of-N
    /// and beam reflect their finished chains; MCTS and Marco offer it as an action (a
    /// finished chain's sibling that rethinks). rStar and DeepConf refuse it
    /// ([`crate::Error::InvalidConfig`]): their votes are valued by how the answer was
    /// sampled (its share of rStar's votes, DeepConf's trace confidence), which a
    /// reflected continuation does not have.
    pub reflect: bool,
    /// rStar's mutual-consistency check of the finished trajectories (None: off).
    pub discriminator: Option<crate::Discriminator>,
    /// rStar's settings (its method only).
    pub rstar: crate::RStar,
}

impl SolveConfig {
    /// The scorer this config's method runs: the configured one, except that voting
    /// methods (which only use scores to annotate candidates and weight votes) fall back
    /// to the free confidence scorer when the configured one would run a model.
    pub fn effective_scorer(&self) -> ScorerSpec {
        let needs_scorer = matches!(
            self.method,
            Method::BestOfN | Method::Beam | Method::Mcts | Method::Marco
        );
        if needs_scorer || !self.scorer.uses_model() {
            self.scorer.clone()
        } else {
            ScorerSpec::Confidence
        }
    }

    /// Defaults tuned for a small chat model on grade-school math, per method.
    pub fn new(method: Method) -> Self {
        let mut cfg = Self {
            method,
            samples: 8,
            beam_width: 3,
            expand: 3,
            simulations: 16,
            leaf_batch: 4,
            c_puct: 1.5,
            widening: None,
            token_budget: 1536,
            step_tokens: 96,
            max_steps: 12,
            split: StepSplit::Newline,
            scorer: ScorerSpec::Weighted(vec![
                (ScorerSpec::Confidence, 0.5),
                (ScorerSpec::Verifier, 0.5),
            ]),
            aggregation: Aggregation::Majority,
            temperature: 0.7,
            top_p: Some(0.95),
            top_k: None,
            seed: 0,
            early_stop: None,
            batch: 8,
            whole_chains: true,
            rollouts: 2,
            rollout_tokens: 192,
            system_prompt: None,
            export_tree: false,
            extractor: Extractor::default(),
            deepconf: crate::DeepConf::default(),
            reflect: false,
            discriminator: None,
            rstar: crate::RStar::default(),
        };
        match method {
            Method::Greedy => {
                cfg.temperature = 0.0;
                cfg.token_budget = 256;
                cfg.aggregation = Aggregation::Best;
            }
            Method::SelfConsistency => cfg.aggregation = Aggregation::Majority,
            Method::BestOfN => cfg.aggregation = Aggregation::Best,
            Method::Beam => cfg.aggregation = Aggregation::Weighted,
            Method::Mcts => {
                cfg.aggregation = Aggregation::Weighted;
                // The token budget is the knob that binds: a finished chain's score is an
                // estimate, so the search goes on until the budget is spent (revisiting a
                // finished chain costs no tokens). With the old 16 simulations the default
                // set's problems spent 454 of 1,536 tokens and 35 of 48 ended with one
                // candidate; with 256, 1,465 tokens and 4-12 candidates (first 16 problems).
                cfg.simulations = 256;
            }
            Method::Marco => {
                // Marco-o1: MCTS whose actions are mini-steps of 64 tokens (its paper tries
                // 32 and 64) valued by its confidence reward.
                cfg.aggregation = Aggregation::Weighted;
                cfg.simulations = 256;
                cfg.split = StepSplit::Tokens(64);
                cfg.max_steps = 24;
                cfg.scorer = ScorerSpec::Marco;
            }
            Method::RStar => {
                cfg.aggregation = Aggregation::Weighted;
                // Rollouts until the budget binds (each expands up to four actions).
                cfg.simulations = 256;
            }
            Method::DeepConf => cfg.aggregation = Aggregation::Weighted,
            Method::DeepConfOnline => {
                cfg.aggregation = Aggregation::Weighted;
                // Chains stopped early leave budget for more: the budget binds, not this.
                cfg.samples = 16;
            }
        }
        cfg
    }

    /// Checks every range; a bad value is an [`Error::InvalidConfig`] naming the field.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("samples", self.samples),
            ("beam_width", self.beam_width),
            ("expand", self.expand),
            ("simulations", self.simulations),
            ("leaf_batch", self.leaf_batch),
            ("token_budget", self.token_budget),
            ("step_tokens", self.step_tokens),
            ("max_steps", self.max_steps),
            ("batch", self.batch),
            ("rollouts", self.rollouts),
            ("rollout_tokens", self.rollout_tokens),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(Error::InvalidConfig(format!("{name} must be >= 1")));
            }
        }
        self.deepconf.validate()?;
        self.rstar.validate()?;
        if self.reflect
            && matches!(
                self.method,
                Method::RStar | Method::DeepConf | Method::DeepConfOnline
            )
        {
            return Err(Error::InvalidConfig(format!(
                "reflect is not defined for {}: its answers are valued by how they were \
                 sampled (rStar's vote share, DeepConf's trace confidence); use it with \
                 greedy, sc, bon, beam, mcts or marco",
                self.method
            )));
        }
        if let Some(d) = &self.discriminator {
            d.validate()?;
        }
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(Error::InvalidConfig(format!(
                "temperature must be finite and >= 0, got {}",
                self.temperature
            )));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(Error::InvalidConfig(format!(
                "top_p must be in (0, 1], got {p}"
            )));
        }
        if self.top_k == Some(0) {
            return Err(Error::InvalidConfig("top_k must be >= 1".into()));
        }
        if !(self.c_puct.is_finite() && self.c_puct >= 0.0) {
            return Err(Error::InvalidConfig(format!(
                "c_puct must be finite and >= 0, got {}",
                self.c_puct
            )));
        }
        if let Some((k, a)) = self.widening
            && !(k.is_finite() && k > 0.0 && a > 0.0 && a <= 1.0)
        {
            return Err(Error::InvalidConfig(format!(
                "widening needs k > 0 and alpha in (0, 1], got ({k}, {a})"
            )));
        }
        if let Some(t) = self.early_stop
            && !(t > 0.0 && t <= 1.0)
        {
            return Err(Error::InvalidConfig(format!(
                "early_stop must be in (0, 1], got {t}"
            )));
        }
        if let Some(s) = &self.system_prompt
            && s.trim().is_empty()
        {
            return Err(Error::EmptyPrompt("system prompt override"));
        }
        self.split.validate()?;
        self.scorer.validate()
    }
}
