//! The crate's one error type.

/// Everything that can go wrong while solving a problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A solve setting is out of range or names something unknown.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// A text that must not be empty was empty.
    #[error("empty prompt: {0}")]
    EmptyPrompt(&'static str),
    /// A scorer broke its contract (a wrong number of scores, a value outside [0, 1], a
    /// non-finite reward), or cannot work with this model (its Yes and No tokens are not
    /// distinct).
    #[error("scorer `{scorer}`: {reason}")]
    Scorer {
        /// The scorer's name.
        scorer: String,
        /// What went wrong.
        reason: String,
    },
    /// A scorer from another crate (a learned value head, a judge model) failed;
    /// `source` is that crate's own typed error.
    #[error("scorer `{scorer}`: {source}")]
    ScorerFailed {
        /// The scorer's name.
        scorer: String,
        /// The scorer's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The chat template does not fit the prompt layout the methods need.
    #[error("prompt: {0}")]
    Prompt(String),
    /// A scorer spec names a scorer this crate cannot build: `prm:PATH` and `value:PATH`
    /// load a model or weights, which the `thinktree` facade's `scorers::build` does.
    #[error(
        "scorer `{0}` loads a model or weights: build it with `thinktree::scorers::build` and call `solve_with_scorer`"
    )]
    NeedsLoader(String),
    /// A lock shared by concurrent searches was poisoned by a panic elsewhere.
    #[error("poisoned lock: {0}")]
    Poisoned(&'static str),
    /// Serialising a tree record failed.
    #[error("tree export: {0}")]
    Json(#[from] serde_json::Error),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] thinktree_engine::Error),
    /// The search core failed (invalid search config, or a budget of 0).
    #[error("search: {0}")]
    Search(thinktree_search::Error),
}

impl From<thinktree_search::Error> for Error {
    /// An engine or scorer error raised inside the search core travels through it as
    /// an external error holding this enum; it comes back out as itself, not wrapped.
    fn from(e: thinktree_search::Error) -> Self {
        if let thinktree_search::Error::External(inner) = &e
            && let Some(own) = inner.downcast_ref::<Shared>()
            && let Some(taken) = own.take()
        {
            return taken;
        }
        Error::Search(e)
    }
}

/// An [`Error`] handed through the search core, which carries a callback's error behind a
/// shared pointer: the typed error rides inside and the first reader takes it back out
/// (no message flattened into a string on a side channel).
#[derive(Debug)]
pub(crate) struct Shared {
    message: String,
    error: std::sync::Mutex<Option<Error>>,
}

impl Shared {
    /// `e` as a search-core error.
    pub(crate) fn wrap(e: Error) -> thinktree_search::Error {
        thinktree_search::Error::external(Shared {
            message: e.to_string(),
            error: std::sync::Mutex::new(Some(e)),
        })
    }

    fn take(&self) -> Option<Error> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Shared {}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
