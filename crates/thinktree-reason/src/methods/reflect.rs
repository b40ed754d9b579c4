//! Marco-o1's reflection: a finished chain is told it may be wrong and continues.
//!
//! With [`crate::SolveConfig::reflect`], every chain of greedy, self-consistency,
//! best-of-N and beam search that reached an answer gets [`REFLECTION`] appended (billed as prompt
//! tokens) and is stepped on to a new end within the same budget; the new answer replaces
//! the old one, and both are kept in [`crate::Solution::reflections`] so a harness that
//! knows the gold answer afterwards can count the chains reflection fixed and broke.
//! MCTS and Marco use `reflected` as an action inside the tree instead.

use serde::{Deserialize, Serialize};
use thinktree_engine::{Engine, Usage};

use crate::error::Result;
use crate::node::Node;
use crate::stepper::rollout;

use super::Solve;

/// The text Marco-o1 appends to a finished chain.
pub const REFLECTION: &str = "Wait! Maybe I made some mistakes! I need to rethink from scratch.\n";

/// One reflected chain: its answer before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reflection {
    /// The answer the chain had reached.
    pub before: Option<String>,
    /// The answer after reflecting (None if the continuation stated none).
    pub after: Option<String>,
}

/// `chain` (a path that stated an answer) with [`REFLECTION`] appended: an open path
/// that remembers the answer it had, ready to be stepped on. Costs the reflection's
/// prompt tokens.
pub(crate) fn reflected<E: Engine>(
    engine: &E,
    chain: &Node<E::State>,
) -> Result<(Node<E::State>, Usage)> {
    // On a line of its own: a token chunk or an EOS can end mid-line.
    let text = if chain.raw.is_empty() || chain.raw.ends_with('\n') {
        REFLECTION.to_string()
    } else {
        format!("\n{REFLECTION}")
    };
    let (state, usage) = engine.extend(&chain.state, &text)?;
    let mut node = chain.clone();
    node.parent_state = Some(chain.state.clone());
    node.state = state;
    node.raw.push_str(&text);
    node.steps.push(REFLECTION.trim().to_string());
    node.step_logprobs.clear();
    node.step_relative.clear();
    node.terminal = false;
    node.reflected = Some(chain.answer.clone());
    node.answer = None;
    Ok((node, usage))
}

/// Reflects every chain with an answer (when the config asks and budget is left) and
/// returns the chains, reflected ones replaced, in order.
pub(crate) fn reflect<E: Engine>(
    run: &mut Solve<'_, E>,
    chains: Vec<Node<E::State>>,
    out: &mut Vec<Reflection>,
) -> Result<Vec<Node<E::State>>> {
    if !run.cfg.reflect {
        return Ok(chains);
    }
    let mut result = Vec::with_capacity(chains.len());
    let mut open = Vec::new();
    let mut before = Vec::new();
    for chain in chains {
        if chain.answer.is_none() || chain.reflected.is_some() || run.meter.left() == 0 {
            result.push(Some(chain));
            continue;
        }
        let (node, usage) = reflected(run.engine, &chain)?;
        run.meter.add(usage);
        before.push((result.len(), chain.answer.clone()));
        result.push(None);
        open.push(node);
    }
    if !open.is_empty() {
        let temperature = run.cfg.temperature;
        let done = rollout(run.engine, &run.stepper, &mut run.meter, open, temperature)?;
        for ((slot, was), node) in before.into_iter().zip(done) {
            out.push(Reflection {
                before: was,
                after: node.answer.clone(),
            });
            result[slot] = Some(node);
        }
    }
    Ok(result.into_iter().flatten().collect())
}
