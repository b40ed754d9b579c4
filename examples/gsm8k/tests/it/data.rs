//! Loading problem sets, and every way a data file can be wrong.

use std::io::Write;
use std::path::Path;

use thinktree_gsm8k::data::{DataError, default_problems, load, load_jsonl, parse_jsonl, select};

fn write_temp(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(".jsonl")
        .tempfile()
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn shipped_set_is_large_and_well_formed() {
    let ps = default_problems().unwrap();
    assert!(ps.len() >= 40, "only {} problems", ps.len());
    assert_eq!(ps[0].id, "default:0");
    assert_eq!(ps[0].gold, "12");
    // Every gold is a plain normalised number.
    for p in &ps {
        assert!(p.gold.parse::<f64>().is_ok(), "{}: {}", p.id, p.gold);
        assert!(!p.question.trim().is_empty());
    }
    assert_eq!(load(None).unwrap(), ps);
}

#[test]
fn golds_drop_commas_and_ids_use_the_file_stem() {
    let f = write_temp(
        "{\"question\": \"q1\", \"answer\": \"a\\n#### 1,234\"}\n\n{\"question\": \"q2\", \"answer\": \"#### -5\"}\n",
    );
    let ps = load_jsonl(f.path()).unwrap();
    assert_eq!(ps.len(), 2);
    assert_eq!(ps[0].gold, "1234");
    assert_eq!(ps[1].gold, "-5");
    let stem = f.path().file_stem().unwrap().to_str().unwrap().to_string();
    assert_eq!(ps[1].id, format!("{stem}:1"));
}

#[test]
fn missing_file_names_the_path() {
    let e = load(Some(Path::new("/nonexistent/dir/train.jsonl"))).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }));
    assert!(
        e.to_string().contains("/nonexistent/dir/train.jsonl"),
        "{e}"
    );
}

#[test]
fn malformed_line_reports_file_and_line_number() {
    let text = "{\"question\": \"q\", \"answer\": \"#### 1\"}\n{\"question\": \"q\", \"answer\": \"#### 2\"}\n{not json\n";
    let e = parse_jsonl(text, Path::new("f.jsonl"), "f").unwrap_err();
    match &e {
        DataError::Malformed { line, .. } => assert_eq!(*line, 3),
        other => panic!("unexpected {other:?}"),
    }
    assert!(e.to_string().starts_with("f.jsonl:3:"), "{e}");
}

#[test]
fn missing_fields_and_missing_gold_are_malformed() {
    let cases = [
        ("{\"answer\": \"#### 1\"}", "question"),
        ("{\"question\": \"  \", \"answer\": \"#### 1\"}", "question"),
        ("{\"question\": \"q\"}", "answer"),
        ("{\"question\": \"q\", \"answer\": \"it is 4\"}", "####"),
        ("{\"question\": \"q\", \"answer\": \"#### four\"}", "####"),
        ("[1, 2]", "invalid JSON"),
    ];
    for (line, needle) in cases {
        let text = format!("{{\"question\": \"ok\", \"answer\": \"#### 3\"}}\n{line}\n");
        let e = parse_jsonl(&text, Path::new("d.jsonl"), "d").unwrap_err();
        assert!(
            matches!(e, DataError::Malformed { line: 2, .. }),
            "{line}: {e:?}"
        );
        assert!(e.to_string().contains(needle), "{line}: {e}");
    }
}

#[test]
fn empty_dataset_is_an_error() {
    let f = write_temp("\n  \n");
    let e = load_jsonl(f.path()).unwrap_err();
    assert!(matches!(e, DataError::Empty { .. }));
    assert!(e.to_string().contains("empty"));
}

#[test]
fn offset_and_limit_select_a_window() {
    let ps = default_problems().unwrap();
    let n = ps.len();
    let s = select(ps.clone(), 2, Some(3)).unwrap();
    assert_eq!(
        s.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["default:2", "default:3", "default:4"]
    );
    assert_eq!(select(ps.clone(), n - 1, Some(10)).unwrap().len(), 1);
    assert_eq!(select(ps.clone(), 0, None).unwrap().len(), n);
    let e = select(ps, n, None).unwrap_err();
    assert!(matches!(e, DataError::NothingSelected { .. }));
}
