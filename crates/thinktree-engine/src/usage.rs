//! [`Usage`]: the compute an engine call spent, the unit methods are compared in.

use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

/// Compute spent by one or more engine calls: the unit two methods are compared in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens the model actually computed (prefill not served from a cache).
    pub prompt_tokens: u64,
    /// Tokens sampled (summed over all continuations).
    pub generated_tokens: u64,
    /// Token positions the model computed in total: prefill plus one per batch row per
    /// decode step. This is the honest cost of a call.
    pub computed_tokens: u64,
    /// Forward passes of the model.
    pub forward_calls: u64,
}

impl AddAssign for Usage {
    fn add_assign(&mut self, o: Self) {
        self.prompt_tokens += o.prompt_tokens;
        self.generated_tokens += o.generated_tokens;
        self.computed_tokens += o.computed_tokens;
        self.forward_calls += o.forward_calls;
    }
}

impl Add for Usage {
    type Output = Usage;
    fn add(mut self, o: Self) -> Self {
        self += o;
        self
    }
}
