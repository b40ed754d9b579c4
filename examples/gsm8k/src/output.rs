//! The results file: one JSON line per (problem, method), written as each finishes.
//!
//! Each line is written with a single `write_all` and flushed, so killing the run loses at
//! most the line being written. On `--resume` the file is read back: complete lines are
//! kept, a torn last line (the process died mid-write) is cut off before appending, and
//! the (problem, method) pairs already present are skipped.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One solved (problem, method) pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Problem id (`<dataset>:<index>`).
    pub id: String,
    /// Method short name (`greedy`, `sc`, `bon`, `beam`, `mcts`).
    pub method: String,
    /// Gold answer.
    pub gold: String,
    /// The method's answer, if one could be extracted.
    pub predicted: Option<String>,
    /// Whether `predicted` matches `gold`.
    pub correct: bool,
    /// Whether any candidate answer the method found matches `gold` (its oracle ceiling).
    pub covered: bool,
    /// Tokens sampled.
    pub generated_tokens: u64,
    /// Token positions computed (prefill plus every decoded batch row): the honest cost.
    pub computed_tokens: u64,
    /// Prompt tokens computed (not served from the cache).
    pub prompt_tokens: u64,
    /// Forward passes of the model.
    pub forward_calls: u64,
    /// Engine calls (each may batch many rows).
    pub model_calls: u64,
    /// Wall time of the solve, milliseconds.
    pub wall_ms: f64,
    /// The reasoning steps of the chosen answer.
    pub path: Vec<String>,
    /// Distinct candidate answers with their votes, most votes first.
    #[serde(default)]
    pub candidates: Vec<(String, usize)>,
    /// Set when the solve failed; such a record counts as wrong and is retried on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Record {
    /// The key `--resume` matches on.
    pub fn key(&self) -> (String, String) {
        (self.id.clone(), self.method.clone())
    }
}

/// What can go wrong with the results file.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Reading, truncating or writing failed.
    #[error("results file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A complete line (not the last) is not a record: the file is not ours or was edited.
    #[error(
        "results file {path}:{line}: not a result record ({reason}); move it away or pick another --out"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parse error.
        reason: String,
    },
}

/// Records found in an existing results file.
#[derive(Debug, Default)]
pub struct Existing {
    /// The latest record per (id, method), in file order of first appearance.
    pub records: Vec<Record>,
    /// Byte length of the complete lines; anything after it is a torn write.
    pub valid_len: u64,
    /// Whether a torn last line was found (and will be cut off).
    pub torn_tail: bool,
}

impl Existing {
    /// Whether the pair is done (present and not failed), so resume may skip it.
    pub fn is_finished(&self, id: &str, method: &str) -> bool {
        self.records
            .iter()
            .any(|r| r.id == id && r.method == method && r.error.is_none())
    }
}

/// Reads the records of a results file. A missing file has none. A last line that does
/// not parse (or lacks its newline and does not parse) is a torn write and is ignored; a
/// bad line anywhere else is an error.
pub fn read_existing(path: &Path) -> Result<Existing, OutputError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::default()),
        Err(source) => {
            return Err(OutputError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut latest: HashMap<(String, String), usize> = HashMap::new();
    let mut records: Vec<Record> = Vec::new();
    let mut valid_len = 0u64;
    let mut torn_tail = false;
    let mut start = 0usize;
    let mut line_no = 0usize;
    while start < bytes.len() {
        line_no += 1;
        let newline = bytes[start..].iter().position(|&b| b == b'\n');
        let end = newline.map_or(bytes.len(), |p| start + p);
        let is_last = newline.is_none() || end + 1 >= bytes.len();
        let line = &bytes[start..end];
        let next = newline.map_or(bytes.len(), |_| end + 1);
        if line.iter().all(u8::is_ascii_whitespace) {
            if newline.is_some() {
                valid_len = next as u64;
            }
            start = next;
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(r) if newline.is_some() => {
                match latest.get(&r.key()) {
                    Some(&i) => records[i] = r,
                    None => {
                        latest.insert(r.key(), records.len());
                        records.push(r);
                    }
                }
                valid_len = next as u64;
            }
            // A parsable line without its newline may still be a torn write of a longer
            // line; we cannot tell, so it is dropped and redone.
            Ok(_) => torn_tail = true,
            Err(_) if is_last => torn_tail = true,
            Err(e) => {
                return Err(OutputError::Corrupt {
                    path: path.to_path_buf(),
                    line: line_no,
                    reason: e.to_string(),
                });
            }
        }
        start = next;
    }
    Ok(Existing {
        records,
        valid_len,
        torn_tail,
    })
}

/// Appends records to the results file, one flushed line each; shared by worker threads.
#[derive(Debug)]
pub struct ResultsWriter {
    path: PathBuf,
    file: Mutex<File>,
}

impl ResultsWriter {
    /// Starts a fresh results file (truncating any old one).
    pub fn create(path: &Path) -> Result<Self, OutputError> {
        let io = |source| OutputError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = File::create(path).map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    /// Opens an existing results file for appending after its `valid_len` bytes of
    /// complete lines, cutting off a torn tail first.
    pub fn append(path: &Path, valid_len: u64) -> Result<Self, OutputError> {
        let io = |source| OutputError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len > valid_len {
            file.set_len(valid_len).map_err(io)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    /// Writes one record as one line and flushes it to the OS.
    pub fn write(&self, record: &Record) -> Result<(), OutputError> {
        let io = |source| OutputError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(record).map_err(|e| io(std::io::Error::other(e)))?;
        line.push(b'\n');
        // A poisoned lock only means another worker panicked mid-write; the file handle
        // itself is still usable.
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&line).map_err(io)?;
        file.flush().map_err(io)
    }
}

/// `<out>` with its extension replaced by `suffix` (`results.jsonl` → `results.svg`).
pub fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "results".into());
    out.with_file_name(format!("{stem}{suffix}"))
}
