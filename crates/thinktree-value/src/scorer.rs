//! The learned value head as a [`Scorer`] for beam search and MCTS.

use std::path::Path;

use crate::error::Result;
use thinktree_engine::{Engine, Usage};
use thinktree_reason::scorer::{ScoreItem, Scorer};

use crate::head::ValueHead;

/// Scores a partial solution with a trained [`ValueHead`] on the engine's hidden state at
/// the end of the node's context. Costs one token of compute per item (the last token is
/// run again to read its hidden state) and no generated tokens.
#[derive(Debug, Clone)]
pub struct ValueScorer {
    head: ValueHead,
    name: String,
}

impl ValueScorer {
    /// A scorer around a head.
    pub fn new(head: ValueHead, name: impl Into<String>) -> Self {
        Self {
            head,
            name: name.into(),
        }
    }

    /// Loads a head saved by [`ValueHead::save`].
    pub fn load(path: &Path) -> Result<Self> {
        Ok(Self::new(
            ValueHead::load(path)?,
            format!("value:{}", path.display()),
        ))
    }

    /// The head.
    pub fn head(&self) -> &ValueHead {
        &self.head
    }
}

impl<E: Engine> Scorer<E> for ValueScorer {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn score(
        &self,
        engine: &E,
        items: &[ScoreItem<'_, E::State>],
        _seed: u64,
    ) -> thinktree_reason::Result<(Vec<f64>, Usage)> {
        let mut usage = Usage::default();
        let mut features = Vec::with_capacity(items.len());
        for item in items {
            let (h, u) = engine.hidden_state(item.state)?;
            usage += u;
            features.push(h);
        }
        let values = self
            .head
            .predict(&features)
            .map_err(thinktree_reason::Error::from)?;
        Ok((values.into_iter().map(f64::from).collect(), usage))
    }
}
