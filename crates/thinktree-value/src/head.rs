//! The value head: a small MLP over the frozen model's final hidden state.
//!
//! `v(x) = sigmoid(w2 · relu(w1 · (x - mean) / std + b1) + b2)`: the input is standardised
//! with statistics of the training set (stored with the weights), so the raw hidden
//! vector's scale never reaches the optimiser. Weights live in one safetensors file with
//! fixed tensor names; loading checks every name and shape, so a wrong or corrupt file is
//! a typed error, never a panic or a silently wrong score.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};

/// The weight-file layout version (the `meta.version` tensor).
pub const HEAD_FORMAT_VERSION: u32 = 1;

const W1: &str = "head.w1";
const B1: &str = "head.b1";
const W2: &str = "head.w2";
const B2: &str = "head.b2";
const MEAN: &str = "norm.mean";
const STD: &str = "norm.std";
const VERSION: &str = "meta.version";

/// A trained (or freshly initialised) value head.
#[derive(Debug, Clone)]
pub struct ValueHead {
    w1: Var,
    b1: Var,
    w2: Var,
    b2: Var,
    mean: Tensor,
    std: Tensor,
    input_dim: usize,
    hidden: usize,
}

fn weight_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::WeightFile {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

impl ValueHead {
    /// A new head for `input_dim` features with `hidden` units, initialised from `seed`
    /// (Kaiming-normal first layer, small second layer, zero biases); the input statistics
    /// start as mean 0, std 1.
    pub fn new(input_dim: usize, hidden: usize, seed: u64) -> Result<Self> {
        if input_dim == 0 || hidden == 0 {
            return Err(Error::InvalidConfig(
                "value head needs input_dim >= 1 and hidden >= 1".into(),
            ));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        // Box-Muller: a seeded normal without another dependency.
        let mut draw = |n: usize, std: f64| -> Result<Vec<f32>> {
            Ok((0..n)
                .map(|_| {
                    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                    let u2: f64 = rng.random::<f64>();
                    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                    (z * std) as f32
                })
                .collect())
        };
        let dev = Device::Cpu;
        let w1 = Tensor::from_vec(
            draw(hidden * input_dim, (2.0 / input_dim as f64).sqrt())?,
            (hidden, input_dim),
            &dev,
        )?;
        let w2 = Tensor::from_vec(
            draw(hidden, 0.1 / (hidden as f64).sqrt())?,
            (1, hidden),
            &dev,
        )?;
        Ok(Self {
            w1: Var::from_tensor(&w1)?,
            b1: Var::zeros(hidden, DType::F32, &dev)?,
            w2: Var::from_tensor(&w2)?,
            b2: Var::zeros(1, DType::F32, &dev)?,
            mean: Tensor::zeros(input_dim, DType::F32, &dev)?,
            std: Tensor::ones(input_dim, DType::F32, &dev)?,
            input_dim,
            hidden,
        })
    }

    /// Features per input (the model's hidden size).
    pub fn input_dim(&self) -> usize {
        self.input_dim
    }

    /// Hidden units.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// The trainable parameters (for an optimiser).
    pub fn vars(&self) -> Vec<Var> {
        vec![
            self.w1.clone(),
            self.b1.clone(),
            self.w2.clone(),
            self.b2.clone(),
        ]
    }

    /// Sets the input standardisation from the feature matrix `(n, input_dim)` of a
    /// training set (std floored so constant features do not blow up).
    pub fn fit_normalizer(&mut self, x: &Tensor) -> Result<()> {
        self.check_input(x)?;
        let mean = x.mean(0)?;
        let var = x.broadcast_sub(&mean)?.sqr()?.mean(0)?;
        self.std = (var.sqrt()? + 1e-4)?;
        self.mean = mean;
        Ok(())
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        let dims = x.dims();
        if dims.len() != 2 || dims[1] != self.input_dim {
            return Err(Error::WeightShape {
                what: "value-head input".into(),
                expected: vec![dims.first().copied().unwrap_or(0), self.input_dim],
                found: dims.to_vec(),
            });
        }
        Ok(())
    }

    /// Logits `(n, 1)` for features `(n, input_dim)`.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        let x = x.broadcast_sub(&self.mean)?.broadcast_div(&self.std)?;
        let h = x
            .matmul(&self.w1.as_tensor().t()?)?
            .broadcast_add(self.b1.as_tensor())?
            .relu()?;
        Ok(h.matmul(&self.w2.as_tensor().t()?)?
            .broadcast_add(self.b2.as_tensor())?)
    }

    /// Values in `[0, 1]`, one per feature vector.
    pub fn predict(&self, features: &[Vec<f32>]) -> Result<Vec<f32>> {
        if features.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(bad) = features.iter().find(|f| f.len() != self.input_dim) {
            return Err(Error::WeightShape {
                what: "value-head input (model hidden size)".into(),
                expected: vec![self.input_dim],
                found: vec![bad.len()],
            });
        }
        let flat: Vec<f32> = features.iter().flatten().copied().collect();
        let x = Tensor::from_vec(flat, (features.len(), self.input_dim), &Device::Cpu)?;
        let p = candle_nn::ops::sigmoid(&self.logits(&x)?)?;
        let p = p.flatten_all()?.to_vec1::<f32>()?;
        // Finite weights can still overflow on extreme features (inf - inf): an error,
        // never a NaN passed off as a value.
        if p.iter().any(|v| v.is_nan()) {
            return Err(Error::NonFinite(
                "its output is not a number for these features (the weights overflow)".into(),
            ));
        }
        Ok(p)
    }

    /// Writes the head as safetensors.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dev = Device::Cpu;
        let tensors: HashMap<String, Tensor> = [
            (W1, self.w1.as_tensor().clone()),
            (B1, self.b1.as_tensor().clone()),
            (W2, self.w2.as_tensor().clone()),
            (B2, self.b2.as_tensor().clone()),
            (MEAN, self.mean.clone()),
            (STD, self.std.clone()),
            (VERSION, Tensor::new(&[HEAD_FORMAT_VERSION], &dev)?),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        candle_core::safetensors::save(&tensors, path)
            .map_err(|e| weight_err(path, format!("cannot write: {e}")))
    }

    /// Reads a head written by [`ValueHead::save`]. An unreadable file, a file that is not
    /// safetensors, a missing tensor or another format version is [`Error::WeightFile`];
    /// tensors of inconsistent shapes are [`Error::WeightShape`].
    pub fn load(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).map_err(|e| weight_err(path, format!("cannot read: {e}")))?;
        Self::from_bytes(path, &bytes)
    }

    /// [`ValueHead::load`] from the file's bytes; `path` only names them in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self> {
        let mut t = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
            .map_err(|e| weight_err(path, format!("not a safetensors file: {e}")))?;
        let mut take = |name: &str| -> Result<Tensor> {
            let x = t
                .remove(name)
                .ok_or_else(|| weight_err(path, format!("missing tensor `{name}`")))?;
            x.to_dtype(DType::F32)
                .map_err(|e| weight_err(path, format!("tensor `{name}`: {e}")))
        };
        let version = take(VERSION)?.flatten_all()?.to_vec1::<f32>()?;
        if version != [HEAD_FORMAT_VERSION as f32] {
            return Err(weight_err(
                path,
                format!("format version {version:?}, expected {HEAD_FORMAT_VERSION}"),
            ));
        }
        let w1 = take(W1)?;
        let (hidden, input_dim) = match w1.dims() {
            &[h, d] if h > 0 && d > 0 => (h, d),
            other => {
                return Err(Error::WeightShape {
                    what: W1.into(),
                    expected: vec![0, 0],
                    found: other.to_vec(),
                });
            }
        };
        let expect = |name: &str, x: &Tensor, shape: &[usize]| -> Result<()> {
            if x.dims() == shape {
                Ok(())
            } else {
                Err(Error::WeightShape {
                    what: name.into(),
                    expected: shape.to_vec(),
                    found: x.dims().to_vec(),
                })
            }
        };
        let b1 = take(B1)?;
        expect(B1, &b1, &[hidden])?;
        let w2 = take(W2)?;
        expect(W2, &w2, &[1, hidden])?;
        let b2 = take(B2)?;
        expect(B2, &b2, &[1])?;
        let mean = take(MEAN)?;
        expect(MEAN, &mean, &[input_dim])?;
        let std = take(STD)?;
        expect(STD, &std, &[input_dim])?;
        let finite = [&w1, &b1, &w2, &b2, &mean, &std]
            .iter()
            .try_fold(true, |ok, x| {
                let v = x.flatten_all()?.to_vec1::<f32>()?;
                Ok::<bool, Error>(ok && v.iter().all(|f| f.is_finite()))
            })?;
        if !finite {
            return Err(weight_err(path, "non-finite weights"));
        }
        // A zero (or negative) spread divides every input by zero; training floors it at
        // 1e-4. (A fuzzed file with one zero in `norm.std` predicted NaN.)
        if std
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .any(|&s| s <= 0.0)
        {
            return Err(weight_err(path, "norm.std has a value <= 0"));
        }
        Ok(Self {
            w1: Var::from_tensor(&w1)?,
            b1: Var::from_tensor(&b1)?,
            w2: Var::from_tensor(&w2)?,
            b2: Var::from_tensor(&b2)?,
            mean,
            std,
            input_dim,
            hidden,
        })
    }
}
