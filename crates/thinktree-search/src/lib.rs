//! Generic Monte Carlo Tree Search core for "think before answering": search over steps
//! whose proposals and scores come from expensive, batched, fallible calls (a language model),
//! while staying fast enough for games.
//!
//! # Design
//!
//! * **Arena tree.** Nodes live in one `Vec` addressed by a typed `u32` [`NodeId`]; each node
//!   stores its state, so expanding it never replays actions from the root (for an LLM the
//!   state holds a KV-cache handle). No `unsafe`, no reference counting, stable ids for export.
//! * **Batched policy and evaluator.** Each round selects up to `batch_size` leaves under
//!   *virtual loss* (in-flight paths count as losses so the batch spreads out), then hands all
//!   leaves needing children to [`Policy::propose`] in one call and all leaves needing a value
//!   to [`Evaluator::evaluate`] in one call (one forward pass for many partial solutions),
//!   then backs up and removes every virtual visit.
//! * **Incremental expansion.** An [`ExpandRequest`] says how many children a node already
//!   has and how many more are wanted; with progressive widening (`k·N^α` children) a policy
//!   that *samples* steps is asked again for more children where the search keeps returning.
//!   Games simply return every legal move on the first request.
//! * **Budgets** on simulations, wall time and reported cost (tokens); terminal and solved
//!   nodes are never re-simulated; results list every terminal leaf for answer voting.
//!
//! Values are from the first player's perspective inside [`ValueBounds`] (default `[0, 1]`);
//! two-player games return [`Player::Second`] from [`Problem::to_move`] and get values flipped.
//!
//! # Example
//!
//! Find the largest sum of three digits, using closures for everything:
//!
//! ```
//! use thinktree_search::{ActionsFn, FnEvaluator, Mcts, MctsConfig, from_fn};
//!
//! // State: the digits chosen so far. Terminal after three digits, valued by their sum.
//! let problem = from_fn(
//!     Vec::<u8>::new,
//!     |s: &Vec<u8>, d: &u8| { let mut s = s.clone(); s.push(*d); s },
//!     |s: &Vec<u8>| (s.len() == 3).then(|| s.iter().map(|&d| f64::from(d)).sum::<f64>() / 27.0),
//! );
//! // Every digit is a legal step, with a uniform prior.
//! let policy = ActionsFn(|_: &Vec<u8>| (0..10u8).map(|d| (d, 1.0)).collect::<Vec<_>>());
//! // Value of a partial state: optimistic guess.
//! let evaluator = FnEvaluator(|s: &Vec<u8>| {
//!     (s.iter().map(|&d| f64::from(d)).sum::<f64>() + 9.0 * (3 - s.len()) as f64) / 27.0
//! });
//! let config = MctsConfig::builder().simulations(2_000).batch_size(8).seed(7).build()?;
//! let mut search = Mcts::new(config)?;
//! let result = search.run(&problem, &policy, &evaluator)?;
//! assert_eq!(result.best_path_by_value, vec![9, 9, 9]);
//! assert!(!result.terminals.is_empty());
//! # Ok::<(), thinktree_search::Error>(())
//! ```
#![deny(missing_docs)]

pub mod backprop;
mod budget;
pub mod config;
pub mod error;
mod expand;
pub mod export;
pub mod parallel;
pub mod problem;
pub mod result;
pub mod rng;
mod rollout;
pub mod search;
pub mod select;
pub mod synthetic;
pub mod tree;

pub use backprop::{Backup, BackupRule};
pub use config::{MctsConfig, MctsConfigBuilder, ValueBounds, Widening};
pub use error::{Error, Result};
pub use export::{NodeExport, TreeExport};
pub use parallel::{root_parallel, root_parallel_with_rollout, search_many};
pub use problem::{
    ActionsFn, BatchFnEvaluator, Evaluations, Evaluator, ExpandRequest, FnEvaluator, FnPolicy,
    FnProblem, FnRollout, NoRollout, Player, Policy, Problem, Proposals, RolloutPolicy, from_fn,
};
pub use result::{ChildSummary, SearchResult, SearchStats, StopReason, TerminalLeaf};
pub use rng::{derive_seed, splitmix64};
pub use search::Mcts;
pub use select::{ChildView, ParentView, Selection, SelectionRule};
pub use tree::{Node, NodeId, NodeStats, Tree};
