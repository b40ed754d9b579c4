//! Loading GSM8K-format problem sets.
//!
//! The format is the official one: one JSON object per line with a `question` and an
//! `answer` whose last line is `#### N`. Blank lines are skipped. Every bad line is an
//! error naming the file and the 1-based line, because a silently skipped problem would
//! change the denominator of every accuracy in the report.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thinktree::reason::answer::gold_answer;

/// The problem set shipped with the example: original grade-school word problems written
/// for this project (not taken from GSM8K), so a fresh checkout runs without any
/// download besides the model.
pub const DEFAULT_DATA: &str = include_str!("../data/default.jsonl");

/// The name the default set goes by in problem ids and reports.
pub const DEFAULT_NAME: &str = "default";

/// What can go wrong reading a problem set.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("cannot read data file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a valid problem.
    #[error("{path}:{line}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// The file holds no problems at all.
    #[error(
        "{path}: the dataset is empty (expected one JSON object per line with `question` and `answer`)"
    )]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// `--offset`/`--limit` select nothing.
    #[error("no problems selected: offset {offset} with {total} problems in the dataset")]
    NothingSelected {
        /// The requested offset.
        offset: usize,
        /// Problems in the dataset.
        total: usize,
    },
}

/// One problem with its gold answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Stable id: `<dataset>:<0-based index in the file>`, so results of different
    /// datasets never collide in one results file and `--offset` keeps ids unchanged.
    pub id: String,
    /// The word problem shown to the model.
    pub question: String,
    /// The gold answer, normalised (the number after `####`, commas removed).
    pub gold: String,
}

#[derive(Deserialize)]
struct RawLine {
    question: Option<String>,
    answer: Option<String>,
}

/// Parses GSM8K JSONL text; `path` names the source in errors and `name` prefixes ids.
pub fn parse_jsonl(text: &str, path: &Path, name: &str) -> Result<Vec<Problem>, DataError> {
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| DataError::Malformed {
            path: path.to_path_buf(),
            line: line_no,
            reason,
        };
        let raw: RawLine =
            serde_json::from_str(line).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let question = raw
            .question
            .filter(|q| !q.trim().is_empty())
            .ok_or_else(|| bad("missing or empty `question`".into()))?;
        let answer = raw.answer.ok_or_else(|| bad("missing `answer`".into()))?;
        let gold = gold_answer(&answer)
            .ok_or_else(|| bad("`answer` has no number after `####`".into()))?;
        problems.push(Problem {
            id: format!("{name}:{}", problems.len()),
            question,
            gold,
        });
    }
    if problems.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(problems)
}

/// Loads a GSM8K JSONL file; ids are prefixed with the file stem.
pub fn load_jsonl(path: &Path) -> Result<Vec<Problem>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    parse_jsonl(&text, path, &name)
}

/// The shipped default problem set.
pub fn default_problems() -> Result<Vec<Problem>, DataError> {
    parse_jsonl(
        DEFAULT_DATA,
        Path::new("examples/gsm8k/data/default.jsonl"),
        DEFAULT_NAME,
    )
}

/// Loads `path`, or the default set when `None`.
pub fn load(path: Option<&Path>) -> Result<Vec<Problem>, DataError> {
    match path {
        Some(p) => load_jsonl(p),
        None => default_problems(),
    }
}

/// The `offset..offset+limit` slice of `problems` (limit `None`: to the end).
pub fn select(
    problems: Vec<Problem>,
    offset: usize,
    limit: Option<usize>,
) -> Result<Vec<Problem>, DataError> {
    let total = problems.len();
    let selected: Vec<Problem> = problems
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    if selected.is_empty() {
        return Err(DataError::NothingSelected { offset, total });
    }
    Ok(selected)
}
