//! Self-consistency and best-of-N: N independent chains, decoded in batches.

use crate::aggregate::{tally, vote_decided};
use crate::error::Result;
use crate::stepper::rollout;
use thinktree_engine::Engine;

use crate::node::Node;
use crate::split::StepSplit;

use super::{Outcome, Solve, chains_root, finished, push_chain};

/// `wave` complete chains from the root in one batched `sample` call.
fn whole_chains<E: Engine>(
    run: &mut Solve<'_, E>,
    wave: usize,
    seed: u64,
) -> Result<Vec<Node<E::State>>> {
    let params = run.chain_params(wave, run.cfg.max_steps, run.cfg.temperature, seed);
    let (conts, usage) = run.engine.sample(&run.root.state, wave, &params)?;
    run.meter.add(usage);
    Ok(conts
        .into_iter()
        .map(|c| run.stepper.whole_chain(&run.root, c))
        .collect())
}

/// Samples `cfg.samples` chains, `cfg.batch` at a time. With `whole_chains` a wave is one
/// `sample(root, wave)` call; otherwise its first step is, and then all chains of the
/// wave step together (the prompt is shared, never re-read either way). Every finished chain is scored as a whole; with adaptive compute
/// the vote is checked after each wave.
pub(crate) fn run<E: Engine>(run: &mut Solve<'_, E>) -> Result<Outcome> {
    let cfg = run.cfg;
    let mut out = Outcome::default();
    let mut remaining = cfg.samples;
    let mut tree = cfg.export_tree.then(chains_root);
    while remaining > 0 && run.meter.left() > 0 {
        let wave = remaining.min(cfg.batch);
        let seed = run.meter.next_seed();
        let done = if cfg.whole_chains && !matches!(cfg.split, StepSplit::Tokens(_)) {
            whole_chains(run, wave, seed)?
        } else {
            let params = run
                .stepper
                .params(cfg.temperature, run.meter.per_row(wave), seed);
            let (mut first, usage) =
                run.stepper
                    .sample_children(run.engine, &[&run.root], &[wave], &params)?;
            run.meter.add(usage);
            let starts = first.pop().unwrap_or_default();
            rollout(
                run.engine,
                &run.stepper,
                &mut run.meter,
                starts,
                cfg.temperature,
            )?
        };
        remaining -= wave;
        let done = super::reflect::reflect(run, done, &mut out.reflections)?;
        let refs: Vec<_> = done.iter().collect();
        let scores = run.score(&refs, true)?;
        out.finished
            .extend(done.iter().zip(&scores).map(|(n, &s)| finished(n, s, s)));
        if let Some(tree) = &mut tree {
            for (n, &s) in done.iter().zip(&scores) {
                push_chain(tree, n, s);
            }
        }
        if cfg.early_stop.is_some()
            && remaining > 0
            && vote_decided(&tally(&out.finished), remaining, cfg.early_stop)
        {
            out.early_stopped = true;
            break;
        }
    }
    out.tree = tree;
    Ok(out)
}
