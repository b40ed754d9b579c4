//! A key/value cache shaped like the search tree.
//!
//! Every context is a [`KvState`]: a node holding only the tokens it adds to its parent
//! (a segment) and, when computed, those tokens' per-layer keys/values. Children share their
//! parent's segments, so expanding a search node never recomputes its prefix, and siblings
//! cost only their own tokens.
//!
//! Memory is bounded: [`KvCache`] counts the bytes held by all live nodes and, when over its
//! budget, drops the tensors of the least recently used nodes. A node whose tensors were
//! dropped is recomputed from its tokens the next time it is needed, so eviction can cost
//! time but never change a result.
//!
//! Sliding-window layers (Gemma 3: five layers in six see only the last 512 positions)
//! keep only their last `window` positions per node ([`KvCache::for_model`]): a query
//! never reads further back, so the rest would be memory held for nothing. The attention
//! mask is relative (a key is visible when it is less than `window` positions behind the
//! query), so a window layer's context may be any tail of at least `window - 1`
//! positions: joining nodes takes segments from the end until the window is full, and a
//! trimmed segment (which holds a whole window) ends the walk, so the joined tail never
//! has a gap.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::model::{LayerKv, Model};

static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

/// Counters describing how well the cache worked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvStats {
    /// Nodes whose tensors were dropped to stay under the budget.
    pub evictions: u64,
    /// Tokens recomputed because their tensors had been evicted.
    pub recomputed_tokens: u64,
    /// Tokens computed for the first time.
    pub computed_tokens: u64,
    /// Live nodes holding tensors.
    pub resident_nodes: usize,
    /// Most bytes of tensors ever resident at once, counted as each forward pass stores
    /// its result and before eviction runs: at most the budget plus the contexts that
    /// running passes pin (eviction never drops a context in use).
    pub peak_bytes: usize,
}

#[derive(Default)]
struct NodeData {
    /// Per-layer `(kv_heads, computed, head_dim)` keys/values of this node's first
    /// `computed` segment tokens.
    kv: Vec<LayerKv>,
    computed: usize,
    /// Next-token logits after the whole context, when known.
    logits: Option<Arc<Vec<f32>>>,
    /// Most segment tokens ever computed (computing them again is a recompute).
    max_computed: usize,
}

impl NodeData {
    fn bytes(&self) -> usize {
        let kv: usize = self
            .kv
            .iter()
            .map(|(k, v)| (k.elem_count() + v.elem_count()) * 4)
            .sum();
        kv + self.logits.as_ref().map_or(0, |l| l.len() * 4)
    }
}

struct Entry {
    data: Weak<Mutex<NodeData>>,
    bytes: usize,
    last_used: u64,
}

struct Registry {
    entries: HashMap<u64, Entry>,
    used: usize,
    clock: u64,
    stats: KvStats,
}

struct Store {
    id: u64,
    budget: usize,
    /// Each layer's sliding window (empty: keep every position of every layer).
    windows: Vec<Option<usize>>,
    next_node: AtomicU64,
    reg: Mutex<Registry>,
}

impl Store {
    fn reg(&self) -> MutexGuard<'_, Registry> {
        // A panic elsewhere cannot leave the counters in a state worse than stale.
        self.reg.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Node {
    id: u64,
    store: Weak<Store>,
    cache_id: u64,
    parent: Option<KvState>,
    /// Context length before this segment.
    start: usize,
    tokens: Vec<u32>,
    data: Arc<Mutex<NodeData>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(store) = self.store.upgrade() {
            let mut reg = store.reg();
            if let Some(e) = reg.entries.remove(&self.id) {
                reg.used = reg.used.saturating_sub(e.bytes);
            }
        }
    }
}

/// A handle to one context in a [`KvCache`]: cheap to clone, shareable across threads, and
/// valid for as long as it is held (its tensors may be evicted, never its tokens).
#[derive(Clone)]
pub struct KvState(Arc<Node>);

impl fmt::Debug for KvState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvState")
            .field("node", &self.0.id)
            .field("len", &self.len())
            .finish()
    }
}

impl KvState {
    /// Tokens in the whole context.
    pub fn len(&self) -> usize {
        self.0.start + self.0.tokens.len()
    }

    /// Whether the context is empty (the root).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tokens this node adds to its parent.
    pub fn segment(&self) -> &[u32] {
        &self.0.tokens
    }

    /// The parent context (None for the root).
    pub fn parent(&self) -> Option<&KvState> {
        self.0.parent.as_ref()
    }

    /// All token ids of the context, oldest first.
    pub fn tokens(&self) -> Vec<u32> {
        let mut chain = self.chain();
        let mut out = Vec::with_capacity(self.len());
        for n in chain.drain(..) {
            out.extend_from_slice(&n.0.tokens);
        }
        out
    }

    /// Root-to-self list of nodes.
    fn chain(&self) -> Vec<KvState> {
        let mut chain = vec![self.clone()];
        let mut cur = self.0.parent.clone();
        while let Some(p) = cur {
            cur = p.0.parent.clone();
            chain.push(p);
        }
        chain.reverse();
        chain
    }

    fn data(&self) -> MutexGuard<'_, NodeData> {
        self.0.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the node's own tensors are currently resident (for tests and stats).
    pub fn is_resident(&self) -> bool {
        self.data().computed > 0
    }
}

/// What [`KvCache::prepare`] hands to a forward pass.
#[derive(Debug)]
pub struct Prepared {
    /// Per-layer `(kv_heads, len, head_dim)` keys/values of the whole context (a
    /// sliding-window layer of a [`KvCache::for_model`] cache: only its last `window`
    /// positions); empty for the empty context.
    pub kv: Vec<LayerKv>,
    /// Next-token logits, when asked for.
    pub logits: Option<Arc<Vec<f32>>>,
    /// Token positions computed to get here (new plus recomputed).
    pub computed_tokens: u64,
    /// Forward passes run to get here.
    pub forward_calls: u64,
}

/// The shared store of a tree of contexts, with a memory budget.
#[derive(Clone)]
pub struct KvCache {
    store: Arc<Store>,
    root: KvState,
}

impl fmt::Debug for KvCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvCache")
            .field("budget_bytes", &self.store.budget)
            .field("used_bytes", &self.used_bytes())
            .finish()
    }
}

impl KvCache {
    /// A cache that keeps at most `budget_bytes` of tensors resident (beyond what the
    /// running forward pass itself holds), every position of every layer.
    pub fn new(budget_bytes: usize) -> Self {
        Self::with_windows(budget_bytes, Vec::new())
    }

    /// A cache for `model`: like [`KvCache::new`], but its sliding-window layers keep only
    /// their last `window` positions per node.
    pub fn for_model(model: &Model, budget_bytes: usize) -> Self {
        Self::with_windows(budget_bytes, model.layer_windows())
    }

    fn with_windows(budget_bytes: usize, windows: Vec<Option<usize>>) -> Self {
        let id = NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed);
        let store = Arc::new(Store {
            id,
            budget: budget_bytes,
            windows,
            next_node: AtomicU64::new(1),
            reg: Mutex::new(Registry {
                entries: HashMap::new(),
                used: 0,
                clock: 0,
                stats: KvStats::default(),
            }),
        });
        let root = KvState(Arc::new(Node {
            id: 0,
            store: Arc::downgrade(&store),
            cache_id: id,
            parent: None,
            start: 0,
            tokens: Vec::new(),
            data: Arc::default(),
        }));
        Self { store, root }
    }

    /// The empty context.
    pub fn root(&self) -> KvState {
        self.root.clone()
    }

    /// Bytes of tensors currently resident.
    pub fn used_bytes(&self) -> usize {
        self.store.reg().used
    }

    /// The memory budget in bytes.
    pub fn budget_bytes(&self) -> usize {
        self.store.budget
    }

    /// Counters since creation.
    pub fn stats(&self) -> KvStats {
        let reg = self.store.reg();
        KvStats {
            resident_nodes: reg.entries.values().filter(|e| e.bytes > 0).count(),
            ..reg.stats
        }
    }

    /// Errors unless `state` was made by this cache.
    pub fn check(&self, state: &KvState) -> Result<()> {
        if state.0.cache_id == self.store.id {
            Ok(())
        } else {
            Err(Error::KvCache(
                "state belongs to another engine's cache".into(),
            ))
        }
    }

    /// A new context: `parent` followed by `tokens`. Nothing is computed yet.
    pub fn child(&self, parent: &KvState, tokens: Vec<u32>) -> Result<KvState> {
        self.check(parent)?;
        let id = self.store.next_node.fetch_add(1, Ordering::Relaxed);
        let data: Arc<Mutex<NodeData>> = Arc::default();
        let node = Node {
            id,
            store: Arc::downgrade(&self.store),
            cache_id: self.store.id,
            parent: Some(parent.clone()),
            start: parent.len(),
            tokens,
            data: data.clone(),
        };
        let mut reg = self.store.reg();
        reg.clock += 1;
        let last_used = reg.clock;
        reg.entries.insert(
            id,
            Entry {
                data: Arc::downgrade(&data),
                bytes: 0,
                last_used,
            },
        );
        drop(reg);
        Ok(KvState(Arc::new(node)))
    }

    /// Stores tensors computed outside [`KvCache::prepare`] (e.g. by batched decoding) for
    /// the first `kv[..].dim(1)` tokens of `state`'s segment (every position, window
    /// layers included: they are trimmed here), plus the next-token logits when all its
    /// tokens are covered.
    pub fn attach(
        &self,
        state: &KvState,
        kv: Vec<LayerKv>,
        logits: Option<Vec<f32>>,
    ) -> Result<()> {
        self.check(state)?;
        let computed = kv
            .iter()
            .map(|(k, _)| k.dim(1))
            .try_fold(0, |m, n| n.map(|n| m.max(n)))?;
        if computed > state.0.tokens.len() || (logits.is_some() && computed != state.0.tokens.len())
        {
            return Err(Error::KvCache(
                "attached tensors do not match the node's tokens".into(),
            ));
        }
        let kv = self.trim(kv)?;
        let mut d = state.data();
        d.kv = kv;
        d.computed = computed;
        d.logits = logits.map(Arc::new);
        d.max_computed = d.max_computed.max(computed);
        let bytes = d.bytes();
        self.account(state.0.id, bytes, computed as u64, 0);
        drop(d);
        self.evict(&[state.0.id]);
        Ok(())
    }

    /// The keys/values of `state`'s whole context (and its next-token logits when
    /// `need_logits`), computing whatever is missing along the way.
    pub fn prepare(&self, model: &Model, state: &KvState, need_logits: bool) -> Result<Prepared> {
        self.check(state)?;
        if need_logits && state.is_empty() {
            return Err(Error::Engine(thinktree_engine::Error::EmptyPrompt(
                "the context is empty: extend the root with a prompt first",
            )));
        }
        let chain = state.chain();
        let ids: Vec<u64> = chain.iter().map(|n| n.0.id).collect();
        self.touch(&ids);
        let mut segs: Vec<Vec<LayerKv>> = Vec::new();
        let mut out = Prepared {
            kv: Vec::new(),
            logits: None,
            computed_tokens: 0,
            forward_calls: 0,
        };
        let last = chain.len() - 1;
        for (ci, node) in chain.iter().enumerate() {
            let len = node.0.tokens.len();
            if len == 0 {
                continue;
            }
            let is_last = ci == last;
            let mut d = node.data();
            let want_logits = is_last && need_logits;
            let mut usable = d.computed;
            if want_logits && d.logits.is_none() {
                usable = usable.min(len - 1);
            }
            if usable == len {
                segs.push(d.kv.clone());
                if want_logits {
                    out.logits = d.logits.clone();
                }
                continue;
            }
            // Compute this segment's missing tokens on top of everything before it.
            let prefix = self.concat(std::mem::take(&mut segs))?;
            let keep = self.reusable(&d, usable)?;
            if keep.is_none() {
                usable = 0;
            }
            let have: Vec<LayerKv> = match keep {
                Some(keep) if usable > 0 => {
                    d.kv.iter()
                        .zip(keep)
                        .map(|((k, v), n)| {
                            Ok((
                                k.narrow(1, 0, n)?.unsqueeze(0)?,
                                v.narrow(1, 0, n)?.unsqueeze(0)?,
                            ))
                        })
                        .collect::<Result<_>>()?
                }
                _ => Vec::new(),
            };
            let missing = node.0.tokens[usable..].to_vec();
            let n_missing = missing.len() as u64;
            let (logits, kv) = model.forward(
                &[missing],
                (!prefix.is_empty()).then_some(prefix.as_slice()),
                (!have.is_empty()).then_some(have.as_slice()),
                node.0.start + usable,
            )?;
            let seg: Vec<LayerKv> = kv
                .into_iter()
                .map(|(k, v)| Ok((k.squeeze(0)?, v.squeeze(0)?)))
                .collect::<Result<_>>()?;
            let seg = self.trim(seg)?;
            let recomputed = d.max_computed.saturating_sub(usable) as u64;
            d.kv = seg.clone();
            d.computed = len;
            d.max_computed = len;
            if is_last {
                let l = Arc::new(logits.squeeze(0)?.to_vec1::<f32>()?);
                if want_logits {
                    out.logits = Some(l.clone());
                }
                d.logits = Some(l);
            }
            out.computed_tokens += n_missing;
            out.forward_calls += 1;
            let bytes = d.bytes();
            self.account(
                node.0.id,
                bytes,
                n_missing - recomputed.min(n_missing),
                recomputed.min(n_missing),
            );
            drop(d);
            if !prefix.is_empty() {
                segs.push(prefix);
            }
            segs.push(seg);
        }
        out.kv = self.concat(segs)?;
        self.evict(&ids);
        Ok(out)
    }

    /// The window of layer `l`, when the cache trims it.
    fn window(&self, l: usize) -> Option<usize> {
        self.store.windows.get(l).copied().flatten()
    }

    /// Keeps only the last `window` positions of each window layer (in storage of their
    /// own, so the dropped positions are freed; a narrowed view would hold them all).
    fn trim(&self, kv: Vec<LayerKv>) -> Result<Vec<LayerKv>> {
        kv.into_iter()
            .enumerate()
            .map(|(l, (k, v))| {
                let n = k.dim(1)?;
                Ok(match self.window(l) {
                    Some(w) if n > w => (
                        k.narrow(1, n - w, w)?.force_contiguous()?,
                        v.narrow(1, n - w, w)?.force_contiguous()?,
                    ),
                    _ => (k, v),
                })
            })
            .collect()
    }

    /// How many stored positions of each layer to reuse when the first `usable` tokens of
    /// a node's segment are kept and the rest recomputed; `None` when a trimmed window
    /// layer no longer holds the `window - 1` positions before `usable` (then the whole
    /// segment is recomputed). A layer's stored keys are its last positions up to
    /// `computed`.
    fn reusable(&self, d: &NodeData, usable: usize) -> Result<Option<Vec<usize>>> {
        let mut keep = Vec::with_capacity(d.kv.len());
        for (l, (k, _)) in d.kv.iter().enumerate() {
            let dropped = d.computed - k.dim(1)?.min(d.computed);
            if dropped == 0 {
                keep.push(usable);
                continue;
            }
            match (usable.checked_sub(dropped), self.window(l)) {
                (Some(n), Some(w)) if n + 1 >= w => keep.push(n),
                _ => return Ok(None),
            }
        }
        Ok(Some(keep))
    }

    /// Joins per-node segments along the sequence axis into one tensor per layer; a window
    /// layer gets only the last `window` positions, taken from the trailing segments.
    fn concat(&self, segs: Vec<Vec<LayerKv>>) -> Result<Vec<LayerKv>> {
        let segs: Vec<Vec<LayerKv>> = segs.into_iter().filter(|s| !s.is_empty()).collect();
        let Some(n_layer) = segs.first().map(Vec::len) else {
            return Ok(Vec::new());
        };
        (0..n_layer)
            .map(|l| {
                let parts: Vec<&LayerKv> = segs.iter().map(|s| &s[l]).collect();
                let Some(w) = self.window(l) else {
                    return cat(&parts);
                };
                let (mut from, mut have) = (parts.len(), 0);
                while from > 0 && have < w {
                    from -= 1;
                    have += parts[from].0.dim(1)?;
                }
                let (k, v) = cat(&parts[from..])?;
                Ok(if have > w {
                    (k.narrow(1, have - w, w)?, v.narrow(1, have - w, w)?)
                } else {
                    (k, v)
                })
            })
            .collect()
    }

    fn touch(&self, ids: &[u64]) {
        let mut reg = self.store.reg();
        reg.clock += 1;
        let now = reg.clock;
        for id in ids {
            if let Some(e) = reg.entries.get_mut(id) {
                e.last_used = now;
            }
        }
    }

    fn account(&self, id: u64, bytes: usize, fresh: u64, recomputed: u64) {
        let mut reg = self.store.reg();
        reg.stats.computed_tokens += fresh;
        reg.stats.recomputed_tokens += recomputed;
        reg.clock += 1;
        let now = reg.clock;
        let mut delta_old = 0;
        if let Some(e) = reg.entries.get_mut(&id) {
            delta_old = e.bytes;
            e.bytes = bytes;
            e.last_used = now;
        }
        reg.used = reg.used.saturating_sub(delta_old) + bytes;
        reg.stats.peak_bytes = reg.stats.peak_bytes.max(reg.used);
    }

    /// Drops tensors of least recently used nodes (never those in `pinned`) until the
    /// budget holds. Nodes busy in another thread are skipped, not waited for.
    fn evict(&self, pinned: &[u64]) {
        let mut reg = self.store.reg();
        if reg.used <= self.store.budget {
            return;
        }
        let mut cands: Vec<(u64, u64)> = reg
            .entries
            .iter()
            .filter(|(id, e)| e.bytes > 0 && !pinned.contains(id))
            .map(|(id, e)| (e.last_used, *id))
            .collect();
        cands.sort_unstable();
        let mut held = Vec::new();
        for (_, id) in cands {
            if reg.used <= self.store.budget {
                break;
            }
            let Some(data) = reg.entries.get(&id).and_then(|e| e.data.upgrade()) else {
                continue;
            };
            let freed = match data.try_lock() {
                Ok(mut d) => {
                    let b = d.bytes();
                    d.kv = Vec::new();
                    d.computed = 0;
                    d.logits = None;
                    b
                }
                Err(_) => 0,
            };
            held.push(data);
            if freed > 0 {
                if let Some(e) = reg.entries.get_mut(&id) {
                    e.bytes = 0;
                }
                reg.used = reg.used.saturating_sub(freed);
                reg.stats.evictions += 1;
            }
        }
        drop(reg);
        drop(held);
    }
}

/// Joins `parts` (one layer's consecutive segments) along the sequence axis.
fn cat(parts: &[&LayerKv]) -> Result<LayerKv> {
    if let [one] = parts {
        return Ok((*one).clone());
    }
    let ks: Vec<&Tensor> = parts.iter().map(|p| &p.0).collect();
    let vs: Vec<&Tensor> = parts.iter().map(|p| &p.1).collect();
    Ok((Tensor::cat(&ks, 1)?, Tensor::cat(&vs, 1)?))
}
