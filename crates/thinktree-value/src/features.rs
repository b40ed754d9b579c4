//! Features for the value head: the frozen model's hidden state after a step.
//!
//! Records hold text, not vectors: the features are recomputed from
//! `prompt + context + step_raw` with the engine that will later run the search. Records
//! of one problem share prefixes (a step's context is its parent's context plus the
//! parent's step), so states are kept per problem and each step extends its parent's
//! state: a shared prefix is computed once, exactly as in the search.

use std::collections::HashMap;

use crate::error::Result;
use thinktree_engine::{Engine, Prompt, Usage};

use crate::records::StepRecord;

/// The hidden state after each record's step, in order; `progress` is called after each.
pub fn step_features<E: Engine>(
    engine: &E,
    records: &[&StepRecord],
    mut progress: impl FnMut(usize),
) -> Result<(Vec<Vec<f32>>, Usage)> {
    let mut usage = Usage::default();
    let mut out = Vec::with_capacity(records.len());
    // Keyed by generated text: the states of the current prompt only, so memory stays
    // bounded by one problem's tree.
    let mut prompt: Option<(Prompt, E::State)> = None;
    let mut states: HashMap<String, E::State> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        let root = match &prompt {
            Some((p, s)) if *p == r.prompt => s.clone(),
            _ => {
                let (s, u) = engine.extend_prompt(&engine.root(), &r.prompt)?;
                usage += u;
                states.clear();
                prompt = Some((r.prompt.clone(), s.clone()));
                s
            }
        };
        let before = match states.get(&r.context) {
            Some(s) => s.clone(),
            None if r.context.is_empty() => root,
            None => {
                let (s, u) = engine.extend(&root, &r.context)?;
                usage += u;
                states.insert(r.context.clone(), s.clone());
                s
            }
        };
        let (after, u) = engine.extend(&before, &r.step_raw)?;
        usage += u;
        let (h, u) = engine.hidden_state(&after)?;
        usage += u;
        states.insert(format!("{}{}", r.context, r.step_raw), after);
        out.push(h);
        progress(i + 1);
    }
    Ok((out, usage))
}
