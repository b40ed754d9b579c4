//! The 24 game: combine four numbers with + - * / into 24. A puzzle with a known solution
//! that the search must find.

use thinktree_search::{ActionsFn, FnEvaluator, FnProblem, Mcts, MctsConfig, Selection, from_fn};

/// An exact fraction (numerator, denominator > 0), so 8 / 3 * 3 is exactly 8.
type Frac = (i64, i64);

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a.abs() } else { gcd(b, a % b) }
}

fn norm((n, d): Frac) -> Frac {
    let g = gcd(n, d).max(1);
    let s = if d < 0 { -1 } else { 1 };
    (s * n / g, s * d / g)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

/// Combine numbers `i` and `j` (in that order) with `op`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Step {
    i: usize,
    j: usize,
    op: Op,
}

fn combine(a: Frac, b: Frac, op: Op) -> Option<Frac> {
    Some(norm(match op {
        Op::Add => (a.0 * b.1 + b.0 * a.1, a.1 * b.1),
        Op::Sub => (a.0 * b.1 - b.0 * a.1, a.1 * b.1),
        Op::Mul => (a.0 * b.0, a.1 * b.1),
        Op::Div if b.0 == 0 => return None,
        Op::Div => (a.0 * b.1, a.1 * b.0),
    }))
}

fn steps(nums: &[Frac]) -> Vec<(Step, f32)> {
    let mut out = Vec::new();
    for i in 0..nums.len() {
        for j in 0..nums.len() {
            if i == j {
                continue;
            }
            for op in [Op::Add, Op::Sub, Op::Mul, Op::Div] {
                // + and * are symmetric: keep one order.
                if matches!(op, Op::Add | Op::Mul) && i > j {
                    continue;
                }
                if combine(nums[i], nums[j], op).is_some() {
                    out.push((Step { i, j, op }, 1.0));
                }
            }
        }
    }
    out
}

type Game = FnProblem<
    Vec<Frac>,
    Step,
    Box<dyn Fn() -> Vec<Frac> + Sync>,
    fn(&Vec<Frac>, &Step) -> Vec<Frac>,
    fn(&Vec<Frac>) -> Option<f64>,
>;

fn game(start: [i64; 4]) -> Game {
    from_fn(
        Box::new(move || start.iter().map(|&n| (n, 1)).collect()),
        |nums: &Vec<Frac>, s: &Step| {
            let mut rest: Vec<Frac> = nums
                .iter()
                .enumerate()
                .filter(|&(k, _)| k != s.i && k != s.j)
                .map(|(_, &f)| f)
                .collect();
            // `steps` only proposes valid combinations.
            rest.push(combine(nums[s.i], nums[s.j], s.op).unwrap_or((0, 1)));
            rest
        },
        |nums: &Vec<Frac>| (nums.len() == 1).then(|| f64::from(u8::from(nums[0] == (24, 1)))),
    )
}

#[test]
fn solves_4_7_8_8() {
    // (7 - 8 / 8) * 4 = 24
    let problem = game([4, 7, 8, 8]);
    let policy = ActionsFn(|nums: &Vec<Frac>| steps(nums));
    // Heuristic: how close the nearest number is to 24 (the search does the real work).
    let evaluator = FnEvaluator(|nums: &Vec<Frac>| {
        let best = nums
            .iter()
            .map(|&(n, d)| (n as f64 / d as f64 - 24.0).abs())
            .fold(f64::INFINITY, f64::min);
        0.5 / (1.0 + best)
    });
    for (seed, batch) in [(1, 1), (2, 8)] {
        let config = MctsConfig::builder()
            .selection(Selection::Puct { c: 1.5 })
            .simulations(20_000)
            .batch_size(batch)
            .seed(seed)
            .build()
            .unwrap();
        let mut search = Mcts::new(config).unwrap();
        let result = search.run(&problem, &policy, &evaluator).unwrap();
        // A value-1 terminal proves the root: the search stops and the best path is a solution.
        assert_eq!(result.solved, Some(1.0));
        let mut nums: Vec<Frac> = vec![(4, 1), (7, 1), (8, 1), (8, 1)];
        for s in &result.best_path_by_value {
            nums = thinktree_search::Problem::apply(&problem, &nums, s).unwrap();
        }
        assert_eq!(nums, vec![(24, 1)], "path {:?}", result.best_path_by_value);
        assert!(result.terminals.iter().any(|t| t.value == 1.0));
        assert!(result.stats.simulations < 20_000);
    }
}
