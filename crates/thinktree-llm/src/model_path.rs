//! Where the model file is, and opening it with errors that say how to fix things.
//!
//! The default model is not committed (it is fetched by `scripts/fetch-model.sh`), so the
//! most common failure on a fresh checkout is "no model". Every entry point resolves the
//! path the same way and reports a missing or broken file as a typed error naming the fix,
//! instead of a bare I/O error from deep inside the loader.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::quantized::gguf_file::Content;

use crate::error::{Error, Result};

/// File name of the default model (SmolLM2-135M-Instruct, Q4_1) inside `models/`.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Environment variable that names the model file when no `--model` is given.
pub const MODEL_ENV: &str = "THINKTREE_MODEL";

/// Bytes of a GGUF header: magic, version, tensor count, metadata count.
const GGUF_HEADER_LEN: u64 = 24;

/// Finds the model file.
///
/// Order: `cli` (a `--model` argument), then `$THINKTREE_MODEL`, then
/// `models/DEFAULT_MODEL_FILE` in the current directory or any ancestor (so binaries work
/// from any subdirectory of a checkout), then the workspace's own `models/` (so tests work
/// whatever their working directory). An explicitly named file that is missing is
/// [`Error::ModelNotFound`] for that path, not a silent fallback to the default. A file
/// that is not GGUF is [`Error::InvalidGguf`].
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
/// to the terminal; a failing script is reported as [`Error::ModelNotFound`] with the
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

/// Opens a GGUF file and reads its header, metadata and tensor directory.
///
/// A missing file is [`Error::ModelNotFound`]; a file that is not GGUF, is truncated, or
/// whose tensors point past its end is [`Error::InvalidGguf`] — checked here so that a
/// half-downloaded model fails at open time with a re-download hint, not later in a
/// tensor read. Returns the file too, positioned arbitrarily, for reading tensors.
pub fn open_gguf(path: &Path) -> Result<(Content, File)> {
    let mut file = open_existing(path)?;
    check_header(path, &mut file)?;
    file.seek(SeekFrom::Start(0)).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    // Metadata is tens of thousands of tiny reads (one per token string); unbuffered,
    // each is a syscall and the header alone takes longer than building the tokenizer.
    let content =
        Content::read(&mut BufReader::new(&mut file)).map_err(|e| invalid(path, e.to_string()))?;
    let file_len = file
        .metadata()
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?
        .len();
    for (name, info) in &content.tensor_infos {
        let elems = info.shape.elem_count();
        let block = info.ggml_dtype.block_size();
        if block == 0 || elems % block != 0 {
            return Err(invalid(
                path,
                format!(
                    "tensor `{name}` has {elems} elements, not a multiple of its block size {block}"
                ),
            ));
        }
        let bytes = (elems / block) as u64 * info.ggml_dtype.type_size() as u64;
        let end = content
            .tensor_data_offset
            .saturating_add(info.offset)
            .saturating_add(bytes);
        if end > file_len {
            return Err(invalid(
                path,
                format!(
                    "truncated: tensor `{name}` ends at byte {end} but the file has {file_len} bytes"
                ),
            ));
        }
    }
    Ok((content, file))
}

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidGguf {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn open_existing(path: &Path) -> Result<File> {
    File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::ModelNotFound {
                path: path.to_owned(),
            }
        } else {
            Error::Io {
                path: path.to_owned(),
                source,
            }
        }
    })
}

/// Checks magic and version without parsing the rest.
fn check_header(path: &Path, file: &mut File) -> Result<()> {
    if file
        .metadata()
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?
        .is_dir()
    {
        return Err(invalid(path, "is a directory"));
    }
    let mut header = [0u8; GGUF_HEADER_LEN as usize];
    let mut got = 0;
    while got < header.len() {
        match file.read(&mut header[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
    if got >= 4 && &header[..4] != b"GGUF" {
        return Err(invalid(
            path,
            format!(
                "bad magic {:?}, expected \"GGUF\"",
                String::from_utf8_lossy(&header[..4])
            ),
        ));
    }
    if got < header.len() {
        return Err(invalid(
            path,
            format!("too short: {got} bytes, a GGUF header alone is {GGUF_HEADER_LEN}"),
        ));
    }
    let version = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if !(1..=3).contains(&version) {
        return Err(invalid(path, format!("unsupported GGUF version {version}")));
    }
    Ok(())
}

fn checked(path: &Path) -> Result<PathBuf> {
    let mut file = open_existing(path)?;
    check_header(path, &mut file)?;
    Ok(path.to_owned())
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
