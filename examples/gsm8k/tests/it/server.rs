//! `gsm8k --server` against a real llama-cpp-python server running SmolLM2: results
//! stream to disk, a server killed mid-run turns the unfinished problems into error
//! records without touching the finished ones, and `--resume` against a new server
//! completes exactly those.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use thinktree_gsm8k::output::Record;
use thinktree_remote::testing::{LlamaServer, model_path, server_python};

const FOUR_PROBLEMS: &str = concat!(
    "{\"question\": \"Ann has 2 cats and gets 3 more. How many cats does she have?\", \"answer\": \"2 + 3 = 5\\n#### 5\"}\n",
    "{\"question\": \"A box holds 4 pens. How many pens are in 2 boxes?\", \"answer\": \"4 * 2 = 8\\n#### 8\"}\n",
    "{\"question\": \"Tim reads 6 pages a day. How many pages does he read in 3 days?\", \"answer\": \"6 * 3 = 18\\n#### 18\"}\n",
    "{\"question\": \"A cake costs 9 dollars. Mia pays with a 20 dollar bill. How much change does she get?\", \"answer\": \"20 - 9 = 11\\n#### 11\"}\n",
);

fn records(path: &Path) -> Vec<Record> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn a_killed_server_loses_no_finished_result_and_resume_completes_the_rest() {
    let Some(py) = server_python() else { return };
    let model = model_path();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("four.jsonl");
    std::fs::write(&data, FOUR_PROBLEMS).unwrap();
    let out = dir.path().join("results.jsonl");
    let args = |url: &str| {
        vec![
            "--server".to_string(),
            url.to_string(),
            "--model".into(),
            model.display().to_string(),
            "--data".into(),
            data.display().to_string(),
            "--methods".into(),
            "greedy".into(),
            "--max-tokens".into(),
            "48".into(),
            "--out".into(),
            out.display().to_string(),
            "--quiet".into(),
        ]
    };

    let mut server = LlamaServer::start(&py, &model, 2);
    let mut run = Command::new(env!("CARGO_BIN_EXE_gsm8k"))
        .args(args(&server.url))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while line_count(&out) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "no result after 5 minutes"
        );
        assert!(
            run.try_wait().unwrap().is_none(),
            "gsm8k exited before the kill"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.kill();
    run.wait().unwrap();
    let first = records(&out);
    assert_eq!(
        first.len(),
        4,
        "every problem has a line, finished or failed"
    );
    let done: Vec<&Record> = first.iter().filter(|r| r.error.is_none()).collect();
    let failed: Vec<&Record> = first.iter().filter(|r| r.error.is_some()).collect();
    assert!(
        !done.is_empty(),
        "the result written before the kill is kept"
    );
    assert!(
        !failed.is_empty(),
        "problems after the kill fail instead of hanging"
    );
    for r in &failed {
        let e = r.error.as_deref().unwrap();
        assert!(e.contains("no server answered"), "{e}");
    }
    for r in &done {
        assert!(r.generated_tokens > 0 && !r.path.is_empty(), "{r:?}");
    }

    let server = LlamaServer::start(&py, &model, 2);
    // The uninterrupted run, against the same restarted server, to compare with.
    let whole = dir.path().join("whole.jsonl");
    let mut whole_args = args(&server.url);
    let at = whole_args.iter().position(|a| a == "--out").unwrap();
    whole_args[at + 1] = whole.display().to_string();
    let status = Command::new(env!("CARGO_BIN_EXE_gsm8k"))
        .args(&whole_args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let whole = records(&whole);
    let status = Command::new(env!("CARGO_BIN_EXE_gsm8k"))
        .args(args(&server.url))
        .arg("--resume")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let all = records(&out);
    assert_eq!(
        all.len(),
        4 + failed.len(),
        "only the failed problems ran again"
    );
    let mut latest: HashMap<&str, &Record> = HashMap::new();
    for r in &all {
        latest.insert(&r.id, r);
    }
    assert_eq!(latest.len(), 4);
    assert!(latest.values().all(|r| r.error.is_none()), "{latest:#?}");
    for r in &done {
        assert_eq!(
            latest[r.id.as_str()].wall_ms,
            r.wall_ms,
            "finished results untouched"
        );
    }
    // Greedy answers and generated tokens equal an uninterrupted run's (computed tokens
    // may differ: the server's prompt cache decides what it recomputes).
    for w in &whole {
        let g = latest[w.id.as_str()];
        assert_eq!(
            (&g.predicted, g.generated_tokens),
            (&w.predicted, w.generated_tokens),
            "{}",
            w.id
        );
    }
}
