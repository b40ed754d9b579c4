//! Continuous batching across searches: every sampling call on one engine, from any
//! thread, decodes through one scheduler, which merges the decode steps of all calls in
//! flight into one forward pass per token.
//!
//! **Why a thread of its own, with a rayon pool of its own.** A decode step of one row
//! reads every weight once (~65 MB for SmolLM2 in 4-bit), and so does a step of 30 rows:
//! a lone greedy chain or a 3-node MCTS frontier leaves most of a step's weight reads
//! unshared. Merged, concurrent solves share them. The calls block while the scheduler
//! works, so the scheduler cannot borrow their threads: callers inside a rayon pool (a
//! `par_iter` over problems) would otherwise leave the forward pass no thread to run on,
//! or deadlock it. Rows join and leave between steps; a call's rows keep their own
//! generators, prefixes and keys, and the kernels compute each row by the same
//! instructions whatever batch it is in, so a call's results are bit for bit those of
//! running it alone (tested in `engine_tiny.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::decode::{Decode, StepInputs};
use crate::error::{Error, Result};
use crate::model::{Model, RowStep};
use thinktree_gguf::GgufTokenizer;

/// What an engine's scheduler has done since the engine was loaded
/// ([`crate::LocalEngine::batch_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Forward passes the scheduler ran (one decode step each).
    pub steps: u64,
    /// Steps that carried rows of more than one sampling call.
    pub merged_steps: u64,
    /// Rows decoded, summed over steps (`rows / steps` is the mean batch).
    pub rows: u64,
    /// The most sampling calls one step carried.
    pub most_calls: u64,
}

#[derive(Debug, Default)]
struct Counters {
    steps: AtomicU64,
    merged_steps: AtomicU64,
    rows: AtomicU64,
    most_calls: AtomicU64,
    /// Test seam: the next round panics, as a bug in a forward pass would.
    #[cfg(test)]
    panic_next: std::sync::atomic::AtomicBool,
}

/// One sampling call waiting for its rows to finish.
struct Job {
    decode: Decode,
    reply: SyncSender<Result<Decode>>,
}

impl Job {
    fn answer(self, result: Result<()>) {
        // A caller that went away (it cannot: it blocks until answered) has nothing to read.
        let _ = self.reply.send(result.map(|()| self.decode));
    }
}

/// The scheduler of one engine: started on the first sampling call, stopped when the
/// engine is dropped (its queue closes).
#[derive(Debug)]
pub(crate) struct Scheduler {
    model: Arc<Model>,
    tokenizer: Arc<GgufTokenizer>,
    queue: Mutex<Option<Sender<Job>>>,
    counters: Arc<Counters>,
}

impl Scheduler {
    pub(crate) fn new(model: Arc<Model>, tokenizer: Arc<GgufTokenizer>) -> Self {
        Self {
            model,
            tokenizer,
            queue: Mutex::new(None),
            counters: Arc::default(),
        }
    }

    /// Decodes `decode`'s rows to the end, merged with whatever other calls are in flight.
    pub(crate) fn run(&self, decode: Decode) -> Result<Decode> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.sender()?
            .send(Job { decode, reply })
            .map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }

    pub(crate) fn stats(&self) -> BatchStats {
        let c = &self.counters;
        BatchStats {
            steps: c.steps.load(Ordering::Relaxed),
            merged_steps: c.merged_steps.load(Ordering::Relaxed),
            rows: c.rows.load(Ordering::Relaxed),
            most_calls: c.most_calls.load(Ordering::Relaxed),
        }
    }

    /// The queue, starting the scheduler thread on first use.
    fn sender(&self) -> Result<Sender<Job>> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = queue.as_ref() {
            return Ok(tx.clone());
        }
        // As wide as rayon's global pool would be (RAYON_NUM_THREADS or the CPU count).
        let pool = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("thinktree-decode-{i}"))
            .build()
            .map_err(|e| Error::Scheduler(format!("starting its thread pool: {e}")))?;
        let (tx, rx) = mpsc::channel();
        let (model, tokenizer, counters) = (
            Arc::clone(&self.model),
            Arc::clone(&self.tokenizer),
            Arc::clone(&self.counters),
        );
        std::thread::Builder::new()
            .name("thinktree-scheduler".into())
            .spawn(move || pool.install(move || serve(rx, &model, &tokenizer, &counters)))
            .map_err(|e| Error::Scheduler(format!("starting its thread: {e}")))?;
        *queue = Some(tx.clone());
        Ok(tx)
    }
}

fn gone() -> Error {
    Error::Scheduler(
        "the decode scheduler dropped this call: a decode step panicked (a bug; its message \
         is on stderr) or the engine stopped"
            .into(),
    )
}

#[cfg(test)]
impl Scheduler {
    /// Makes the next scheduling round panic (tests of the recovery).
    pub(crate) fn panic_next_round(&self) {
        self.counters.panic_next.store(true, Ordering::SeqCst);
    }
}

/// The scheduler loop: take in new calls, draw every call's next tokens, answer the calls
/// whose rows all stopped, run one merged step for the rest; sleep when there is nothing.
///
/// A panic in a round (a bug: bad input is a typed error before any arithmetic) must not
/// leave the engine unable to sample. It is caught here: the calls in that round are
/// dropped with their reply channels, so each of their callers gets [`Error::Scheduler`]
/// rather than a hang, and the loop goes on serving new calls. Nothing shared is left half
/// done: the model is read-only and each call's decode state is its own.
fn serve(rx: Receiver<Job>, model: &Model, tokenizer: &GgufTokenizer, counters: &Counters) {
    let stops = (tokenizer.eos_token_ids(), model.config().context_length);
    let mut live: Vec<Job> = Vec::new();
    loop {
        if live.is_empty() {
            match rx.recv() {
                Ok(job) => live.push(job),
                Err(_) => return,
            }
        }
        live.extend(rx.try_iter());
        let jobs = std::mem::take(&mut live);
        let round = || round(jobs, model, tokenizer, stops, counters);
        live = std::panic::catch_unwind(std::panic::AssertUnwindSafe(round)).unwrap_or_default();
    }
}

/// One round: every call draws its next tokens; calls whose rows all stopped are
/// answered, the rest take one merged step. Returns the calls still live.
fn round(
    mut live: Vec<Job>,
    model: &Model,
    tokenizer: &GgufTokenizer,
    (eos, max_ctx): (&[u32], usize),
    counters: &Counters,
) -> Vec<Job> {
    #[cfg(test)]
    if counters.panic_next.swap(false, Ordering::SeqCst) {
        panic!("test: a scheduling round panics");
    }
    let drawn: Vec<Result<bool>> = live
        .par_iter_mut()
        .map(|job| job.decode.draw(tokenizer, eos, max_ctx))
        .collect();
    let mut going = Vec::with_capacity(live.len());
    for (job, drawn) in live.drain(..).zip(drawn) {
        match drawn {
            Ok(true) => going.push(job),
            Ok(false) => job.answer(Ok(())),
            Err(e) => job.answer(Err(e)),
        }
    }
    step(going, model, counters)
}

/// One forward pass for every live call; returns the calls still live (a call whose step
/// failed is answered with its error).
fn step(mut live: Vec<Job>, model: &Model, counters: &Counters) -> Vec<Job> {
    if live.is_empty() {
        return live;
    }
    let merged = {
        let inputs: Vec<StepInputs<'_>> = live.iter().map(|j| j.decode.inputs()).collect();
        let steps: Vec<RowStep<'_>> = inputs.iter().map(StepInputs::step).collect();
        model.forward_steps(&steps, true)
    };
    let rows: u64 = live.iter().map(|j| j.decode.active_rows() as u64).sum();
    counters.steps.fetch_add(1, Ordering::Relaxed);
    counters.rows.fetch_add(rows, Ordering::Relaxed);
    counters
        .most_calls
        .fetch_max(live.len() as u64, Ordering::Relaxed);
    if live.len() > 1 {
        counters.merged_steps.fetch_add(1, Ordering::Relaxed);
    }
    let outs = match merged {
        Ok(outs) => outs.into_iter().map(Ok).collect(),
        // One call's inputs are bad (every check runs before any arithmetic): each step
        // alone, so only that call fails.
        Err(_) if live.len() > 1 => live
            .iter()
            .map(|j| {
                let inputs = j.decode.inputs();
                model
                    .forward_steps(&[inputs.step()], true)
                    .and_then(|mut o| o.pop().ok_or_else(|| Error::Shape("lost a step".into())))
            })
            .collect(),
        Err(e) => vec![Err(e)],
    };
    let mut going = Vec::with_capacity(live.len());
    for (mut job, out) in live.drain(..).zip(outs) {
        match out.and_then(|(logits, kv)| job.decode.absorb(logits, kv)) {
            Ok(()) => going.push(job),
            Err(e) => job.answer(Err(e)),
        }
    }
    going
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use thinktree_engine::{Engine, SampleParams, StopCondition};

    use crate::engine::EngineOptions;
    use crate::testing::{TinyModelConfig, tiny_engine};

    /// A round that panics fails the call in it with a typed error, and the engine samples
    /// on: the next call gets what an engine that never panicked gives.
    #[test]
    fn a_panicking_round_fails_its_call_and_the_engine_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let e = tiny_engine(
            dir.path(),
            &TinyModelConfig::default(),
            EngineOptions::default(),
        )
        .unwrap();
        let (state, _) = e.extend_tokens(&e.root(), &[1, 2, 3]).unwrap();
        let p = SampleParams {
            temperature: 0.9,
            top_k: None,
            top_p: None,
            stop: StopCondition::tokens(6),
            seed: 7,
        };
        let before = e.sample(&state, 3, &p).unwrap().0;
        e.panic_next_scheduler_round();
        let err = e.sample(&state, 3, &p).unwrap_err().to_string();
        assert!(err.contains("decode scheduler dropped this call"), "{err}");
        let after = e.sample(&state, 3, &p).unwrap().0;
        let tokens = |c: &[thinktree_engine::Continuation<_>]| -> Vec<Vec<u32>> {
            c.iter().map(|c| c.tokens.clone()).collect()
        };
        assert_eq!(tokens(&after), tokens(&before));
        assert_eq!(after.len(), 3);
    }
}
