//! Simulations per second of the search core on a synthetic tree (branching 8, depth 10,
//! value = hash of the path): sequential, with leaf batching, and with root parallelism on
//! one thread and on all threads. The callbacks cost nanoseconds, so this measures the
//! search's own overhead per simulation.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use thinktree_search::synthetic::SyntheticTree;
use thinktree_search::{Mcts, MctsConfig, root_parallel};

const TREE: SyntheticTree = SyntheticTree {
    branching: 8,
    depth: 10,
};
const SIMS: u64 = 20_000;

fn config(batch: usize) -> MctsConfig {
    MctsConfig::builder()
        .simulations(SIMS)
        .batch_size(batch)
        .build()
        .expect("valid config")
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("synthetic_b8_d10");
    g.throughput(Throughput::Elements(SIMS))
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for batch in [1usize, 16] {
        g.bench_function(format!("sequential_batch{batch}"), |b| {
            b.iter(|| {
                let mut m = Mcts::new(config(batch)).expect("valid config");
                black_box(m.run(&TREE, &TREE, &TREE).expect("search runs").stats)
            })
        });
    }
    let threads = rayon::current_num_threads();
    for trees in [1usize, threads] {
        g.bench_function(format!("root_parallel_{trees}trees"), |b| {
            b.iter(|| {
                black_box(
                    root_parallel(&config(1), trees, &TREE, &TREE, &TREE)
                        .expect("search runs")
                        .stats,
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
