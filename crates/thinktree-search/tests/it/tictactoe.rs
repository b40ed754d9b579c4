//! Tic-tac-toe, a two-player zero-sum game: immediate wins are taken, immediate losses
//! blocked, and MCTS against MCTS from the empty board draws.

use rand::RngCore;
use thinktree_search::{
    ActionsFn, FnEvaluator, FnRollout, Mcts, MctsConfig, Player, Problem, Result, StopReason,
    root_parallel,
};

#[derive(Clone, Debug, PartialEq, Eq)]
struct Board {
    cells: [u8; 9], // 0 empty, 1 X (first player), 2 O
    to_move: Player,
}

const LINES: [[usize; 3]; 8] = [
    [0, 1, 2],
    [3, 4, 5],
    [6, 7, 8],
    [0, 3, 6],
    [1, 4, 7],
    [2, 5, 8],
    [0, 4, 8],
    [2, 4, 6],
];

impl Board {
    fn parse(s: &str, to_move: Player) -> Board {
        let mut cells = [0u8; 9];
        for (i, ch) in s.chars().filter(|c| !c.is_whitespace()).enumerate() {
            cells[i] = match ch {
                'X' => 1,
                'O' => 2,
                _ => 0,
            };
        }
        Board { cells, to_move }
    }
    fn winner(&self) -> Option<u8> {
        LINES.iter().find_map(|l| {
            let a = self.cells[l[0]];
            (a != 0 && a == self.cells[l[1]] && a == self.cells[l[2]]).then_some(a)
        })
    }
    fn moves(&self) -> Vec<usize> {
        if self.winner().is_some() {
            return Vec::new();
        }
        (0..9).filter(|&i| self.cells[i] == 0).collect()
    }
}

struct TicTacToe(Board);

impl Problem for TicTacToe {
    type State = Board;
    type Action = usize;
    fn initial_state(&self) -> Result<Board> {
        Ok(self.0.clone())
    }
    fn apply(&self, s: &Board, a: &usize) -> Result<Board> {
        let mut b = s.clone();
        b.cells[*a] = if s.to_move == Player::First { 1 } else { 2 };
        b.to_move = s.to_move.opponent();
        Ok(b)
    }
    fn terminal_value(&self, s: &Board) -> Option<f64> {
        match s.winner() {
            Some(1) => Some(1.0),
            Some(_) => Some(-1.0),
            None if s.cells.iter().all(|&c| c != 0) => Some(0.0),
            None => None,
        }
    }
    fn to_move(&self, s: &Board) -> Player {
        s.to_move
    }
}

fn config(sims: u64, seed: u64) -> MctsConfig {
    MctsConfig::builder()
        .simulations(sims)
        .value_bounds(-1.0, 1.0)
        .seed(seed)
        .build()
        .unwrap()
}

fn best_move(board: &Board, sims: u64, seed: u64, batch: usize) -> (usize, StopReason) {
    let policy = ActionsFn(|b: &Board| b.moves().into_iter().map(|m| (m, 1.0)).collect());
    let rollout = FnRollout(|b: &Board, rng: &mut dyn RngCore| {
        let moves = b.moves();
        (!moves.is_empty()).then(|| moves[rng.next_u32() as usize % moves.len()])
    });
    let evaluator = FnEvaluator(|_: &Board| 0.0);
    let mut cfg = config(sims, seed);
    cfg.batch_size = batch;
    let mut search = Mcts::new(cfg).unwrap();
    let r = search
        .run_with_rollout(&TicTacToe(board.clone()), &policy, &rollout, &evaluator)
        .unwrap();
    (r.best_action_by_visits.unwrap(), r.stats.stop_reason)
}

#[test]
fn takes_immediate_win() {
    // X to move wins at 2 (top row). O also threatens the middle row, so only 2 is right.
    let board = Board::parse("XX. OO. ...", Player::First);
    for seed in 0..4 {
        let (m, reason) = best_move(&board, 2_000, seed, 1);
        assert_eq!(m, 2);
        // The win is proven as soon as the root is expanded.
        assert_eq!(reason, StopReason::Solved);
    }
    // Same for O, the second player, whose values are flipped.
    let board = Board::parse("OO. XX. X..", Player::Second);
    assert_eq!(best_move(&board, 2_000, 3, 4).0, 2);
}

#[test]
fn blocks_immediate_loss() {
    // O to move must block X's top row at 2.
    let board = Board::parse("XX. .O. ...", Player::Second);
    for seed in 0..4 {
        assert_eq!(best_move(&board, 3_000, seed, 1).0, 2, "seed {seed}");
        assert_eq!(
            best_move(&board, 3_000, seed, 8).0,
            2,
            "batched, seed {seed}"
        );
    }
}

#[test]
fn self_play_from_empty_board_draws() {
    for seed in 0..3 {
        let mut board = Board::parse(".........", Player::First);
        let game = TicTacToe(board.clone());
        let mut ply = 0;
        while game.terminal_value(&board).is_none() {
            let (m, _) = best_move(&board, 4_000, seed * 100 + ply, 1 + (ply as usize % 3));
            board = game.apply(&board, &m).unwrap();
            ply += 1;
        }
        assert_eq!(
            game.terminal_value(&board),
            Some(0.0),
            "seed {seed}: {board:?}"
        );
    }
}

#[test]
fn root_parallel_finds_the_win() {
    let board = Board::parse("XX. OO. ...", Player::First);
    let policy = ActionsFn(|b: &Board| b.moves().into_iter().map(|m| (m, 1.0)).collect());
    let evaluator = FnEvaluator(|_: &Board| 0.0);
    let r = root_parallel(&config(2_000, 1), 3, &TicTacToe(board), &policy, &evaluator).unwrap();
    assert_eq!(r.best_action_by_visits, Some(2));
    assert_eq!(r.best_path_by_visits.first(), Some(&2));
}
