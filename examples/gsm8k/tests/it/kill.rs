//! Killing a run by its PID kills the run, a second run on the same results file is
//! refused while the first holds it, and `--resume` after `kill -9` completes the run with
//! exactly one valid line per (problem, method), equal to an uninterrupted run's: after
//! one kill, and after twenty at random moments of one run (each start resumed and killed
//! again).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use thinktree_gsm8k::journal::{Journal, JournalError, Start};
use thinktree_gsm8k::output::Record;
use thinktree_llm::testing::{TinyModelConfig, write_tiny_llama_gguf};

pub(crate) fn problems(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"question\": \"Tom has {i} apples and buys 2 more. How many apples does he have?\", \"answer\": \"{i} + 2 = {}\\n#### {}\"}}\n",
                i + 2,
                i + 2
            )
        })
        .collect()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

pub(crate) fn records(path: &Path) -> Vec<Record> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// A quiet two-thread `gsm8k` run of `methods` on the tiny model: 3 samples, 48 tokens.
fn run_args(model: &Path, data: &Path, methods: &str, out: &Path) -> Vec<String> {
    [
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--methods",
        methods,
        "--samples",
        "3",
        "--max-tokens",
        "48",
        "--threads",
        "2",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn a_second_journal_on_the_same_file_is_refused_while_the_first_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.jsonl");
    let (first, _) = Journal::<Record>::open(&path, Start::Replace).unwrap();
    let err = Journal::<Record>::open(&path, Start::Resume).unwrap_err();
    assert!(matches!(err, JournalError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("another run"), "{err}");
    drop(first);
    Journal::<Record>::open(&path, Start::Resume).unwrap();
}

#[test]
fn kill_9_then_resume_gives_one_valid_line_per_pair_equal_to_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    write_tiny_llama_gguf(&model, &TinyModelConfig::default()).unwrap();
    let data = dir.path().join("p.jsonl");
    let n = 40;
    std::fs::write(&data, problems(n)).unwrap();
    let args = |out: &Path| run_args(&model, &data, "greedy,sc", out);
    let bin = env!("CARGO_BIN_EXE_gsm8k");

    // The uninterrupted run.
    let whole = dir.path().join("whole.jsonl");
    let o = Command::new(bin).args(args(&whole)).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let out = dir.path().join("killed.jsonl");
    let mut child = Command::new(bin)
        .args(args(&out))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while lines(&out) < 3 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no results appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended too early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // While it runs, a second run on the same file is refused at once.
    let second = Command::new(bin)
        .args(args(&out))
        .arg("--resume")
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("another run"), "{err}");

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = std::fs::metadata(&out).unwrap().len();
    assert!(lines(&out) < 2 * n, "the run finished before it was killed");
    // Nothing keeps writing after the kill (no orphaned child process).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(std::fs::metadata(&out).unwrap().len(), at_kill);

    let o = Command::new(bin)
        .args(args(&out))
        .arg("--resume")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_equal_to_uninterrupted(&out, &whole, 2 * n);
}

/// Asserts that `out` holds exactly one valid line per (problem, method), `pairs` of them,
/// with the answers, token counts and candidates of the uninterrupted run in `whole`.
pub(crate) fn assert_equal_to_uninterrupted(out: &Path, whole: &Path, pairs: usize) {
    let text = std::fs::read(out).unwrap();
    assert!(
        text.is_empty() || text.ends_with(b"\n"),
        "{}: the last line is not complete",
        out.display()
    );
    let got = records(out);
    assert_eq!(got.len(), pairs, "exactly one line per (problem, method)");
    let by_key = |rs: Vec<Record>| -> HashMap<(String, String), Record> {
        rs.into_iter()
            .map(|r| ((r.id.clone(), r.method.clone()), r))
            .collect()
    };
    let (got, want) = (by_key(got), by_key(records(whole)));
    assert_eq!(got.len(), pairs, "a (problem, method) pair appears twice");
    assert_eq!(want.len(), pairs);
    for (k, w) in &want {
        let g = &got[k];
        assert_eq!(
            (
                &g.predicted,
                g.generated_tokens,
                g.computed_tokens,
                &g.candidates,
                &g.error
            ),
            (
                &w.predicted,
                w.generated_tokens,
                w.computed_tokens,
                &w.candidates,
                &w.error
            ),
            "{k:?}"
        );
    }
}

/// SplitMix64: the kill moments are drawn from a fixed seed, so a failure can be rerun.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Complete lines in `path` (counted on bytes: a torn line may end mid-character).
fn newlines(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}

/// When one start of the run is killed.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// This long after the start, whatever it has done (most often: not even loaded the
    /// model or written a line).
    Early(Duration),
    /// Once the file has grown to this many bytes, then this much later (so the kill
    /// lands anywhere in a solve, not just right after a write).
    AtBytes(u64, Duration),
}

#[test]
fn twenty_kill_9s_at_random_moments_each_resumed_give_the_uninterrupted_runs_lines() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    write_tiny_llama_gguf(&model, &TinyModelConfig::default()).unwrap();
    let data = dir.path().join("p.jsonl");
    let n = 40;
    let methods = ["greedy", "sc", "beam", "mcts"];
    let pairs = n * methods.len();
    std::fs::write(&data, problems(n)).unwrap();
    let methods = methods.join(",");
    let args = |out: &Path| run_args(&model, &data, &methods, out);
    let bin = env!("CARGO_BIN_EXE_gsm8k");

    // The uninterrupted run: its lines are the reference, its length and duration scale
    // the kill moments.
    let whole = dir.path().join("whole.jsonl");
    let t0 = Instant::now();
    let o = Command::new(bin).args(args(&whole)).output().unwrap();
    let run_time = t0.elapsed();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let whole_len = std::fs::metadata(&whole).unwrap().len();

    // Twenty kill moments: the first three and a quarter of the rest early (within 20 ms
    // of a start: loading the model, or before its first line), the rest at byte offsets
    // spread evenly at random over the first 90% of the file (sorted, so the run moves
    // on; at least one line past where the start found the file), each then delayed by up
    // to 2% of the run's duration.
    let mut rng = Rng(0x7417_c0de);
    let mut offsets: Vec<u64> = (0..20)
        .map(|_| (rng.unit() * 0.9 * whole_len as f64) as u64)
        .collect();
    offsets.sort_unstable();
    let jitter = run_time.mul_f64(0.02);
    let moments: Vec<Moment> = offsets
        .into_iter()
        .enumerate()
        .map(|(i, at)| {
            if i < 3 || rng.unit() < 0.25 {
                Moment::Early(Duration::from_millis(20).mul_f64(rng.unit()))
            } else {
                Moment::AtBytes(at, jitter.mul_f64(rng.unit()))
            }
        })
        .collect();

    let out = dir.path().join("killed.jsonl");
    let (mut before_any_line, mut before_this_starts_line, mut torn) = (0, 0, 0);
    let mut landed = Vec::new();
    for (i, moment) in moments.iter().enumerate() {
        let lines_at_start = newlines(&out);
        let bytes_at_start = std::fs::metadata(&out).map_or(0, |m| m.len());
        let mut cmd = Command::new(bin);
        cmd.args(args(&out));
        if i > 0 {
            cmd.arg("--resume");
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        match *moment {
            Moment::Early(after) => std::thread::sleep(after),
            Moment::AtBytes(at, after) => {
                // At least one line of this start's own (lines are single writes), so
                // these kills land mid-run whatever the machine's speed.
                let at = at.max(bytes_at_start + 1);
                while std::fs::metadata(&out).map_or(0, |m| m.len()) < at {
                    assert!(
                        started.elapsed() < Duration::from_secs(120),
                        "kill {i}: the file never reached {at} bytes"
                    );
                    assert!(
                        child.try_wait().unwrap().is_none(),
                        "kill {i}: the run ended before its file reached {at} bytes"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                std::thread::sleep(after);
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "kill {i} ({moment:?}): the run had already ended"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let at = started.elapsed();
        let bytes = std::fs::read(&out).unwrap_or_default();
        let lines = newlines(&out);
        before_any_line += usize::from(lines == 0);
        before_this_starts_line += usize::from(lines == lines_at_start);
        torn += usize::from(!bytes.is_empty() && !bytes.ends_with(b"\n"));
        assert!(lines < pairs, "kill {i}: the run had written every line");
        landed.push(format!("{}ms:{lines}", at.as_millis()));
    }
    eprintln!(
        "twenty kills (after the start, ms: complete lines then; {pairs} in all, uninterrupted run {} ms): {}; \
         {before_any_line} before the file's first line, {before_this_starts_line} before their start's first line, \
         {torn} left a torn last line",
        run_time.as_millis(),
        landed.join(" ")
    );
    assert!(before_any_line >= 1, "no kill landed before the first line");
    assert!(
        landed.len() - before_this_starts_line >= 10,
        "fewer than 10 kills landed after their start had written a line"
    );

    let o = Command::new(bin)
        .args(args(&out))
        .arg("--resume")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_equal_to_uninterrupted(&out, &whole, pairs);
}
