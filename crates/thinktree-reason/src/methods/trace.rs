//! A record of the explored tree, for people: DOT to look at, JSON to analyse.

use serde::Serialize;

/// One explored node.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TraceNode {
    pub id: usize,
    pub parent: Option<usize>,
    pub step: String,
    pub score: Option<f64>,
    pub prior: Option<f64>,
    pub visits: Option<u64>,
    pub terminal: bool,
    pub answer: Option<String>,
}

/// The explored tree in creation order (the root is node 0).
#[derive(Debug, Default, Serialize)]
pub(crate) struct Trace {
    pub nodes: Vec<TraceNode>,
}

impl Trace {
    /// Adds a node and returns its id.
    pub fn push(&mut self, mut n: TraceNode) -> usize {
        n.id = self.nodes.len();
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    /// Graphviz DOT, one box per node labelled with its step and numbers.
    pub fn to_dot(&self) -> String {
        let mut s = String::from("digraph thinktree {\n  node [shape=box, fontsize=10];\n");
        for n in &self.nodes {
            let mut label: String = n.step.chars().take(60).collect();
            if n.step.chars().count() > 60 {
                label.push('…');
            }
            if let Some(v) = n.visits {
                label.push_str(&format!("\\nN={v}"));
            }
            if let Some(q) = n.score {
                label.push_str(&format!(" v={q:.3}"));
            }
            if let Some(p) = n.prior {
                label.push_str(&format!(" p={p:.2}"));
            }
            if let Some(a) = &n.answer {
                label.push_str(&format!("\\nanswer={}", escape(a)));
            }
            let style = if n.terminal { ", style=bold" } else { "" };
            s.push_str(&format!(
                "  n{} [label=\"{}\"{style}];\n",
                n.id,
                escape_keep_newlines(&label)
            ));
            if let Some(p) = n.parent {
                s.push_str(&format!("  n{p} -> n{};\n", n.id));
            }
        }
        s.push_str("}\n");
        s
    }

    /// JSON: `{"nodes": [{id, parent, step, score, prior, visits, terminal, answer}]}`.
    pub fn to_json(&self) -> crate::error::Result<String> {
        Ok(serde_json::to_string(self)?)
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', " ")
}

/// Escapes quotes and stray backslashes but keeps the `\n` line breaks written above.
fn escape_keep_newlines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'n') => {
                chars.next();
                out.push_str("\\n");
            }
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}
