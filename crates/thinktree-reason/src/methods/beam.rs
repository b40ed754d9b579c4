//! Step-level beam search guided by the scorer.

use crate::error::Result;
use crate::node::{Node, merge_siblings};
use thinktree_engine::Engine;

use super::{Outcome, Solve, finished};
use crate::tree::{SearchTree, TreeNode};

struct Beam<S> {
    node: Node<S>,
    /// Sum of the step scores on the path (the path's value is their mean).
    score_sum: f64,
    trace_id: usize,
}

impl<S> Beam<S> {
    fn value(&self) -> f64 {
        if self.node.depth == 0 {
            0.0
        } else {
            self.score_sum / self.node.depth as f64
        }
    }
}

/// Keeps `beam_width` paths; each depth samples `expand` next steps for every kept path in
/// one batched call, merges identical siblings, scores all new steps in one scorer call,
/// and keeps the best by mean step score. Finished paths leave the beam; the search ends
/// when `beam_width` paths have finished, at `max_steps`, or when the budget is spent.
/// With [`crate::SolveConfig::reflect`] the finished paths then reflect within what is
/// left of the budget and keep their path value.
pub(crate) fn run<E: Engine>(run: &mut Solve<'_, E>) -> Result<Outcome> {
    let cfg = run.cfg;
    let mut trace = SearchTree::default();
    let root_id = push(&mut trace, &run.root, None, None, 1.0);
    let mut beams = vec![Beam {
        node: run.root.clone(),
        score_sum: 0.0,
        trace_id: root_id,
    }];
    let mut out = Outcome::default();
    let mut done: Vec<Beam<E::State>> = Vec::new();
    while !beams.is_empty() && done.len() < cfg.beam_width && run.meter.left() > 0 {
        let rows = beams.len() * cfg.expand;
        let seed = run.meter.next_seed();
        let params = run
            .stepper
            .params(cfg.temperature, run.meter.per_row(rows), seed);
        let parents: Vec<&Node<E::State>> = beams.iter().map(|b| &b.node).collect();
        let ks = vec![cfg.expand; parents.len()];
        let (children, usage) = run
            .stepper
            .sample_children(run.engine, &parents, &ks, &params)?;
        run.meter.add(usage);
        let mut fresh: Vec<(usize, Node<E::State>, f64)> = Vec::new();
        for (b, kids) in children.into_iter().enumerate() {
            for (node, prior) in merge_siblings(kids).children {
                fresh.push((b, node, prior));
            }
        }
        let refs: Vec<&Node<E::State>> = fresh.iter().map(|(_, n, _)| n).collect();
        let scores = run.score(&refs, false)?;
        let mut next: Vec<Beam<E::State>> = Vec::new();
        for ((b, mut node, prior), s) in fresh.into_iter().zip(scores) {
            if run.meter.left() == 0 && !node.terminal {
                run.stepper.finish(&mut node);
            }
            let parent = &beams[b];
            let trace_id = push(&mut trace, &node, Some(parent.trace_id), Some(s), prior);
            let beam = Beam {
                node,
                score_sum: parent.score_sum + s,
                trace_id,
            };
            if beam.node.terminal {
                done.push(beam)
            } else {
                next.push(beam)
            }
        }
        next.sort_by(|a, b| b.value().total_cmp(&a.value()));
        next.truncate(cfg.beam_width.saturating_sub(done.len()));
        beams = next;
    }
    // Paths cut off by the budget or depth still get a lenient answer and a vote.
    for mut b in beams {
        run.stepper.finish(&mut b.node);
        done.push(b);
    }
    // Reflection (Marco-o1), when asked: the finished beams rethink within what is left.
    if cfg.reflect {
        let nodes = done.iter().map(|b| b.node.clone()).collect();
        let nodes = super::reflect::reflect(run, nodes, &mut out.reflections)?;
        for (b, node) in done.iter_mut().zip(nodes) {
            if node.reflected.is_some() && b.node.reflected.is_none() {
                b.trace_id = push(&mut trace, &node, Some(b.trace_id), None, 1.0);
            }
            b.node = node;
        }
    }
    out.finished = done
        .iter()
        .map(|b| finished(&b.node, b.value(), b.value()))
        .collect();
    if cfg.export_tree {
        out.tree = Some(trace);
    }
    Ok(out)
}

/// Adds `node` to the tree record and returns its id.
fn push<S>(
    tree: &mut SearchTree,
    node: &Node<S>,
    parent: Option<usize>,
    score: Option<f64>,
    prior: f64,
) -> usize {
    let id = tree.nodes.len();
    tree.nodes.push(TreeNode {
        id,
        parent,
        depth: node.depth,
        steps: node.steps.clone(),
        raw: node.raw.clone(),
        terminal: node.terminal,
        answer: node.answer.clone(),
        visits: 0,
        mean: None,
        prior: prior as f32,
        value: score,
        tokens: node.step_logprobs.len(),
    });
    id
}
