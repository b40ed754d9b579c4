//! Training a [`ValueHead`] on labelled feature vectors.
//!
//! AdamW ([`candle_nn::AdamW`]) on binary cross-entropy against soft labels (the
//! Monte-Carlo estimates), minibatches in a seeded order, and a validation split by
//! problem (all records of one problem fall on the same side, so the validation figures
//! are about unseen problems, not unseen siblings of seen steps).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::error::{Error, Result};

use crate::head::ValueHead;

/// One training example.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The feature vector (the model's hidden state after the step).
    pub features: Vec<f32>,
    /// The soft label in `[0, 1]` (the step's Monte-Carlo estimate).
    pub label: f32,
    /// The group the validation split keeps together (the problem id).
    pub group: String,
}

/// Training settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Hidden units of the head.
    pub hidden: usize,
    /// Share of problems held out for validation, in `[0, 1)`.
    pub val_frac: f64,
    /// Seed of the initialisation, the split and the shuffles.
    pub seed: u64,
    /// Examples per optimiser step.
    pub batch_size: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 30,
            lr: 1e-3,
            weight_decay: 1e-2,
            hidden: 64,
            val_frac: 0.2,
            seed: 0,
            batch_size: 64,
        }
    }
}

impl TrainConfig {
    /// Checks every range.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 || self.hidden == 0 || self.batch_size == 0 {
            return Err(Error::InvalidConfig(
                "epochs, hidden and batch_size must be >= 1".into(),
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::InvalidConfig(format!(
                "lr must be > 0, got {}",
                self.lr
            )));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::InvalidConfig("weight_decay must be >= 0".into()));
        }
        if !(0.0..1.0).contains(&self.val_frac) {
            return Err(Error::InvalidConfig(format!(
                "val_frac must be in [0, 1), got {}",
                self.val_frac
            )));
        }
        Ok(())
    }
}

/// Figures of one epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's minibatches.
    pub train_loss: f32,
    /// Validation loss (None without a validation set).
    pub val_loss: Option<f32>,
    /// Validation accuracy: the share of examples where `value >= 0.5` agrees with
    /// `label >= 0.5` (None without a validation set).
    pub val_acc: Option<f32>,
}

/// What [`train`] returns.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The trained head.
    pub head: ValueHead,
    /// One entry per epoch.
    pub history: Vec<EpochStats>,
    /// Training and validation example counts.
    pub sizes: (usize, usize),
}

/// Mean binary cross-entropy of `logits` against soft labels `y`, computed stably:
/// `max(z, 0) - y·z + ln(1 + e^{-|z|})`.
pub fn bce_with_logits(logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    let z = logits.flatten_all()?;
    let y = y.flatten_all()?;
    let soft = (z.abs()?.neg()?.exp()? + 1.0)?.log()?;
    Ok((z.relu()? - (&y * &z)?)?.add(&soft)?.mean_all()?)
}

fn matrix(examples: &[&Example], dim: usize) -> Result<(Tensor, Tensor)> {
    let flat: Vec<f32> = examples
        .iter()
        .flat_map(|e| e.features.iter().copied())
        .collect();
    let labels: Vec<f32> = examples.iter().map(|e| e.label).collect();
    Ok((
        Tensor::from_vec(flat, (examples.len(), dim), &Device::Cpu)?,
        Tensor::from_vec(labels, examples.len(), &Device::Cpu)?,
    ))
}

/// Loss and accuracy of `head` on `examples`.
pub fn evaluate(head: &ValueHead, examples: &[&Example]) -> Result<(f32, f32)> {
    let (x, y) = matrix(examples, head.input_dim())?;
    let logits = head.logits(&x)?;
    let loss = bce_with_logits(&logits, &y)?.to_scalar::<f32>()?;
    let p = logits.flatten_all()?.to_vec1::<f32>()?;
    let hits = p
        .iter()
        .zip(examples)
        .filter(|(z, e)| (**z >= 0.0) == (e.label >= 0.5))
        .count();
    Ok((loss, hits as f32 / examples.len().max(1) as f32))
}

/// Trains a fresh head; `on_epoch` sees each epoch's figures as they come (for a progress
/// bar). Examples must all have the same, non-zero feature length and labels in `[0, 1]`.
pub fn train(
    examples: &[Example],
    cfg: &TrainConfig,
    mut on_epoch: impl FnMut(&EpochStats),
) -> Result<Trained> {
    cfg.validate()?;
    let dim = examples.first().map_or(0, |e| e.features.len());
    if examples.is_empty() || dim == 0 {
        return Err(Error::InvalidConfig(
            "no training examples (or empty feature vectors)".into(),
        ));
    }
    if let Some(bad) = examples.iter().find(|e| e.features.len() != dim) {
        return Err(Error::WeightShape {
            what: "training features".into(),
            expected: vec![dim],
            found: vec![bad.features.len()],
        });
    }
    if examples
        .iter()
        .any(|e| !(e.label.is_finite() && (0.0..=1.0).contains(&e.label)))
    {
        return Err(Error::InvalidConfig("labels must be in [0, 1]".into()));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    // Split by group when there are several; otherwise by example.
    let groups: BTreeSet<&str> = examples.iter().map(|e| e.group.as_str()).collect();
    let (train_set, val_set): (Vec<&Example>, Vec<&Example>) = if groups.len() >= 2 {
        let mut g: Vec<&str> = groups.into_iter().collect();
        g.shuffle(&mut rng);
        let n_val = ((g.len() as f64 * cfg.val_frac).round() as usize).min(g.len() - 1);
        let val: BTreeSet<&str> = g[..n_val].iter().copied().collect();
        examples
            .iter()
            .partition(|e| !val.contains(e.group.as_str()))
    } else {
        let mut idx: Vec<&Example> = examples.iter().collect();
        idx.shuffle(&mut rng);
        let n_val =
            ((idx.len() as f64 * cfg.val_frac).round() as usize).min(idx.len().saturating_sub(1));
        let val = idx.split_off(idx.len() - n_val);
        (idx, val)
    };
    let mut head = ValueHead::new(dim, cfg.hidden, cfg.seed)?;
    let (x_all, _) = matrix(&train_set, dim)?;
    head.fit_normalizer(&x_all)?;
    let mut opt = AdamW::new(
        head.vars(),
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    let mut history = Vec::with_capacity(cfg.epochs);
    let mut order: Vec<&Example> = train_set.clone();
    for epoch in 1..=cfg.epochs {
        order.shuffle(&mut rng);
        let (mut sum, mut n) = (0.0f32, 0usize);
        for batch in order.chunks(cfg.batch_size) {
            let (x, y) = matrix(batch, dim)?;
            let loss = bce_with_logits(&head.logits(&x)?, &y)?;
            opt.backward_step(&loss)?;
            sum += loss.to_scalar::<f32>()? * batch.len() as f32;
            n += batch.len();
        }
        let (val_loss, val_acc) = if val_set.is_empty() {
            (None, None)
        } else {
            let (l, a) = evaluate(&head, &val_set)?;
            (Some(l), Some(a))
        };
        let stats = EpochStats {
            epoch,
            train_loss: sum / n.max(1) as f32,
            val_loss,
            val_acc,
        };
        on_epoch(&stats);
        history.push(stats);
    }
    Ok(Trained {
        head,
        history,
        sizes: (train_set.len(), val_set.len()),
    })
}

/// Writes the history as CSV: `epoch,train_loss,val_loss,val_acc` (empty cells without a
/// validation set).
pub fn write_history_csv(path: &Path, history: &[EpochStats]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    writeln!(f, "epoch,train_loss,val_loss,val_acc").map_err(io)?;
    let cell = |v: Option<f32>| v.map_or(String::new(), |x| format!("{x:.6}"));
    for s in history {
        writeln!(
            f,
            "{},{:.6},{},{}",
            s.epoch,
            s.train_loss,
            cell(s.val_loss),
            cell(s.val_acc)
        )
        .map_err(io)?;
    }
    f.flush().map_err(io)
}
