//! The offline tree viewer in a real browser: `gsm8k --export-tree` on a tiny real GGUF,
//! then headless Chromium loads each page from `file://` and the rendered DOM is checked
//! (every node drawn, the chosen path highlighted, a search finding a known step), with a
//! screenshot kept under the target directory as an artefact.
//!
//! Chromium is required (`bash scripts/install-chromium.sh`; `.ci/run` installs it), or
//! named by `THINKTREE_CHROMIUM`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use thinktree::reason::{SearchTree, TreeView};
use thinktree_gsm8k::output::Record;

use super::e2e::{gsm8k, s, setup};

/// The browser binary: `THINKTREE_CHROMIUM`, else the first of Debian's and Chrome's
/// names on the PATH.
fn browser() -> PathBuf {
    if let Some(p) = std::env::var_os("THINKTREE_CHROMIUM") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome", "chrome"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "the viewer test needs Chromium: run `bash scripts/install-chromium.sh` \
         (Debian's chromium package) or set THINKTREE_CHROMIUM"
    );
}

/// Runs headless Chromium on `url` with `extra` flags and returns its stdout; a browser
/// that does not finish in 90 s is killed and fails the test.
fn chromium(url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(browser())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1600,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromium");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium failed on {url}: {status}");
            break;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not finish {url} in 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap().unwrap()
}

/// `file://` URL of a page, with a fragment.
fn url(page: &Path, fragment: &str) -> String {
    let mut u = format!("file://{}", page.display());
    if !fragment.is_empty() {
        u.push('#');
        u.push_str(fragment);
    }
    u
}

/// Percent-encodes a fragment value (everything but ASCII letters and digits).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The class attributes of every drawn node (`<g class="node ...">`).
fn node_classes(dom: &str) -> Vec<Vec<String>> {
    dom.match_indices("<g class=\"node")
        .map(|(i, _)| {
            let rest = &dom[i + "<g class=\"".len()..];
            let end = rest.find('"').unwrap();
            rest[..end].split_whitespace().map(str::to_string).collect()
        })
        .collect()
}

/// A search query taken from a step of the tree: its first run of 4-14 ASCII letters,
/// digits and spaces (the tiny model writes arbitrary text; this part survives any
/// lowercasing and URL round trip unchanged).
fn query_from(tree: &SearchTree) -> Option<String> {
    tree.nodes.iter().skip(1).find_map(|n| {
        let step = n.steps.last()?;
        let mut run = String::new();
        for c in step.chars() {
            if c.is_ascii_alphanumeric() || (c == ' ' && !run.is_empty()) {
                run.push(c);
                if run.len() == 14 {
                    break;
                }
            } else if run.trim().len() >= 4 {
                break;
            } else {
                run.clear();
            }
        }
        let run = run.trim().to_string();
        (run.len() >= 4).then_some(run)
    })
}

/// What the page's search counts: nodes whose own text (the steps added to the parent's;
/// the question at the root) or answer contains the query, case-insensitively.
fn expected_matches(tree: &SearchTree, question: &str, query: &str) -> usize {
    let q = query.to_lowercase();
    tree.nodes
        .iter()
        .filter(|n| {
            let own = match n.parent.and_then(|p| tree.nodes.get(p)) {
                None => question.to_string(),
                Some(p) => n.steps[p.steps.len().min(n.steps.len())..].join("\n"),
            };
            format!("{own} {}", n.answer.as_deref().unwrap_or(""))
                .to_lowercase()
                .contains(&q)
        })
        .count()
}

#[test]
fn exported_pages_render_in_chromium_with_every_node_the_chosen_path_and_search() {
    let (dir, model, data) = setup();
    let out = dir.path().join("results.jsonl");
    let trees = dir.path().join("trees");
    let o = gsm8k(&[
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--methods",
        "mcts,beam,sc",
        "--max-tokens",
        "60",
        "--samples",
        "3",
        "--simulations",
        "8",
        "--out",
        s(&out),
        "--export-tree",
        s(&trees),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let records: Vec<Record> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 6);

    // The index lists and links every page.
    let index = std::fs::read_to_string(trees.join("index.html")).unwrap();
    for r in &records {
        let page = format!("{}-{}.html", r.id.replace(':', "_"), r.method);
        assert!(trees.join(&page).is_file(), "{page} missing");
        assert!(index.contains(&format!("href=\"{page}\"")), "{index}");
    }
    let index_dom = chromium(&url(&trees.join("index.html"), ""), &["--dump-dom".into()]);
    assert_eq!(index_dom.matches("<tr class=").count(), 6, "{index_dom}");

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("viewer");
    std::fs::create_dir_all(&shots).unwrap();
    let question = "Ann has 2 cats and gets 3 more. How many cats does she have?";
    let mut searched = 0;
    for method in ["mcts", "beam", "sc"] {
        let stem = format!("two_0-{method}");
        let page = trees.join(format!("{stem}.html"));
        let html = std::fs::read_to_string(&page).unwrap();
        assert!(
            !html.contains(" src=") && !html.contains("<link") && !html.contains("@import"),
            "the page must load nothing"
        );
        let tree: SearchTree = serde_json::from_str(
            &std::fs::read_to_string(trees.join(format!("{stem}.json"))).unwrap(),
        )
        .unwrap();
        let record = records
            .iter()
            .find(|r| r.id == "two:0" && r.method == method)
            .unwrap();
        let chosen = TreeView::new(&tree, question)
            .chosen(&record.path, None)
            .chosen_ids();
        // The highlighted path reaches the node that holds the whole chosen path.
        if !record.path.is_empty() {
            let last = &tree.nodes[*chosen.last().unwrap()];
            assert_eq!(last.steps, record.path, "{method}");
        }

        // Both layouts draw every node and highlight exactly the chosen path.
        for layout in ["tree", "outline"] {
            let dom = chromium(
                &url(&page, &format!("layout={layout}")),
                &["--dump-dom".into()],
            );
            assert!(
                dom.contains("data-ready=\"1\""),
                "{method}: script did not finish"
            );
            assert!(
                dom.contains(&format!("data-layout=\"{layout}\"")),
                "{method}"
            );
            let classes = node_classes(&dom);
            assert_eq!(
                classes.len(),
                tree.nodes.len(),
                "{method} {layout}: nodes drawn"
            );
            let highlighted = classes
                .iter()
                .filter(|c| c.iter().any(|w| w == "chosen"))
                .count();
            assert_eq!(highlighted, chosen.len(), "{method} {layout}: chosen path");
            assert_eq!(
                dom.matches("class=\"edge chosen\"").count(),
                chosen.len() - 1,
                "{method} {layout}: chosen edges"
            );
        }

        // A search for a step's words marks exactly the nodes holding them and opens the
        // first one's full text in the side panel.
        if let Some(query) = query_from(&tree) {
            let dom = chromium(
                &url(&page, &format!("q={}", encode(&query))),
                &["--dump-dom".into()],
            );
            let want = expected_matches(&tree, question, &query);
            assert!(want >= 1);
            let marked = node_classes(&dom)
                .iter()
                .filter(|c| c.iter().any(|w| w == "match"))
                .count();
            assert_eq!(marked, want, "{method}: search for {query:?}");
            let label = if want == 1 { "match" } else { "matches" };
            assert!(
                dom.contains(&format!("<span id=\"matches\">{want} {label}</span>")),
                "{method}: match count for {query:?}"
            );
            searched += 1;
        }

        let shot = shots.join(format!("{stem}.png"));
        chromium(
            &url(&page, ""),
            &[format!("--screenshot={}", shot.display())],
        );
        let png = std::fs::read(&shot).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 5_000,
            "{}",
            shot.display()
        );
    }
    assert!(searched >= 1, "no step text to search for");
}
