//! Where the model file is: model discovery and the fetch script belong to the binaries,
//! not to the libraries (a library takes a path).
//!
//! The default model is not committed (it is fetched by `scripts/fetch-model.sh`), so the
//! most common failure on a fresh checkout is "no model". Every entry point resolves the
//! path the same way and reports a missing or broken file as a typed error naming the fix,
//! instead of a bare I/O error from deep inside the loader.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why no usable model file was found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelPathError {
    /// The model file does not exist where it was looked for.
    #[error(
        "model file not found: {path}\n  fix: run `bash scripts/fetch-model.sh` (downloads SmolLM2-135M-Instruct Q4_1 into models/), or pass --model PATH, or set THINKTREE_MODEL"
    )]
    ModelNotFound {
        /// The path that was tried.
        path: PathBuf,
    },
    /// The file exists but is not a GGUF.
    #[error(transparent)]
    Gguf(thinktree_gguf::Error),
    /// Running the fetch script failed.
    #[error("{path}: {source}")]
    Io {
        /// The script.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

type Result<T, E = ModelPathError> = std::result::Result<T, E>;
use ModelPathError as Error;

/// File name of the default model (SmolLM2-135M-Instruct, Q4_1) inside `models/`.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Environment variable that names the model file when no `--model` is given.
pub const MODEL_ENV: &str = "THINKTREE_MODEL";

/// Finds the model file.
///
/// Order: `cli` (a `--model` argument), then `$THINKTREE_MODEL`, then
/// `models/DEFAULT_MODEL_FILE` in the current directory or any ancestor (so binaries work
/// from any subdirectory of a checkout), then the workspace's own `models/` (so tests work
/// whatever their working directory). An explicitly named file that is missing is
/// [`ModelPathError::ModelNotFound`] for that path, not a silent fallback to the default. A file
/// that is not GGUF is [`ModelPathError::Gguf`].
pub fn resolve_model_path(cli: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = cli {
        return checked(p);
    }
    if let Some(p) = std::env::var_os(MODEL_ENV).filter(|v| !v.is_empty()) {
        return checked(Path::new(&p));
    }
    let found = default_candidates().into_iter().find(|p| p.is_file());
    match found {
        Some(p) => checked(&p),
        None => Err(Error::ModelNotFound {
            path: workspace_default_model(),
        }),
    }
}

/// Like [`resolve_model_path`] with no `--model`, but when the default model is missing
/// and `scripts/fetch-model.sh` is found in the current directory or an ancestor (or in
/// this workspace), runs it once and resolves again, so a fresh machine needs no manual
/// step. `$THINKTREE_MODEL` still wins and is never downloaded. The script's output goes
/// to the terminal; a failing script is reported as [`ModelPathError::ModelNotFound`] with the
/// path it should have produced.
pub fn ensure_default_model() -> Result<PathBuf> {
    match resolve_model_path(None) {
        Err(Error::ModelNotFound { path })
            if std::env::var_os(MODEL_ENV).is_none_or(|v| v.is_empty()) =>
        {
            let Some(script) = find_fetch_script() else {
                return Err(Error::ModelNotFound { path });
            };
            // The script writes into `<root>/models`, root being the script's parent's parent.
            let root = script
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let status = Command::new("bash")
                .arg(&script)
                .current_dir(&root)
                .status()
                .map_err(|source| Error::Io {
                    path: script.clone(),
                    source,
                })?;
            // The script honours THINKTREE_MODELS_DIR; look where it wrote.
            let models_dir = std::env::var_os("THINKTREE_MODELS_DIR")
                .filter(|v| !v.is_empty())
                .map_or_else(|| root.join("models"), PathBuf::from);
            let expected = models_dir.join(DEFAULT_MODEL_FILE);
            if !status.success() {
                return Err(Error::ModelNotFound { path: expected });
            }
            checked(&expected)
        }
        other => other,
    }
}

fn checked(path: &Path) -> Result<PathBuf> {
    match thinktree_gguf::gguf::check(path) {
        Ok(()) => Ok(path.to_owned()),
        Err(thinktree_gguf::Error::NotFound { path }) => Err(Error::ModelNotFound { path }),
        Err(e) => Err(Error::Gguf(e)),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

fn workspace_default_model() -> PathBuf {
    workspace_root().join("models").join(DEFAULT_MODEL_FILE)
}

fn default_candidates() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match std::env::current_dir() {
        Ok(cwd) => cwd
            .ancestors()
            .map(|d| d.join("models").join(DEFAULT_MODEL_FILE))
            .collect(),
        Err(_) => Vec::new(),
    };
    out.push(workspace_default_model());
    out
}

fn find_fetch_script() -> Option<PathBuf> {
    let rel = Path::new("scripts").join("fetch-model.sh");
    let from_cwd = std::env::current_dir()
        .ok()
        .and_then(|cwd| cwd.ancestors().map(|d| d.join(&rel)).find(|p| p.is_file()));
    from_cwd.or_else(|| Some(workspace_root().join(&rel)).filter(|p| p.is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_default_points_into_models() {
        let p = workspace_default_model();
        assert!(p.ends_with(Path::new("models").join(DEFAULT_MODEL_FILE)));
    }
}
