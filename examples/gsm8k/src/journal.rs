//! The one resume mechanism of every binary here: an append-only JSONL journal, locked
//! while a run writes it.
//!
//! Each entry is one line written with a single `write_all` and flushed, so killing the run
//! loses at most the line being written. Opening for [`Start::Resume`] reads the file back:
//! complete lines are kept, a torn last line (the process died mid-write) is cut off
//! before appending, and the caller skips the keys already present. The open file holds an
//! exclusive advisory lock (`flock`) for as long as the journal lives, so a second run on
//! the same file fails at once with [`JournalError::Locked`] instead of interleaving its
//! lines with the first one's (measured before the lock: 19 lines for 16 pairs, with
//! duplicates and a torn line, when a `--resume` ran beside an orphaned run). The lock dies
//! with the process, so `kill -9` never leaves a stale one behind.
//!
//! A write that fails part-way (a full disk: `write` appends what fits, then fails with
//! `ENOSPC`) is rolled back: the file is cut back to its length before the line, which
//! also frees the space the partial line took, so the file never holds a half-written
//! line that later lines would bury in the middle (where `--resume` would call the file
//! corrupt). The caller gets [`JournalError::Write`] and the lines before stay valid.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::hash::Hash;
use std::io::{Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// An entry of a journal: a JSON line with a key that resume matches on.
pub trait Entry: Serialize + DeserializeOwned {
    /// What makes two entries the same piece of work.
    type Key: Eq + Hash + Clone;
    /// This entry's key.
    fn key(&self) -> Self::Key;
}

/// What can go wrong with a journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Opening, reading or truncating failed.
    // The OS error is part of the message and not a `#[source]`, so `{:#}` (anyhow's
    // chain, as every binary here prints errors) does not say it twice.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// Appending an entry failed (e.g. the disk is full); the file was cut back to the
    /// entries before it.
    #[error(
        "writing {path}: {error}; the complete lines before it are kept: free space (or fix the cause) and pass --resume to continue"
    )]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error (with the rollback's own error, if that failed too).
        error: std::io::Error,
    },
    /// A complete line (not the last) is not an entry: the file is not ours or was edited.
    #[error(
        "{path}:{line}: not a record of this program ({reason}); move it away or pick another --out"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parse error.
        reason: String,
    },
    /// Another process is writing the file.
    #[error(
        "{path} is being written by another run (it holds the file's lock); wait for it to finish or choose another --out"
    )]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// [`Start::New`] found a non-empty file.
    #[error("{path} already holds results: pass --resume to continue it, or choose another --out")]
    Exists {
        /// The file.
        path: PathBuf,
    },
}

/// How to treat a file that already has lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Keep its complete lines and append after them.
    Resume,
    /// Start empty; a non-empty file's content is first copied to `<stem>.prev.<ext>`
    /// (one generation kept), so forgetting `--resume` loses nothing.
    Replace,
    /// Start empty; a non-empty file is an error ([`JournalError::Exists`]).
    New,
}

/// Entries found in an existing journal.
#[derive(Debug)]
pub struct Existing<R> {
    /// The latest entry per key, in file order of first appearance.
    pub records: Vec<R>,
    /// Byte length of the complete lines; anything after it is a torn write.
    pub valid_len: u64,
    /// Whether a torn last line was found (and is cut off when resuming).
    pub torn_tail: bool,
    /// Where [`Start::Replace`] copied an earlier non-empty file.
    pub moved_to: Option<PathBuf>,
}

impl<R> Default for Existing<R> {
    fn default() -> Self {
        Self {
            records: Vec::new(),
            valid_len: 0,
            torn_tail: false,
            moved_to: None,
        }
    }
}

/// An open, locked journal; entries are appended one flushed line each, from any thread.
#[derive(Debug)]
pub struct Journal<R> {
    path: PathBuf,
    file: Mutex<File>,
    _entries: PhantomData<fn(&R)>,
}

impl<R: Entry> Journal<R> {
    /// Opens (creating it and its directory if needed) and locks `path`, then treats
    /// earlier lines as `start` says. Returns the journal and what it held.
    pub fn open(path: &Path, start: Start) -> Result<(Self, Existing<R>), JournalError> {
        let io = |error| JournalError::Io {
            path: path.to_path_buf(),
            error,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(JournalError::Locked {
                    path: path.to_path_buf(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.read_to_end(&mut bytes).map_err(io)?;
        let existing = match start {
            Start::Resume => {
                let existing = parse(path, &bytes)?;
                if (bytes.len() as u64) > existing.valid_len {
                    file.set_len(existing.valid_len).map_err(io)?;
                }
                existing
            }
            Start::New if !bytes.iter().all(u8::is_ascii_whitespace) => {
                return Err(JournalError::Exists {
                    path: path.to_path_buf(),
                });
            }
            Start::New => {
                file.set_len(0).map_err(io)?;
                Existing::default()
            }
            Start::Replace => {
                let mut moved_to = None;
                if !bytes.is_empty() {
                    let prev = previous_path(path);
                    write_file(&prev, &bytes).map_err(|error| JournalError::Io {
                        path: prev.clone(),
                        error,
                    })?;
                    moved_to = Some(prev);
                }
                file.set_len(0).map_err(io)?;
                Existing {
                    moved_to,
                    ..Existing::default()
                }
            }
        };
        Ok((
            Self {
                path: path.to_path_buf(),
                file: Mutex::new(file),
                _entries: PhantomData,
            },
            existing,
        ))
    }

    /// Writes one entry as one line and flushes it to the OS. If that fails part-way,
    /// the file is cut back to its length before the line and [`JournalError::Write`]
    /// says why.
    pub fn write(&self, entry: &R) -> Result<(), JournalError> {
        let failed = |error| JournalError::Write {
            path: self.path.clone(),
            error,
        };
        let mut line = serde_json::to_vec(entry).map_err(|e| failed(std::io::Error::other(e)))?;
        line.push(b'\n');
        // A poisoned lock only means another worker panicked mid-write; the file handle
        // itself is still usable.
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // We hold the file's lock, so nobody else appends: its length now is where this
        // line starts.
        let before = file.metadata().map_err(failed)?.len();
        let Err(e) = file.write_all(&line).and_then(|()| file.flush()) else {
            return Ok(());
        };
        // Shrinking needs no space, so this works on a full disk too; the file is opened
        // for appending, so the next line goes right after the last complete one.
        match file.set_len(before) {
            Ok(()) => Err(failed(e)),
            Err(cut) => Err(failed(std::io::Error::new(
                e.kind(),
                format!("{e} (and cutting the partial line off failed: {cut})"),
            ))),
        }
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads the entries of a journal without opening it for writing (and without the lock).
/// A missing file has none. A last line that does not parse (or lacks its newline) is a
/// torn write and is ignored; a bad line anywhere else is an error.
pub fn read_existing<R: Entry>(path: &Path) -> Result<Existing<R>, JournalError> {
    match std::fs::read(path) {
        Ok(bytes) => parse(path, &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Existing::default()),
        Err(error) => Err(JournalError::Io {
            path: path.to_path_buf(),
            error,
        }),
    }
}

fn parse<R: Entry>(path: &Path, bytes: &[u8]) -> Result<Existing<R>, JournalError> {
    let mut latest: HashMap<R::Key, usize> = HashMap::new();
    let mut records: Vec<R> = Vec::new();
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
        match serde_json::from_slice::<R>(line) {
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
                return Err(JournalError::Corrupt {
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
        moved_to: None,
    })
}

/// Writes `bytes` as the whole content of `path`, like [`std::fs::write`], but removes the
/// file again if writing fails part-way (a full disk), so no truncated report is left
/// that looks like a whole one. (A file that cannot even be opened is left alone.)
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    File::create(path)?.write_all(bytes).inspect_err(|_| {
        let _ = std::fs::remove_file(path);
    })
}

/// `<out>` with its extension replaced by `suffix` (`results.jsonl` → `results.svg`).
pub fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "results".into());
    out.with_file_name(format!("{stem}{suffix}"))
}

/// Where [`Start::Replace`] keeps the earlier content: `results.jsonl` →
/// `results.prev.jsonl`.
pub fn previous_path(path: &Path) -> PathBuf {
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    sibling(path, &format!(".prev{ext}"))
}
