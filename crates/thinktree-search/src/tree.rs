//! The arena tree: every node lives in one `Vec`, addressed by a typed `u32` [`NodeId`].
//!
//! An arena keeps nodes compact and cache-friendly, makes ids stable for export and for the
//! policy's expand requests, and needs no `unsafe` and no reference counting.

use crate::error::{Error, Result};
use crate::problem::Player;

/// Index of a node in its [`Tree`]. The root is always [`NodeId::ROOT`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct NodeId(pub(crate) u32);

impl NodeId {
    /// The root of every tree.
    pub const ROOT: NodeId = NodeId(0);

    /// The raw index, for tables keyed by node.
    #[must_use]
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The raw `u32`.
    #[must_use]
    pub fn get(self) -> u32 {
        self.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// Visit statistics of a node. Values are from the perspective of the player who chose the
/// node (the parent's player to move; for the root, its own player to move), in the problem's
/// value scale.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeStats {
    /// Completed simulations that passed through the node.
    pub visits: u64,
    /// Simulations that ended at this node (it was the leaf that got evaluated, or a terminal
    /// or solved node whose value was reused). `visits` = this + the children's visits.
    pub leaf_visits: u64,
    /// Sum of the values backed up through the node.
    pub value_sum: f64,
    /// Largest value backed up through the node (`-inf` before the first visit).
    pub max: f64,
    /// Simulations currently in flight through the node (always 0 between searches).
    pub virtual_visits: u32,
}

impl Default for NodeStats {
    fn default() -> Self {
        NodeStats {
            visits: 0,
            leaf_visits: 0,
            value_sum: 0.0,
            max: f64::NEG_INFINITY,
            virtual_visits: 0,
        }
    }
}

impl NodeStats {
    /// Mean backed-up value, 0 before the first visit.
    #[inline]
    #[must_use]
    pub fn mean(&self) -> f64 {
        if self.visits == 0 {
            0.0
        } else {
            self.value_sum / self.visits as f64
        }
    }
}

/// The statistics selection reads for every child at every step, kept apart from the rest
/// of the node in one dense array (32 bytes per node) so a descent touches few cache lines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hot {
    pub(crate) visits: u64,
    pub(crate) value_sum: f64,
    pub(crate) max: f64,
    pub(crate) virtual_visits: u32,
    pub(crate) prior: f32,
}

impl Hot {
    fn new(prior: f32) -> Self {
        Hot {
            visits: 0,
            value_sum: 0.0,
            max: f64::NEG_INFINITY,
            virtual_visits: 0,
            prior,
        }
    }
}

/// The rest of a node: links, expansion status and known values, read once per step.
///
/// `repr(C)` keeps the fields a descent reads (children, solved, evaluation, depth, flags)
/// together at the front, so a step usually touches one cache line of this struct.
#[derive(Debug, Clone)]
#[repr(C)]
pub(crate) struct NodeData<A> {
    pub(crate) children: Vec<NodeId>,
    /// When `contiguous`, the children are exactly ids `first_child..first_child + len`, so
    /// selection can skip reading the `children` buffer (one cache miss less per step).
    pub(crate) first_child: u32,
    pub(crate) contiguous: bool,
    pub(crate) solved: Option<f64>,
    pub(crate) evaluation: Option<f64>,
    /// Nothing below is left to expand: a terminal, or exhausted with every child closed.
    pub(crate) closed: bool,
    pub(crate) depth: u32,
    pub(crate) prior_total: f32,
    pub(crate) exhausted: bool,
    pub(crate) to_move: Player,
    pub(crate) chooser: Player,
    pub(crate) parent: Option<NodeId>,
    pub(crate) leaf_visits: u64,
    pub(crate) terminal: Option<f64>,
    pub(crate) action: Option<A>,
}

/// A read-only view of one node: its edge from the parent, statistics and expansion status.
/// Its state is held by the [`Tree`] beside it.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a, A> {
    data: &'a NodeData<A>,
    hot: &'a Hot,
}

impl<'a, A> Node<'a, A> {
    /// The parent, `None` for the root.
    #[must_use]
    pub fn parent(&self) -> Option<NodeId> {
        self.data.parent
    }
    /// The action that led here, `None` for the root.
    #[must_use]
    pub fn action(&self) -> Option<&'a A> {
        self.data.action.as_ref()
    }
    /// The policy's prior for this node's action, as proposed (not normalised).
    #[must_use]
    pub fn prior(&self) -> f32 {
        self.hot.prior
    }
    /// Children in creation order.
    #[must_use]
    pub fn children(&self) -> &'a [NodeId] {
        &self.data.children
    }
    /// Distance from the root.
    #[must_use]
    pub fn depth(&self) -> u32 {
        self.data.depth
    }
    /// Player to move in this node's state.
    #[must_use]
    pub fn to_move(&self) -> Player {
        self.data.to_move
    }
    /// Player whose choice led here; the statistics are from this player's perspective.
    #[must_use]
    pub fn chooser(&self) -> Player {
        self.data.chooser
    }
    /// Visit statistics.
    #[must_use]
    pub fn stats(&self) -> NodeStats {
        NodeStats {
            visits: self.hot.visits,
            leaf_visits: self.data.leaf_visits,
            value_sum: self.hot.value_sum,
            max: self.hot.max,
            virtual_visits: self.hot.virtual_visits,
        }
    }
    /// The exact value (first player's perspective) if the state is terminal.
    #[must_use]
    pub fn terminal_value(&self) -> Option<f64> {
        self.data.terminal
    }
    /// The proven value (first player's perspective) if the node is terminal or every line
    /// below it is decided; such a node is never simulated again.
    #[must_use]
    pub fn solved_value(&self) -> Option<f64> {
        self.data.solved
    }
    /// The evaluator's (or rollout's) first value for this node, if it was ever a leaf.
    #[must_use]
    pub fn evaluation(&self) -> Option<f64> {
        self.data.evaluation
    }
    /// Whether the policy will not be asked for more children.
    #[must_use]
    pub fn is_exhausted(&self) -> bool {
        self.data.exhausted
    }
}

/// The search tree: nodes and their states, side by side, indexed by [`NodeId`].
#[derive(Debug, Clone)]
pub struct Tree<S, A> {
    pub(crate) nodes: Vec<NodeData<A>>,
    pub(crate) hot: Vec<Hot>,
    pub(crate) states: Vec<S>,
}

impl<S, A> Tree<S, A> {
    /// A tree holding only the root.
    /// `terminal` is a terminal state's `(value, exact)`: only an exact value proves it.
    pub(crate) fn with_root(state: S, to_move: Player, terminal: Option<(f64, bool)>) -> Self {
        let (terminal, exact) = (terminal.map(|t| t.0), terminal.is_some_and(|t| t.1));
        Tree {
            nodes: vec![NodeData {
                parent: None,
                action: None,
                prior_total: 0.0,
                children: Vec::new(),
                first_child: 0,
                contiguous: true,
                depth: 0,
                to_move,
                chooser: to_move,
                leaf_visits: 0,
                terminal,
                solved: terminal.filter(|_| exact),
                closed: terminal.is_some(),
                evaluation: None,
                exhausted: false,
            }],
            hot: vec![Hot::new(1.0)],
            states: vec![state],
        }
    }

    /// Appends a child of `parent`, returning its id.
    pub(crate) fn push_child(
        &mut self,
        parent: NodeId,
        action: A,
        prior: f32,
        state: S,
        to_move: Player,
        terminal: Option<(f64, bool)>,
    ) -> Result<NodeId> {
        let (terminal, exact) = (terminal.map(|t| t.0), terminal.is_some_and(|t| t.1));
        let id = u32::try_from(self.nodes.len()).map_err(|_| Error::TreeFull)?;
        if id == u32::MAX {
            return Err(Error::TreeFull);
        }
        let p = &mut self.nodes[parent.index()];
        if p.children.is_empty() {
            p.first_child = id;
        } else if p.contiguous && p.first_child as usize + p.children.len() != id as usize {
            p.contiguous = false;
        }
        p.children.push(NodeId(id));
        p.prior_total += prior;
        let (depth, chooser) = (p.depth + 1, p.to_move);
        self.nodes.push(NodeData {
            parent: Some(parent),
            action: Some(action),
            prior_total: 0.0,
            children: Vec::new(),
            first_child: 0,
            contiguous: true,
            depth,
            to_move,
            chooser,
            leaf_visits: 0,
            terminal,
            solved: terminal.filter(|_| exact),
            closed: terminal.is_some(),
            evaluation: None,
            exhausted: terminal.is_some(),
        });
        self.hot.push(Hot::new(prior));
        self.states.push(state);
        Ok(NodeId(id))
    }

    /// The root's id.
    #[must_use]
    pub fn root(&self) -> NodeId {
        NodeId::ROOT
    }

    /// Number of nodes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a tree has at least its root.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A node, or [`Error::UnknownNode`] for an id from another tree.
    pub fn node(&self, id: NodeId) -> Result<Node<'_, A>> {
        match (self.nodes.get(id.index()), self.hot.get(id.index())) {
            (Some(data), Some(hot)) => Ok(Node { data, hot }),
            _ => Err(Error::UnknownNode(id.0)),
        }
    }

    /// A node's statistics.
    pub fn stats(&self, id: NodeId) -> Result<NodeStats> {
        Ok(self.node(id)?.stats())
    }

    /// Statistics of a node known to exist (crate-internal ids).
    pub(crate) fn stats_of(&self, i: usize) -> NodeStats {
        let h = &self.hot[i];
        NodeStats {
            visits: h.visits,
            leaf_visits: self.nodes[i].leaf_visits,
            value_sum: h.value_sum,
            max: h.max,
            virtual_visits: h.virtual_visits,
        }
    }

    /// A node's state.
    pub fn state(&self, id: NodeId) -> Result<&S> {
        self.states.get(id.index()).ok_or(Error::UnknownNode(id.0))
    }

    /// A node's children.
    pub fn children(&self, id: NodeId) -> Result<&[NodeId]> {
        self.nodes
            .get(id.index())
            .map(|n| n.children.as_slice())
            .ok_or(Error::UnknownNode(id.0))
    }

    /// Every node id, root first, parents before children.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.nodes.len() as u32).map(NodeId)
    }

    /// Every node with its id.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, Node<'_, A>)> + '_ {
        self.nodes
            .iter()
            .zip(&self.hot)
            .enumerate()
            .map(|(i, (data, hot))| (NodeId(i as u32), Node { data, hot }))
    }

    /// The actions from the root down to `id`.
    pub fn path_to(&self, id: NodeId) -> Result<Vec<A>>
    where
        A: Clone,
    {
        let mut path = Vec::new();
        let mut cur = self.nodes.get(id.index()).ok_or(Error::UnknownNode(id.0))?;
        while let Some(p) = cur.parent {
            if let Some(a) = &cur.action {
                path.push(a.clone());
            }
            cur = &self.nodes[p.index()];
        }
        path.reverse();
        Ok(path)
    }

    /// Deepest node depth.
    #[must_use]
    pub fn max_depth(&self) -> u32 {
        self.nodes.iter().map(|n| n.depth).max().unwrap_or(0)
    }
}
