//! Selection rules: how a node picks which child to descend into.
//!
//! Rules see values normalised to `[0, 1]` from the perspective of the player choosing, so
//! the same exploration constant works whatever the problem's value bounds are.

use std::fmt;
use std::sync::Arc;

/// What a selection rule may know about the parent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParentView {
    /// Completed visits plus in-flight (virtual) visits.
    pub visits: f64,
    /// The parent's own normalised value (its chooser's perspective), used as first-play
    /// urgency by default.
    pub value: f64,
    /// Simulations completed by the whole search so far; drives decaying exploration.
    pub simulations: u64,
}

/// What a selection rule may know about one child.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChildView {
    /// Completed visits plus in-flight (virtual) visits; 0 for a child never tried.
    pub visits: f64,
    /// Normalised value in `[0, 1]` for the player choosing, virtual losses included; the
    /// first-play-urgency value when the child has no visits.
    pub value: f64,
    /// Prior from the policy, normalised over the siblings (uniform if all were 0).
    pub prior: f64,
}

/// A custom selection rule; the child with the highest score is taken (first on ties,
/// after a seeded rotation of the children).
pub trait SelectionRule: Send + Sync + fmt::Debug {
    /// Score of descending into `child` from `parent`.
    fn score(&self, parent: &ParentView, child: &ChildView) -> f64;
}

/// The built-in selection rules, plus an escape hatch for custom ones.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Selection {
    /// UCB1 applied to trees: `q + c·sqrt(ln N / n)`; untried children first.
    Uct {
        /// Exploration constant, `>= 0` (√2 is the textbook value for `[0, 1]` rewards).
        c: f64,
    },
    /// AlphaZero's PUCT: `q + c·p·sqrt(max(N, 1)) / (1 + n)`; the prior steers which
    /// children are tried, which is what an LLM policy's step probabilities are for (from
    /// the parent's first visit on: `N` counts as 1 before it).
    Puct {
        /// Exploration constant, `>= 0`.
        c: f64,
    },
    /// UCT whose exploration constant decays geometrically with the simulations completed:
    /// `c_t = c·decay^t`, exploring early and exploiting late.
    DecayingUct {
        /// Initial exploration constant, `>= 0`.
        c: f64,
        /// Per-simulation decay factor in `(0, 1]`.
        decay: f64,
    },
    /// A user-supplied rule.
    Custom(Arc<dyn SelectionRule>),
}

impl Default for Selection {
    fn default() -> Self {
        Selection::Uct {
            c: std::f64::consts::SQRT_2,
        }
    }
}

impl SelectionRule for Selection {
    fn score(&self, parent: &ParentView, child: &ChildView) -> f64 {
        match self {
            Selection::Uct { c } => uct(*c, parent.visits.max(1.0).ln(), child),
            Selection::DecayingUct { c, decay } => {
                let c_t = c * decay.powf(parent.simulations as f64);
                uct(c_t, parent.visits.max(1.0).ln(), child)
            }
            Selection::Puct { c } => puct(c * puct_sqrt_n(parent.visits), child),
            Selection::Custom(rule) => rule.score(parent, child),
        }
    }
}

/// Computes the parent-level part of a built-in rule once per node instead of once per child.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Prepared {
    /// UCT with `c` and `ln N` already computed.
    Uct { c: f64, ln_n: f64 },
    /// PUCT with `c·sqrt(N)` already computed.
    Puct { c_sqrt_n: f64 },
}

impl Selection {
    /// Hoists the per-parent terms out of the child loop; `None` for custom rules.
    #[inline]
    pub(crate) fn prepare(&self, parent: &ParentView) -> Option<Prepared> {
        match self {
            Selection::Uct { c } => Some(Prepared::Uct {
                c: *c,
                ln_n: parent.visits.max(1.0).ln(),
            }),
            Selection::DecayingUct { c, decay } => Some(Prepared::Uct {
                c: c * decay.powf(parent.simulations as f64),
                ln_n: parent.visits.max(1.0).ln(),
            }),
            Selection::Puct { c } => Some(Prepared::Puct {
                c_sqrt_n: c * puct_sqrt_n(parent.visits),
            }),
            Selection::Custom(_) => None,
        }
    }
}

impl Prepared {
    #[inline]
    pub(crate) fn score(self, child: &ChildView) -> f64 {
        match self {
            Prepared::Uct { c, ln_n } => uct(c, ln_n, child),
            Prepared::Puct { c_sqrt_n } => puct(c_sqrt_n, child),
        }
    }
}

/// Score of an untried child under UCT: above any finite score yet still ordered by prior.
const UNTRIED: f64 = 1e100;

#[inline]
fn uct(c: f64, ln_n: f64, child: &ChildView) -> f64 {
    if child.visits <= 0.0 {
        // Untried children come first; among them the larger prior wins.
        UNTRIED * (1.0 + child.prior)
    } else {
        child.value + c * (ln_n / child.visits).sqrt()
    }
}

/// `sqrt(N)` of PUCT's exploration term, with `N` at least 1: at a parent nobody has
/// visited yet `sqrt(0)` would zero the term and make the first pick a tie-break that
/// ignores the priors; from one visit on it is the textbook `sqrt(N)`.
#[inline]
fn puct_sqrt_n(visits: f64) -> f64 {
    visits.max(1.0).sqrt()
}

#[inline]
fn puct(c_sqrt_n: f64, child: &ChildView) -> f64 {
    child.value + c_sqrt_n * child.prior / (1.0 + child.visits)
}
