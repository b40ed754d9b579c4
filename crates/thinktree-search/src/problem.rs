//! The traits a user implements to search: the problem, the policy, the evaluator and an
//! optional rollout policy, plus closure adapters for the simple cases.
//!
//! Every callback is batched or per-state and returns [`Result`], because for a language model
//! each call is a forward pass that can fail and whose cost must be metered.

use crate::error::Result;
use crate::tree::NodeId;
use rand::RngCore;
use std::fmt;
use std::marker::PhantomData;

/// Who is to move in a state. Single-agent problems (puzzles, LLM reasoning) only ever use
/// [`Player::First`]; two-player zero-sum games alternate so the search can flip values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum Player {
    /// The player to move at the root of a single-agent search, and the first player of a game.
    #[default]
    First,
    /// The opponent in a two-player zero-sum game.
    Second,
}

impl Player {
    /// The other player; lets games write `state.to_move.opponent()`.
    #[must_use]
    pub fn opponent(self) -> Player {
        match self {
            Player::First => Player::Second,
            Player::Second => Player::First,
        }
    }
}

/// A search problem: states, how actions change them, and when they end.
///
/// **Value convention.** Every value the search receives (terminal values, evaluator values,
/// rollout results) is from the perspective of [`Player::First`] and must lie inside the
/// configured [`ValueBounds`](crate::ValueBounds) (default `[0, 1]`, higher is better for
/// the first player). For a two-player game the search turns a value `v` into
/// `min + max - v` for the second player, so both players maximise.
pub trait Problem {
    /// A node's state. It is stored in the tree so expansion never replays from the root; for
    /// an LLM it holds a KV-cache handle and the step texts.
    type State: Clone;
    /// An edge of the tree: a move, or a reasoning step.
    type Action: Clone;

    /// The state at the root of the search.
    fn initial_state(&self) -> Result<Self::State>;

    /// The state reached by taking `action` in `state`. May be expensive and may fail.
    fn apply(&self, state: &Self::State, action: &Self::Action) -> Result<Self::State>;

    /// `Some(value)` when `state` ends the problem, with its value (first player's
    /// perspective). Terminal nodes are never expanded nor evaluated; their value is reused
    /// on every visit.
    fn terminal_value(&self, state: &Self::State) -> Option<f64>;

    /// Whether the value of terminal `state` is its known outcome (a game result, a
    /// checked proof) rather than an estimate (a scorer's opinion of a finished chain of
    /// reasoning). Only exact terminals prove values: a node whose children are all proven
    /// is solved and never simulated again, and a solved root ends the search
    /// ([`crate::StopReason::Solved`]). An estimated terminal proves nothing, so the search
    /// goes on spending its budget on the other lines. The default suits games.
    fn terminal_is_exact(&self, _state: &Self::State) -> bool {
        true
    }

    /// Who moves in `state`. The default suits every single-agent problem.
    fn to_move(&self, _state: &Self::State) -> Player {
        Player::First
    }
}

/// One node the policy is asked to propose children for.
///
/// The request says how many children the node already has so an open-ended policy (an LLM
/// sampling steps) can be asked again for *more* children when progressive widening allows
/// it, instead of having to enumerate everything up front.
#[derive(Debug)]
pub struct ExpandRequest<'a, S> {
    /// The node being expanded (stable across the whole search).
    pub node: NodeId,
    /// Its state.
    pub state: &'a S,
    /// Distance from the root (the root has depth 0).
    pub depth: u32,
    /// Children the node already has (0 on the first expansion).
    pub existing_children: usize,
    /// How many new children the search would like. A hint: a game that enumerates its legal
    /// moves may return all of them at once and nothing on later requests.
    pub wanted: usize,
}

/// The policy's answer for a batch: for each request, new `(action, prior)` pairs.
///
/// Priors need not sum to one; the search normalises them per node when it uses them.
/// Returning no actions for a node that already has children means "exhausted": it will not
/// be asked again.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposals<A> {
    /// One list per request, in request order.
    pub actions: Vec<Vec<(A, f32)>>,
    /// Cost of producing them (e.g. tokens generated), charged to the cost budget.
    pub cost: u64,
}

impl<A> From<Vec<Vec<(A, f32)>>> for Proposals<A> {
    /// Free proposals, for policies with no measurable cost (games).
    fn from(actions: Vec<Vec<(A, f32)>>) -> Self {
        Proposals { actions, cost: 0 }
    }
}

/// Proposes children with priors for a batch of leaves at once.
///
/// No `Sync` is required for a single search (an engine may keep its KV cache in a
/// `RefCell`); the rayon helpers in [`parallel`](crate::parallel) ask for it.
pub trait Policy<S, A> {
    /// Proposes new children for every request; the result must have one list per request.
    fn propose(&self, batch: &[ExpandRequest<'_, S>]) -> Result<Proposals<A>>;
}

/// The evaluator's answer for a batch of states.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluations {
    /// One value per state, first player's perspective, inside the configured bounds.
    pub values: Vec<f64>,
    /// Cost of producing them (e.g. tokens scored), charged to the cost budget.
    pub cost: u64,
}

impl From<Vec<f64>> for Evaluations {
    /// Free evaluations, for evaluators with no measurable cost.
    fn from(values: Vec<f64>) -> Self {
        Evaluations { values, cost: 0 }
    }
}

/// Estimates the value of non-terminal leaves, a batch at a time (one forward pass of a
/// process-reward model over many partial solutions).
pub trait Evaluator<S> {
    /// One value per state (first player's perspective, inside the configured bounds).
    fn evaluate(&self, states: &[&S]) -> Result<Evaluations>;
}

/// Picks actions during a rollout from a leaf down to a terminal state (or the depth limit).
///
/// The random generator is the search's own seeded one, so rollouts keep runs reproducible.
pub trait RolloutPolicy<S, A> {
    /// The next action from `state`, or `None` to stop the rollout here (the evaluator then
    /// scores `state`). The returned cost is charged to the cost budget.
    fn pick(&self, state: &S, rng: &mut dyn RngCore) -> Result<(Option<A>, u64)>;

    /// Whether this policy performs rollouts at all. When it does not, a leaf that is
    /// reached again (at the depth limit) reuses its first evaluation instead of asking the
    /// evaluator twice about the same state.
    fn enabled(&self) -> bool {
        true
    }
}

/// The rollout policy of a search without rollouts: leaves go straight to the evaluator.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRollout;

impl<S, A> RolloutPolicy<S, A> for NoRollout {
    fn pick(&self, _state: &S, _rng: &mut dyn RngCore) -> Result<(Option<A>, u64)> {
        Ok((None, 0))
    }

    fn enabled(&self) -> bool {
        false
    }
}

/// A [`Policy`] made from a closure over the whole batch.
///
/// The closure may return `Vec<Vec<(A, f32)>>` (free) or [`Proposals`] (with a cost).
pub struct FnPolicy<F>(pub F);

impl<F> fmt::Debug for FnPolicy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnPolicy(..)")
    }
}

impl<S, A, F, R> Policy<S, A> for FnPolicy<F>
where
    F: Fn(&[ExpandRequest<'_, S>]) -> Result<R>,
    R: Into<Proposals<A>>,
{
    fn propose(&self, batch: &[ExpandRequest<'_, S>]) -> Result<Proposals<A>> {
        (self.0)(batch).map(Into::into)
    }
}

/// A [`Policy`] made from a per-state closure returning every `(action, prior)` at once, the
/// shape of a game's legal-move generator. Each node is asked only once.
pub struct ActionsFn<F>(pub F);

impl<F> fmt::Debug for ActionsFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ActionsFn(..)")
    }
}

impl<S, A, F> Policy<S, A> for ActionsFn<F>
where
    F: Fn(&S) -> Vec<(A, f32)>,
{
    fn propose(&self, batch: &[ExpandRequest<'_, S>]) -> Result<Proposals<A>> {
        Ok(Proposals {
            actions: batch
                .iter()
                .map(|r| {
                    if r.existing_children == 0 {
                        (self.0)(r.state)
                    } else {
                        Vec::new()
                    }
                })
                .collect(),
            cost: 0,
        })
    }
}

/// An [`Evaluator`] made from a per-state closure (no cost).
pub struct FnEvaluator<F>(pub F);

impl<F> fmt::Debug for FnEvaluator<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnEvaluator(..)")
    }
}

impl<S, F> Evaluator<S> for FnEvaluator<F>
where
    F: Fn(&S) -> f64,
{
    fn evaluate(&self, states: &[&S]) -> Result<Evaluations> {
        Ok(states
            .iter()
            .map(|s| (self.0)(s))
            .collect::<Vec<_>>()
            .into())
    }
}

/// An [`Evaluator`] made from a closure over the whole batch, for batched scorers.
pub struct BatchFnEvaluator<F>(pub F);

impl<F> fmt::Debug for BatchFnEvaluator<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BatchFnEvaluator(..)")
    }
}

impl<S, F, R> Evaluator<S> for BatchFnEvaluator<F>
where
    F: Fn(&[&S]) -> Result<R>,
    R: Into<Evaluations>,
{
    fn evaluate(&self, states: &[&S]) -> Result<Evaluations> {
        (self.0)(states).map(Into::into)
    }
}

/// A [`RolloutPolicy`] made from a closure that picks the next action (no cost).
pub struct FnRollout<F>(pub F);

impl<F> fmt::Debug for FnRollout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnRollout(..)")
    }
}

impl<S, A, F> RolloutPolicy<S, A> for FnRollout<F>
where
    F: Fn(&S, &mut dyn RngCore) -> Option<A>,
{
    fn pick(&self, state: &S, rng: &mut dyn RngCore) -> Result<(Option<A>, u64)> {
        Ok(((self.0)(state, rng), 0))
    }
}

/// A [`Problem`] assembled from three closures, for problems too small to deserve a type.
pub struct FnProblem<S, A, Init, Apply, Term> {
    init: Init,
    apply: Apply,
    terminal: Term,
    _types: PhantomData<fn() -> (S, A)>,
}

impl<S, A, Init, Apply, Term> fmt::Debug for FnProblem<S, A, Init, Apply, Term> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnProblem(..)")
    }
}

/// Builds a single-agent [`Problem`] from closures: the initial state, the transition and the
/// terminal test.
pub fn from_fn<S, A, Init, Apply, Term>(
    init: Init,
    apply: Apply,
    terminal: Term,
) -> FnProblem<S, A, Init, Apply, Term>
where
    Init: Fn() -> S,
    Apply: Fn(&S, &A) -> S,
    Term: Fn(&S) -> Option<f64>,
{
    FnProblem {
        init,
        apply,
        terminal,
        _types: PhantomData,
    }
}

impl<S, A, Init, Apply, Term> Problem for FnProblem<S, A, Init, Apply, Term>
where
    S: Clone,
    A: Clone,
    Init: Fn() -> S,
    Apply: Fn(&S, &A) -> S,
    Term: Fn(&S) -> Option<f64>,
{
    type State = S;
    type Action = A;

    fn initial_state(&self) -> Result<S> {
        Ok((self.init)())
    }

    fn apply(&self, state: &S, action: &A) -> Result<S> {
        Ok((self.apply)(state, action))
    }

    fn terminal_value(&self, state: &S) -> Option<f64> {
        (self.terminal)(state)
    }
}
