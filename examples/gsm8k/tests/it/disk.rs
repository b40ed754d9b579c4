//! A full disk: the results journal rolls a failed write back (no half-written line), a
//! run on a full `--out` file system stops with a clear error, `--resume` after space is
//! freed completes it equal to an uninterrupted run, and the reports and tree pages fail
//! with clear errors and leave no truncated file.
//!
//! The disk is a small tmpfs mounted on a temporary directory, which needs root (or
//! CAP_SYS_ADMIN); without it these tests say so on stderr and pass without testing.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use thinktree_gsm8k::journal::{Journal, JournalError, Start};
use thinktree_gsm8k::output::Record;
use thinktree_llm::testing::{TinyModelConfig, write_tiny_llama_gguf};

use crate::kill::{assert_equal_to_uninterrupted, problems, records};

const PAGE: u64 = 4096;

/// A tmpfs mounted on a temporary directory, unmounted when dropped (a failing test
/// included).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` bytes, or says loudly why it cannot and returns `None`.
    fn mount(size: u64, test: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match o {
            Ok(o) if o.status.success() => Some(Self { dir }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                eprintln!(
                    "\n!!!!! SKIPPED {test}: cannot mount a tmpfs ({why}); \
                     the full-disk tests need root or CAP_SYS_ADMIN !!!!!\n"
                );
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Changes the size (it cannot go below what is in use).
    fn resize(&self, size: u64) {
        let o = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "remount: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Fills the file system up with `filler`; returns the filler's length.
    fn fill(&self, filler: &Path) -> u64 {
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(filler)
            .unwrap();
        let chunk = vec![0u8; 64 << 10];
        loop {
            if let Err(e) = f.write_all(&chunk) {
                assert_eq!(e.raw_os_error(), Some(28), "{e}"); // ENOSPC
                break;
            }
        }
        std::fs::metadata(filler).unwrap().len()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a child not yet reaped): detach it now, it goes when unused.
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

fn record(i: usize) -> Record {
    Record {
        id: format!("p:{i}"),
        method: "greedy".into(),
        gold: "2".into(),
        predicted: Some("2".into()),
        correct: true,
        covered: true,
        generated_tokens: 48,
        computed_tokens: 223,
        prompt_tokens: 178,
        forward_calls: 16,
        model_calls: 2,
        wall_ms: 16.5,
        path: vec!["x".repeat(200)],
        candidates: vec![("2".into(), 1)],
        error: None,
        budget: None,
        reflection: None,
        concurrency: None,
    }
}

fn is_enospc(e: &JournalError) -> bool {
    match e {
        JournalError::Write { error, .. } => error.raw_os_error() == Some(28),
        _ => false,
    }
}

/// Asserts that every line of `path` is a complete record; returns how many.
fn complete_lines(path: &Path) -> usize {
    let text = std::fs::read(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with(b"\n"),
        "{}: a half-written line was left: {:?}",
        path.display(),
        String::from_utf8_lossy(&text[text.len().saturating_sub(80)..])
    );
    records(path).len()
}

#[test]
fn a_journal_write_that_fills_the_disk_is_rolled_back_and_resume_goes_on_after_it() {
    let Some(disk) = Tmpfs::mount(PAGE, "the journal rollback test") else {
        return;
    };
    // The real thing first: a write that does not fit appends what fits, then fails.
    let raw = disk.path().join("raw");
    let mut f = std::fs::File::create(&raw).unwrap();
    f.write_all(&[b'a'; 4000]).unwrap();
    assert!(f.write_all(&[b'b'; 200]).is_err());
    assert_eq!(
        std::fs::metadata(&raw).unwrap().len(),
        PAGE,
        "a partial write"
    );
    drop(f);
    std::fs::remove_file(&raw).unwrap();

    let path = disk.path().join("results.jsonl");
    let (journal, _) = Journal::<Record>::open(&path, Start::New).unwrap();
    let mut written = 0;
    let err = loop {
        let before = std::fs::metadata(&path).unwrap().len();
        match journal.write(&record(written)) {
            Ok(()) => written += 1,
            Err(e) => {
                // The line straddled the end of the space: part of it was written, and
                // cut off again.
                assert!(before % PAGE != 0, "{before}");
                assert_eq!(std::fs::metadata(&path).unwrap().len(), before);
                break e;
            }
        }
    };
    assert!(written > 0);
    assert!(is_enospc(&err), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(path.to_str().unwrap()), "{msg}");
    assert!(msg.contains("No space left on device"), "{msg}");
    assert_eq!(complete_lines(&path), written);
    // Still full: the next write fails the same way and leaves the file as it was.
    assert!(is_enospc(&journal.write(&record(written)).unwrap_err()));
    assert_eq!(complete_lines(&path), written);

    // Space freed: the journal appends right after the last complete line.
    disk.resize(16 * PAGE);
    journal.write(&record(written)).unwrap();
    drop(journal);
    let (_, existing) = Journal::<Record>::open(&path, Start::Resume).unwrap();
    assert_eq!(existing.records.len(), written + 1);
    assert!(!existing.torn_tail);
    let ids: Vec<String> = existing.records.iter().map(|r| r.id.clone()).collect();
    let want: Vec<String> = (0..=written).map(|i| format!("p:{i}")).collect();
    assert_eq!(ids, want);
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a run failed cleanly: exit code 1 (not a panic's 101), no panic message, and
/// `needles` on stderr.
fn assert_clean_failure(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in stderr: {err}");
    }
}

#[test]
fn a_run_on_a_full_disk_stops_cleanly_and_resume_after_freeing_space_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    write_tiny_llama_gguf(&model, &TinyModelConfig::default()).unwrap();
    let data = dir.path().join("p.jsonl");
    let n = 40;
    let pairs = 4 * n;
    std::fs::write(&data, problems(n)).unwrap();
    let run = |out: &Path, extra: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_gsm8k"))
            .args(["--model", model.to_str().unwrap()])
            .args(["--data", data.to_str().unwrap()])
            .args(["--methods", "greedy,sc,beam,mcts", "--samples", "3"])
            .args(["--max-tokens", "48", "--threads", "2", "--quiet"])
            .arg("--out")
            .arg(out)
            .args(extra)
            .output()
            .unwrap()
    };

    // The uninterrupted run, on the ordinary disk.
    let whole = dir.path().join("whole.jsonl");
    let o = run(&whole, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let whole_len = std::fs::metadata(&whole).unwrap().len();

    // A disk with room for about half the results.
    let size = (whole_len / 2 / PAGE).max(1) * PAGE;
    let Some(disk) = Tmpfs::mount(size, "the full-disk run test") else {
        return;
    };
    let out = disk.path().join("results.jsonl");
    let o = run(&out, &[]);
    let out_name = out.to_str().unwrap();
    assert_clean_failure(&o, &[out_name, "No space left on device", "--resume"]);
    let written = complete_lines(&out);
    assert!(0 < written && written < pairs, "{written} of {pairs}");
    eprintln!(
        "full disk ({size} bytes): {written} of {pairs} lines ({} bytes) written, then: {}",
        std::fs::metadata(&out).unwrap().len(),
        stderr(&o).trim()
    );
    assert!(!disk.path().join("results.summary.md").exists());
    assert!(!disk.path().join("results.svg").exists());

    // Space freed: --resume completes the run.
    disk.resize(256 * PAGE);
    let o = run(&out, &["--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_equal_to_uninterrupted(&out, &whole, pairs);
    let results = std::fs::read(&out).unwrap();

    // The reports on a full disk: the table fails first ...
    let summary = disk.path().join("results.summary.md");
    let svg = disk.path().join("results.svg");
    std::fs::remove_file(&summary).unwrap();
    std::fs::remove_file(&svg).unwrap();
    let filler = disk.path().join("filler");
    let filled = disk.fill(&filler);
    let o = run(&out, &["--resume"]);
    assert_clean_failure(&o, &[summary.to_str().unwrap(), "No space left on device"]);
    eprintln!("reports on a full disk: {}", stderr(&o).trim());
    assert!(!summary.exists(), "a truncated table was left behind");
    assert!(!svg.exists());
    assert_eq!(std::fs::read(&out).unwrap(), results);

    // ... and with room for the table only (two pages), the plot fails, also from
    // `gsm8k report`.
    std::fs::File::options()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(filled - 2 * PAGE)
        .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_gsm8k"))
        .arg("report")
        .arg(&out)
        .output()
        .unwrap();
    assert_clean_failure(&o, &[svg.to_str().unwrap(), "No space left on device"]);
    eprintln!("plot on a full disk: {}", stderr(&o).trim());
    assert!(summary.is_file());
    assert!(!svg.exists(), "a truncated plot was left behind");

    // Tree pages on a full disk: a warning for the page, then the results write stops the
    // run; no truncated page is left.
    disk.fill(&filler);
    let trees = disk.path().join("trees");
    let t_out = disk.path().join("t.jsonl");
    let o = run(
        &t_out,
        &["--export-tree", trees.to_str().unwrap(), "--limit", "2"],
    );
    assert_clean_failure(
        &o,
        &[
            "warning: writing",
            trees.to_str().unwrap(),
            t_out.to_str().unwrap(),
            "No space left on device",
        ],
    );
    eprintln!("trees on a full disk: {}", stderr(&o).trim());
    let left: Vec<PathBuf> = std::fs::read_dir(&trees)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "truncated pages left: {left:?}");
    assert_eq!(complete_lines(&t_out), 0);
}
