//! Greedy chain of thought: the baseline every other method must beat per token.

use crate::error::Result;
use crate::stepper::rollout;
use thinktree_engine::Engine;

use super::{Outcome, Solve, chains_root, finished, push_chain};

/// One greedy path, stepped to its end.
pub(crate) fn run<E: Engine>(run: &mut Solve<'_, E>) -> Result<Outcome> {
    let nodes = rollout(
        run.engine,
        &run.stepper,
        &mut run.meter,
        vec![run.root.clone()],
        0.0,
    )?;
    let mut reflections = Vec::new();
    let nodes = super::reflect::reflect(run, nodes, &mut reflections)?;
    let refs: Vec<_> = nodes.iter().collect();
    let scores = run.score(&refs, true)?;
    let tree = run.cfg.export_tree.then(|| {
        let mut tree = chains_root();
        for (n, &s) in nodes.iter().zip(&scores) {
            push_chain(&mut tree, n, s);
        }
        tree
    });
    let finished = nodes
        .iter()
        .zip(scores)
        .map(|(n, s)| finished(n, s, s))
        .collect();
    Ok(Outcome {
        finished,
        tree,
        reflections,
        ..Outcome::default()
    })
}
