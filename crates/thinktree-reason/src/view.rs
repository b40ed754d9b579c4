//! The offline tree viewer: one self-contained HTML page per explored tree.
//!
//! The page carries its data, script and styles inline and fetches nothing, so it opens
//! from `file://`, from an e-mail attachment or from a CI artefact the same way. The
//! data is the [`SearchTree`] record every method exports (MCTS and beam: their trees;
//! greedy, self-consistency and best-of-N: their chains side by side under the root),
//! reduced to what a person reads: each node's own step text, visits, mean value, prior,
//! the scorer's value, its tokens and its answer. The chosen path is worked out here,
//! once, from the solution's steps; right/wrong colours appear only when a gold answer
//! is passed, which a caller knows after the solve, never during it.
//!
//! ```
//! use thinktree_reason::{SearchTree, TreeNode, TreeView};
//!
//! let node = |id, parent: Option<usize>, steps: &[&str], answer: Option<&str>| TreeNode {
//!     id,
//!     parent,
//!     depth: steps.len(),
//!     steps: steps.iter().map(|s| s.to_string()).collect(),
//!     raw: steps.concat(),
//!     terminal: answer.is_some(),
//!     answer: answer.map(str::to_string),
//!     visits: 1,
//!     mean: Some(0.5),
//!     prior: 1.0,
//!     value: Some(0.5),
//!     tokens: 4,
//! };
//! let tree = SearchTree {
//!     nodes: vec![
//!         node(0, None, &[], None),
//!         node(1, Some(0), &["2 + 3 = 5."], None),
//!         node(2, Some(1), &["2 + 3 = 5.", "The answer is 5."], Some("5")),
//!     ],
//! };
//! let chosen = ["2 + 3 = 5.".to_string(), "The answer is 5.".to_string()];
//! let html = TreeView::new(&tree, "Ann has 2 cats and gets 3 more. How many?")
//!     .chosen(&chosen, Some("5"))
//!     .gold(Some("5"))
//!     .to_html();
//! // Self-contained: nothing is loaded from anywhere.
//! assert!(html.starts_with("<!doctype html>") && !html.contains(" src=") && !html.contains("<link"));
//! assert_eq!(TreeView::new(&tree, "").chosen(&chosen, None).chosen_ids(), vec![0, 1, 2]);
//! ```

use serde::Serialize;

use crate::answer::answers_match;
use crate::solution::Solution;
use crate::tree::{SearchTree, TreeNode};

/// The viewer's script: layout, drawing, collapse, search, zoom and pan.
const SCRIPT: &str = include_str!("view/viewer.js");
/// The viewer's styles.
const STYLE: &str = include_str!("view/viewer.css");

/// A tree with what the page shows around it; [`TreeView::to_html`] renders it.
#[derive(Debug, Clone)]
pub struct TreeView<'a> {
    tree: &'a SearchTree,
    question: &'a str,
    title: Option<&'a str>,
    method: Option<String>,
    chosen: &'a [String],
    answer: Option<&'a str>,
    gold: Option<&'a str>,
    tokens: Option<(u64, u64)>,
}

/// One node as the page's script reads it.
#[derive(Serialize)]
struct PageNode<'a> {
    id: usize,
    parent: Option<usize>,
    /// The steps this node added to its parent's (one for a search step, a whole chain
    /// for the voting methods), joined by newlines.
    text: String,
    /// How many steps `text` holds.
    added: usize,
    terminal: bool,
    answer: Option<&'a str>,
    visits: u64,
    mean: Option<f64>,
    prior: f32,
    value: Option<f64>,
    tokens: usize,
    /// Right or wrong against the gold answer; None without a gold or an answer.
    right: Option<bool>,
}

/// The page's data block.
#[derive(Serialize)]
struct PageData<'a> {
    title: &'a str,
    question: &'a str,
    method: Option<&'a str>,
    answer: Option<&'a str>,
    gold: Option<&'a str>,
    right: Option<bool>,
    generated: Option<u64>,
    computed: Option<u64>,
    chosen: Vec<usize>,
    nodes: Vec<PageNode<'a>>,
}

impl<'a> TreeView<'a> {
    /// A view of `tree`, explored for `question`, with no chosen path and no gold.
    pub fn new(tree: &'a SearchTree, question: &'a str) -> Self {
        Self {
            tree,
            question,
            title: None,
            method: None,
            chosen: &[],
            answer: None,
            gold: None,
            tokens: None,
        }
    }

    /// The view of a solved problem: its tree, chosen path, answer, method and tokens.
    /// None when the solution carries no tree (solve with
    /// [`crate::SolveConfig::export_tree`] set).
    pub fn of_solution(solution: &'a Solution, question: &'a str) -> Option<Self> {
        let tree = solution.tree.as_ref()?;
        let mut view = Self::new(tree, question)
            .chosen(&solution.path, solution.answer.as_deref())
            .method(&solution.method.to_string());
        view.tokens = Some((
            solution.usage.generated_tokens,
            solution.usage.computed_tokens,
        ));
        Some(view)
    }

    /// The page title (default: the first 80 characters of the question).
    pub fn title(mut self, title: &'a str) -> Self {
        self.title = Some(title);
        self
    }

    /// The method's name, shown in the header.
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_string());
        self
    }

    /// The chosen reasoning steps and final answer (a [`Solution`]'s `path` and `answer`):
    /// the path through the tree that follows them is highlighted.
    pub fn chosen(mut self, steps: &'a [String], answer: Option<&'a str>) -> Self {
        self.chosen = steps;
        self.answer = answer;
        self
    }

    /// Tokens generated and computed by the whole solve, shown in the header.
    pub fn tokens(mut self, generated: u64, computed: u64) -> Self {
        self.tokens = Some((generated, computed));
        self
    }

    /// The gold answer, known after the solve: answers are coloured right or wrong
    /// (compared with [`answers_match`]). None (the default) colours nothing.
    pub fn gold(mut self, gold: Option<&'a str>) -> Self {
        self.gold = gold;
        self
    }

    /// The ids of the highlighted path, root first: from the root, the child whose steps
    /// the chosen steps start with (the one that gets furthest, then the most visited),
    /// until no child does. Just the root when nothing was chosen or the tree is empty of
    /// it.
    pub fn chosen_ids(&self) -> Vec<usize> {
        let nodes = &self.tree.nodes;
        let Some(root) = nodes.iter().find(|n| n.parent.is_none()) else {
            return Vec::new();
        };
        let mut children: Vec<Vec<&TreeNode>> = vec![Vec::new(); nodes.len()];
        for n in nodes {
            if let Some(p) = n.parent.filter(|&p| p < nodes.len() && p != n.id) {
                children[p].push(n);
            }
        }
        let mut path = vec![root.id];
        let mut at = root;
        // Every step moves to a node created later than its parent, so this ends.
        while path.len() <= nodes.len() {
            let next = children
                .get(at.id)
                .into_iter()
                .flatten()
                .filter(|c| self.chosen.starts_with(&c.steps) && c.steps.len() >= at.steps.len())
                .max_by(|a, b| {
                    a.steps
                        .len()
                        .cmp(&b.steps.len())
                        .then(a.visits.cmp(&b.visits))
                        .then(b.id.cmp(&a.id))
                });
            match next {
                Some(c) if !self.chosen.is_empty() => {
                    path.push(c.id);
                    at = c;
                }
                _ => break,
            }
        }
        path
    }

    /// The whole page: one HTML document with its data, script and styles inline.
    pub fn to_html(&self) -> String {
        let nodes = &self.tree.nodes;
        let steps_of = |id: Option<usize>| {
            id.and_then(|p| nodes.get(p))
                .map_or(0, |p: &TreeNode| p.steps.len())
        };
        let judge = |a: Option<&str>| match (a, self.gold) {
            (Some(a), Some(g)) => Some(answers_match(a, g)),
            _ => None,
        };
        let page_nodes = nodes
            .iter()
            .map(|n| {
                let from = steps_of(n.parent).min(n.steps.len());
                let added = &n.steps[from..];
                PageNode {
                    id: n.id,
                    parent: n.parent,
                    text: added.join("\n"),
                    added: added.len(),
                    terminal: n.terminal,
                    answer: n.answer.as_deref(),
                    visits: n.visits,
                    mean: n.mean.filter(|v| v.is_finite()),
                    prior: if n.prior.is_finite() { n.prior } else { 0.0 },
                    value: n.value.filter(|v| v.is_finite()),
                    tokens: n.tokens,
                    right: judge(n.answer.as_deref()),
                }
            })
            .collect();
        let short: String = self.question.chars().take(80).collect();
        let title = self.title.unwrap_or(&short);
        let data = PageData {
            title,
            question: self.question,
            method: self.method.as_deref(),
            answer: self.answer,
            gold: self.gold,
            right: judge(self.answer),
            generated: self.tokens.map(|t| t.0),
            computed: self.tokens.map(|t| t.1),
            chosen: self.chosen_ids(),
            nodes: page_nodes,
        };
        // Plain data (strings, numbers, options) always serialises.
        let json = serde_json::to_string(&data).unwrap_or_else(|_| "{}".to_string());
        page(title, &json)
    }
}

/// The document around the data: `<` never appears raw inside the data block (JSON
/// allows `\u003c` in strings, and `<` occurs nowhere else in JSON), so no step text can
/// close the script element or open a comment.
fn page(title: &str, json: &str) -> String {
    let data = json.replace('<', "\\u003c");
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
         <header id=\"bar\"><div id=\"head\"></div><div id=\"tools\">\
         <input id=\"search\" type=\"search\" placeholder=\"search steps (Enter: next)\" aria-label=\"search steps\">\
         <span id=\"matches\"></span>\
         <button id=\"layout\" type=\"button\">outline</button>\
         <button id=\"fit\" type=\"button\">fit</button>\
         <button id=\"one\" type=\"button\">1:1</button>\
         <button id=\"expand\" type=\"button\">expand all</button>\
         <button id=\"focus\" type=\"button\">chosen path only</button></div></header>\n\
         <div id=\"main\"><svg id=\"tree\" role=\"img\" aria-label=\"search tree\"><g id=\"viewport\"><g id=\"edges\"></g><g id=\"nodes\"></g></g></svg>\
         <aside id=\"detail\"><p class=\"hint\">Click a node for its full text. Drag to pan, wheel to zoom, \
         the small circle under a node folds its subtree.</p></aside></div>\n\
         <script type=\"application/json\" id=\"data\">{data}</script>\n\
         <script>\n{SCRIPT}</script>\n</body>\n</html>\n",
        html_escape::encode_text(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: usize, parent: Option<usize>, steps: &[&str]) -> TreeNode {
        TreeNode {
            id,
            parent,
            depth: steps.len(),
            steps: steps.iter().map(|s| s.to_string()).collect(),
            raw: steps.concat(),
            terminal: false,
            answer: None,
            visits: 0,
            mean: None,
            prior: 1.0,
            value: None,
            tokens: 0,
        }
    }

    #[test]
    fn hostile_text_cannot_leave_the_data_block() {
        let tree = SearchTree {
            nodes: vec![
                node(0, None, &[]),
                node(1, Some(0), &["</script><script>alert(1)</script><!--"]),
            ],
        };
        let html = TreeView::new(&tree, "<b>q</b>").title("</title>").to_html();
        assert_eq!(html.matches("</script>").count(), 2, "{html}");
        assert!(!html.contains("<!--") && !html.contains("<b>q"));
        assert!(html.contains("&lt;/title&gt;"));
    }

    #[test]
    fn chosen_path_follows_the_steps_and_prefers_the_furthest_child() {
        let mut tree = SearchTree {
            nodes: vec![
                node(0, None, &[]),
                node(1, Some(0), &["a"]),
                node(2, Some(0), &["b"]),
                node(3, Some(1), &["a", "c"]),
                node(4, Some(1), &["a", "d"]),
                // A chain node: two steps at once.
                node(5, Some(0), &["a", "d"]),
            ],
        };
        let chosen = ["a".to_string(), "d".to_string()];
        assert_eq!(
            TreeView::new(&tree, "").chosen(&chosen, None).chosen_ids(),
            vec![0, 5]
        );
        tree.nodes.pop();
        assert_eq!(
            TreeView::new(&tree, "").chosen(&chosen, None).chosen_ids(),
            vec![0, 1, 4]
        );
        assert_eq!(TreeView::new(&tree, "").chosen_ids(), vec![0]);
    }
}
