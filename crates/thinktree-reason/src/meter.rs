//! [`Meter`]: one problem's bill (every token any engine call spent) and its seeds.

use thinktree_engine::Usage;

/// Compute accounting and seeds for one problem.
pub(crate) struct Meter {
    pub usage: Usage,
    pub calls: u64,
    pub budget: u64,
    seed: u64,
    seq: u64,
}

impl Meter {
    pub fn new(budget: usize, seed: u64) -> Self {
        Self {
            usage: Usage::default(),
            calls: 0,
            budget: budget as u64,
            seed,
            seq: 0,
        }
    }

    /// Records one engine call.
    pub fn add(&mut self, u: Usage) {
        self.usage += u;
        self.calls += 1;
    }

    /// Generated tokens still allowed.
    pub fn left(&self) -> usize {
        self.budget.saturating_sub(self.usage.generated_tokens) as usize
    }

    /// Token cap per row when `rows` paths step together, so one batched step can overrun
    /// the budget by little.
    pub fn per_row(&self, rows: usize) -> usize {
        self.left().div_ceil(rows.max(1))
    }

    /// A fresh seed per call: distinct calls must not replay the same random stream.
    pub fn next_seed(&mut self) -> u64 {
        self.seq += 1;
        thinktree_search::derive_seed(self.seed, self.seq)
    }
}
