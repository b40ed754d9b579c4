//! treant 0.4 vs thinktree-search on the same synthetic tree (branching 8, depth 10, value =
//! a hash of the path), measured in the same process, one after the other.
//!
//! Usage: `cargo run --release -- [seconds-per-measurement] [playouts-per-search] [rounds]`.
//! Each measurement repeats fresh searches of `playouts-per-search` playouts until the time
//! is up; contenders are interleaved for `rounds` rounds and the median playouts/s is shown.

use std::time::{Duration, Instant};
use thinktree_search::synthetic::{SyntheticState, SyntheticTree, mix, unit};
use thinktree_search::{Mcts, MctsConfig, Selection, root_parallel};
use treant::tree_policy::UCTPolicy;
use treant::{CycleBehaviour, Evaluator, GameState, MCTS, MCTSManager, SearchHandle};

const TREE: SyntheticTree = SyntheticTree {
    branching: 8,
    depth: 10,
};
/// treant rewards are integers: values in [0, 1] are scaled by this.
const SCALE: f64 = 1000.0;

#[derive(Clone)]
struct Synth(SyntheticState);

impl GameState for Synth {
    type Move = u32;
    type Player = ();
    type MoveList = Vec<u32>;
    fn current_player(&self) {}
    fn available_moves(&self) -> Vec<u32> {
        if self.0.depth >= TREE.depth {
            Vec::new()
        } else {
            (0..TREE.branching).collect()
        }
    }
    fn make_move(&mut self, m: &u32) {
        // The very transition thinktree-search's SyntheticTree uses.
        self.0 = thinktree_search::Problem::apply(&TREE, &self.0, m).unwrap_or(self.0);
    }
}

struct Eval;

impl Evaluator<Spec> for Eval {
    type StateEvaluation = i64;
    fn evaluate_new_state(
        &self,
        s: &Synth,
        moves: &Vec<u32>,
        _: Option<SearchHandle<Spec>>,
    ) -> (Vec<()>, i64) {
        let v = if s.0.depth >= TREE.depth {
            unit(s.0.hash)
        } else {
            unit(mix(s.0.hash))
        };
        (vec![(); moves.len()], (v * SCALE) as i64)
    }
    fn evaluate_existing_state(&self, _: &Synth, e: &i64, _: SearchHandle<Spec>) -> i64 {
        *e
    }
    fn interpret_evaluation_for_player(&self, e: &i64, _: &()) -> i64 {
        *e
    }
}

#[derive(Default)]
struct Spec;

impl MCTS for Spec {
    type State = Synth;
    type Eval = Eval;
    type NodeData = ();
    type ExtraThreadData = ();
    type TreePolicy = UCTPolicy;
    type TranspositionTable = ();
    fn cycle_behaviour(&self) -> CycleBehaviour<Self> {
        CycleBehaviour::Ignore
    }
}

/// Repeats `search` (which runs `n` playouts) until `secs` have passed; playouts per second.
fn measure(secs: f64, n: u64, mut search: impl FnMut()) -> f64 {
    search(); // warm-up: page in the allocator and code
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < Duration::from_secs_f64(secs) {
        search();
        done += n;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

fn treant(n: u64, threads: usize) {
    // treant's UCT is mean + c·2·sqrt(ln N / n) on integer rewards: c = √2/2 · SCALE matches
    // thinktree's mean + √2·sqrt(ln N / n) on [0, 1].
    let c = std::f64::consts::SQRT_2 / 2.0 * SCALE;
    let mut m = MCTSManager::new(
        Synth(SyntheticState { hash: 0, depth: 0 }),
        Spec,
        Eval,
        UCTPolicy::new(c),
        (),
    );
    if threads == 1 {
        m.playout_n(n);
    } else {
        m.playout_n_parallel(n as u32, threads);
    }
    std::hint::black_box(m.best_move());
}

fn ours(n: u64, batch: usize, trees: usize) {
    let cfg = MctsConfig::builder()
        .selection(Selection::Uct {
            c: std::f64::consts::SQRT_2,
        })
        .simulations(n)
        .batch_size(batch)
        .build()
        .expect("valid config");
    let r = if trees == 1 {
        Mcts::new(cfg)
            .and_then(|mut m| m.run(&TREE, &TREE, &TREE))
            .expect("search runs")
    } else {
        root_parallel(&cfg, trees, &TREE, &TREE, &TREE).expect("search runs")
    };
    assert!(r.stats.simulations == n);
    std::hint::black_box(r.best_action_by_visits);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let threads = std::thread::available_parallelism().map_or(2, |t| t.get());
    println!(
        "synthetic tree: branching {}, depth {}; {n} playouts per search; {secs}s per measurement; {threads} hardware threads; median of interleaved rounds",
        TREE.branching, TREE.depth
    );
    // Interleave the contenders and keep the median of each: the machine may be shared, and
    // interleaving exposes every contender to the same background load.
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut runs: [Vec<f64>; 5] = Default::default();
    for _ in 0..rounds {
        runs[0].push(measure(secs, n, || treant(n, 1)));
        runs[1].push(measure(secs, n, || ours(n, 1, 1)));
        runs[2].push(measure(secs, n, || ours(n, 16, 1)));
        runs[3].push(measure(secs, n, || treant(n, 2)));
        runs[4].push(measure(secs, n, || ours(n, 1, 2)));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let [t1, o1, ob, t2, o2] = runs.each_mut().map(median);
    let row = |name: &str, v: f64, base: f64| {
        println!(
            "{name:<44} {:>12.0} playouts/s  {:>7.1} ns/playout  x{:.2} vs treant",
            v,
            1e9 / v,
            v / base
        )
    };
    row("treant 0.4, 1 thread", t1, t1);
    row("thinktree-search, sequential, 1 thread", o1, t1);
    row("thinktree-search, batch 16, 1 thread", ob, t1);
    row("treant 0.4, 2 threads (shared tree)", t2, t2);
    row("thinktree-search, 2 trees (root parallel)", o2, t2);
}
