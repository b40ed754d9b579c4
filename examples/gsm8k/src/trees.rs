//! `--export-tree DIR`: each solve's tree as DOT, JSON and a self-contained HTML page
//! (the library's [`TreeView`]), and an `index.html` that lists them.
//!
//! The pages are written as each solve finishes; the index is rewritten from the results
//! at the end of every run (a resumed run lists the earlier pairs too), and links only
//! pages that exist.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use thinktree::reason::TreeView;

use crate::data::Problem;
use crate::journal::write_file;
use crate::output::Record;
use crate::solver::Attempt;

/// File-name-safe form of an id or a label.
fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The file stem of one (problem, method label) pair's exports: `gsm8k_3-mcts`,
/// `gsm8k_3-mcts_512` at a budget.
pub fn stem(id: &str, label: &str) -> String {
    format!("{}-{}", file_safe(id), file_safe(label))
}

/// Writes `<stem>.dot`, `<stem>.json` and `<stem>.html` for a solve that kept its tree.
/// The gold answer colours the page's answers; the search never saw it.
pub fn export(dir: &Path, problem: &Problem, label: &str, attempt: &Attempt) -> anyhow::Result<()> {
    let Some(tree) = &attempt.tree else {
        return Ok(());
    };
    let base = stem(&problem.id, label);
    let write = |ext: &str, text: &str| {
        let p = dir.join(format!("{base}.{ext}"));
        write_file(&p, text.as_bytes()).with_context(|| format!("writing {}", p.display()))
    };
    write("dot", &tree.to_dot())?;
    write("json", &tree.to_json()?)?;
    let title = format!("{} · {label}", problem.id);
    let html = TreeView::new(tree, &problem.question)
        .title(&title)
        .method(label)
        .chosen(&attempt.path, attempt.predicted.as_deref())
        .tokens(
            attempt.usage.generated_tokens,
            attempt.usage.computed_tokens,
        )
        .gold(Some(&problem.gold))
        .to_html();
    write("html", &html)
}

/// Writes `index.html`: one row per record whose page exists (problem, method, answer,
/// gold, right or wrong, tokens), linking the page. Returns its path.
pub fn write_index(dir: &Path, records: &[Record]) -> anyhow::Result<PathBuf> {
    let mut rows = String::new();
    let mut listed = 0usize;
    let mut right = 0usize;
    for r in records {
        let label = r.label();
        let page = format!("{}.html", stem(&r.id, &label));
        if !dir.join(&page).is_file() {
            continue;
        }
        listed += 1;
        right += usize::from(r.correct);
        let verdict = if r.correct { "right" } else { "wrong" };
        let _ = writeln!(
            rows,
            "<tr class=\"{verdict}\"><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            html_escape::encode_safe(&page),
            html_escape::encode_safe(&r.id),
            html_escape::encode_safe(&label),
            html_escape::encode_safe(r.predicted.as_deref().unwrap_or("none")),
            html_escape::encode_safe(&r.gold),
            if r.correct { "✓ right" } else { "✗ wrong" },
            r.generated_tokens,
            r.computed_tokens,
        );
    }
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>thinktree trees</title>\n<style>\n\
         body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2430; }}\n\
         table {{ border-collapse: collapse; }}\n\
         th, td {{ padding: 4px 12px; border-bottom: 1px solid #e1e4ea; text-align: left; }}\n\
         td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}\n\
         tr.right td:nth-child(6) {{ color: #17683a; }} tr.wrong td:nth-child(6) {{ color: #a3261b; }}\n\
         input {{ padding: 4px 6px; width: 260px; margin-bottom: 10px; }}\n\
         </style>\n</head>\n<body>\n<h1>Search trees</h1>\n\
         <p>{listed} trees, {right} right. Each page opens offline; click a node for its full text.</p>\n\
         <input id=\"filter\" type=\"search\" placeholder=\"filter rows\" aria-label=\"filter rows\">\n\
         <table id=\"trees\">\n<thead><tr><th>problem</th><th>method</th><th>answer</th><th>gold</th>\
         <th>verdict</th><th>generated</th><th>computed</th></tr></thead>\n<tbody>\n{rows}</tbody>\n</table>\n\
         <script>\n\
         document.getElementById('filter').addEventListener('input', function (e) {{\n\
         \x20 var q = e.target.value.toLowerCase();\n\
         \x20 document.querySelectorAll('#trees tbody tr').forEach(function (tr) {{\n\
         \x20   tr.style.display = tr.textContent.toLowerCase().indexOf(q) >= 0 ? '' : 'none';\n\
         \x20 }});\n\
         }});\n\
         </script>\n</body>\n</html>\n"
    );
    let path = dir.join("index.html");
    write_file(&path, html.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
