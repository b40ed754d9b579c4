//! The versioned JSONL training-record format (docs/SELFPLAY.md, "Record format").
//!
//! One JSON object per line, each carrying `"version"` and `"kind"`: a `"step"` record is
//! one search-tree node with its Monte-Carlo estimate of reaching the right answer; a
//! `"pair"` record is two sibling steps where one led to the right answer more often.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use thinktree_engine::Prompt;

use crate::error::{Error, Result};

/// The record format version written by this crate; readers refuse any other.
pub const RECORD_VERSION: u32 = 1;

/// One reasoning step (a search-tree node) labelled by the outcomes below it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Format version ([`RECORD_VERSION`]).
    pub version: u32,
    /// The problem's id in its data set.
    pub problem: String,
    /// The question.
    pub question: String,
    /// The prompt the search started from (chat template applied; its question a literal
    /// text piece). An older record's plain string reads as one markup piece.
    pub prompt: Prompt,
    /// Displayed steps before this one.
    pub steps: Vec<String>,
    /// This step, as displayed.
    pub step: String,
    /// Generated text before this step exactly as sampled: `prompt + context + step_raw`
    /// is the context the value head judges.
    pub context: String,
    /// This step exactly as sampled (with its separator).
    pub step_raw: String,
    /// Depth of the node (1 = first step).
    pub depth: usize,
    /// Math-Shepherd estimate: the share of finished paths at or below this step whose
    /// answer matches the gold answer.
    pub mc_value: f64,
    /// Finished paths at or below this step.
    pub leaves: usize,
    /// Of those, the ones with the right answer.
    pub correct: usize,
    /// Visits the node received in the search.
    pub visits: u64,
    /// The search's mean backed-up value for the node (None if never visited).
    pub q_value: Option<f64>,
    /// The policy's prior of the step.
    pub prior: f32,
    /// Whether the path ends at this step.
    pub terminal: bool,
    /// The final answer read at a terminal step.
    pub answer: Option<String>,
}

/// One side of a [`PairRecord`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairSide {
    /// The step, as displayed.
    pub step: String,
    /// The step exactly as sampled.
    pub step_raw: String,
    /// Its Monte-Carlo estimate.
    pub mc_value: f64,
    /// Finished paths at or below it.
    pub leaves: usize,
}

/// Two sibling steps (same question, same steps before them) where `better` led to the
/// right answer more often than `worse`: a preference pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairRecord {
    /// Format version ([`RECORD_VERSION`]).
    pub version: u32,
    /// The problem's id.
    pub problem: String,
    /// The question.
    pub question: String,
    /// The prompt the search started from (see [`StepRecord::prompt`]).
    pub prompt: Prompt,
    /// Displayed steps before the two siblings.
    pub steps: Vec<String>,
    /// Generated text before the two siblings, as sampled.
    pub context: String,
    /// The preferred step.
    pub better: PairSide,
    /// The other step.
    pub worse: PairSide,
}

/// One line of a records file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Record {
    /// A labelled step.
    Step(StepRecord),
    /// A preference pair.
    Pair(PairRecord),
}

impl Record {
    /// The record's format version.
    pub fn version(&self) -> u32 {
        match self {
            Record::Step(s) => s.version,
            Record::Pair(p) => p.version,
        }
    }

    /// The problem id.
    pub fn problem(&self) -> &str {
        match self {
            Record::Step(s) => &s.problem,
            Record::Pair(p) => &p.problem,
        }
    }
}

/// Parses one line; `path` and `line` (1-based) go into the error.
pub fn parse_record(text: &str, path: &Path, line: usize) -> Result<Record> {
    let data_err = |reason: String| Error::Data {
        path: path.to_owned(),
        line,
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| data_err(format!("not JSON: {e}")))?;
    match value.get("version").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(RECORD_VERSION) => {}
        Some(v) => {
            return Err(data_err(format!(
                "record version {v}, this build reads version {RECORD_VERSION}"
            )));
        }
        None => return Err(data_err("missing integer field `version`".into())),
    }
    let rec: Record =
        serde_json::from_value(value).map_err(|e| data_err(format!("bad record: {e}")))?;
    if let Record::Step(s) = &rec
        && !(s.mc_value.is_finite() && (0.0..=1.0).contains(&s.mc_value))
    {
        return Err(data_err(format!("mc_value {} outside [0, 1]", s.mc_value)));
    }
    Ok(rec)
}

/// Reads a whole records file (blank lines skipped). A malformed line is an
/// [`Error::Data`] naming the file and line.
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_record(&line, path, i + 1)?);
    }
    Ok(out)
}

/// Writes records as JSONL lines to `w` (flushes at the end).
pub fn write_records<W: Write>(w: &mut W, records: &[Record]) -> std::io::Result<()> {
    for r in records {
        let line = serde_json::to_string(r).map_err(std::io::Error::other)?;
        writeln!(w, "{line}")?;
    }
    w.flush()
}
