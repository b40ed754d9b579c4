//! Naming a scorer in a config or on a command line.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::config::SolveConfig;
use crate::error::{Error, Result};
use thinktree_engine::Engine;

use super::{
    ConfidenceScorer, MarcoScorer, RewardFn, RolloutScorer, Scorer, SelfEvalScorer, VerifierScorer,
    WeightedScorer,
};

/// Builds the scorers that load a model or weights (`prm:PATH`, `value:PATH`); see
/// [`ScorerSpec::build_with`].
pub type ScorerLoader<'f, 'e, E> = dyn Fn(&ScorerSpec) -> Result<Box<dyn Scorer<E> + 'e>> + 'f;

/// Which scorer a method uses. Parses from `"confidence"`, `"self-eval"`, `"verifier"`,
/// `"rollout"`, `"prm:PATH"`, `"value:PATH"` and weighted lists such as
/// `"confidence:0.5,verifier:0.5"` or `"value:head.safetensors:0.5,confidence:0.5"`.
#[derive(Debug, Clone, PartialEq)]
pub enum ScorerSpec {
    /// [`ConfidenceScorer`].
    Confidence,
    /// [`MarcoScorer`]: Marco-o1's confidence reward.
    Marco,
    /// [`SelfEvalScorer`] on the policy model.
    SelfEval,
    /// [`VerifierScorer`].
    Verifier,
    /// [`RolloutScorer`] with the config's sampling settings.
    Rollout,
    /// A judge GGUF model asked the self-evaluation question ([`super::PrmScorer`]).
    Prm(PathBuf),
    /// A learned value head (`thinktree-value`'s `ValueScorer`) from a safetensors file.
    Value(PathBuf),
    /// A user reward.
    Reward(RewardFn),
    /// A weighted mean of scorers.
    Weighted(Vec<(ScorerSpec, f64)>),
}

impl ScorerSpec {
    /// The spec for a user closure `|question, steps| -> score`.
    pub fn reward(
        name: impl Into<String>,
        f: impl Fn(&str, &[String]) -> f64 + Send + Sync + 'static,
    ) -> Self {
        ScorerSpec::Reward(RewardFn::new(name, f))
    }

    /// Whether scoring runs the model (and so costs tokens).
    pub fn uses_model(&self) -> bool {
        match self {
            ScorerSpec::SelfEval
            | ScorerSpec::Rollout
            | ScorerSpec::Prm(_)
            | ScorerSpec::Value(_) => true,
            ScorerSpec::Confidence
            | ScorerSpec::Marco
            | ScorerSpec::Verifier
            | ScorerSpec::Reward(_) => false,
            ScorerSpec::Weighted(parts) => parts.iter().any(|(s, w)| *w > 0.0 && s.uses_model()),
        }
    }

    /// Checks weights and nesting.
    pub fn validate(&self) -> Result<()> {
        if let ScorerSpec::Weighted(parts) = self {
            if parts.is_empty() {
                return Err(Error::InvalidConfig("empty weighted scorer".into()));
            }
            if parts.iter().any(|(_, w)| !w.is_finite() || *w < 0.0) {
                return Err(Error::InvalidConfig(
                    "scorer weights must be finite and >= 0".into(),
                ));
            }
            if parts.iter().map(|(_, w)| w).sum::<f64>() <= 0.0 {
                return Err(Error::InvalidConfig(
                    "scorer weights must not all be zero".into(),
                ));
            }
            for (s, _) in parts {
                s.validate()?;
            }
        }
        if let ScorerSpec::Prm(p) = self
            && p.as_os_str().is_empty()
        {
            return Err(Error::InvalidConfig("prm: needs a model path".into()));
        }
        if let ScorerSpec::Value(p) = self
            && p.as_os_str().is_empty()
        {
            return Err(Error::InvalidConfig(
                "value: needs a weight file path".into(),
            ));
        }
        Ok(())
    }

    /// Builds the scorer for engine `E`; model-based scorers take their sampling settings
    /// from `cfg`. `prm:PATH` and `value:PATH` load a model or weights, which this crate
    /// cannot: they are [`Error::NeedsLoader`] here (use [`ScorerSpec::build_with`], or the
    /// `thinktree` facade's `scorers::build`, which knows every backend).
    pub fn build<'e, E: Engine + 'e>(&self, cfg: &SolveConfig) -> Result<Box<dyn Scorer<E> + 'e>> {
        self.build_with(cfg, &|spec: &ScorerSpec| {
            Err(Error::NeedsLoader(spec.to_string()))
        })
    }

    /// Like [`ScorerSpec::build`], with `load` building the parts that load a model or
    /// weights (`prm:PATH`, `value:PATH`, also inside a weighted mix).
    pub fn build_with<'e, E: Engine + 'e>(
        &self,
        cfg: &SolveConfig,
        load: &ScorerLoader<'_, 'e, E>,
    ) -> Result<Box<dyn Scorer<E> + 'e>> {
        self.validate()?;
        Ok(match self {
            ScorerSpec::Confidence => Box::new(ConfidenceScorer),
            ScorerSpec::Marco => Box::new(MarcoScorer),
            ScorerSpec::SelfEval => Box::new(SelfEvalScorer::new()),
            ScorerSpec::Verifier => Box::new(VerifierScorer),
            ScorerSpec::Rollout => Box::new(RolloutScorer {
                rollouts: cfg.rollouts,
                temperature: if cfg.temperature > 0.0 {
                    cfg.temperature
                } else {
                    0.7
                },
                top_p: cfg.top_p,
                max_tokens: cfg.rollout_tokens,
                split: cfg.split,
                step_tokens: cfg.step_tokens,
                max_steps: cfg.max_steps,
                extractor: cfg.extractor.clone(),
            }),
            ScorerSpec::Prm(_) | ScorerSpec::Value(_) => load(self)?,
            ScorerSpec::Reward(r) => Box::new(r.clone()),
            ScorerSpec::Weighted(parts) => {
                let built = parts
                    .iter()
                    .map(|(s, w)| Ok((s.build_with::<E>(cfg, load)?, *w)))
                    .collect::<Result<Vec<_>>>()?;
                Box::new(WeightedScorer::new(built)?)
            }
        })
    }
}

impl fmt::Display for ScorerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScorerSpec::Confidence => f.write_str("confidence"),
            ScorerSpec::Marco => f.write_str("marco"),
            ScorerSpec::SelfEval => f.write_str("self-eval"),
            ScorerSpec::Verifier => f.write_str("verifier"),
            ScorerSpec::Rollout => f.write_str("rollout"),
            ScorerSpec::Prm(p) => write!(f, "prm:{}", p.display()),
            ScorerSpec::Value(p) => write!(f, "value:{}", p.display()),
            ScorerSpec::Reward(r) => write!(f, "reward:{}", r.name()),
            ScorerSpec::Weighted(parts) => {
                for (i, (s, w)) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{s}:{w}")?;
                }
                Ok(())
            }
        }
    }
}

fn parse_one(s: &str) -> Result<ScorerSpec> {
    let s = s.trim();
    if let Some(path) = s.strip_prefix("prm:") {
        return Ok(ScorerSpec::Prm(PathBuf::from(path.trim())));
    }
    if let Some(path) = s.strip_prefix("value:") {
        return Ok(ScorerSpec::Value(PathBuf::from(path.trim())));
    }
    match s.to_ascii_lowercase().as_str() {
        "confidence" | "conf" => Ok(ScorerSpec::Confidence),
        "marco" | "marco-confidence" => Ok(ScorerSpec::Marco),
        "self-eval" | "self_eval" | "selfeval" => Ok(ScorerSpec::SelfEval),
        "verifier" | "arith" | "arithmetic" => Ok(ScorerSpec::Verifier),
        "rollout" | "rollouts" => Ok(ScorerSpec::Rollout),
        other => Err(Error::InvalidConfig(format!(
            "unknown scorer `{other}` (expected confidence, marco, self-eval, verifier, rollout, prm:PATH or value:PATH)"
        ))),
    }
}

/// Splits `name:weight`, where a weight is a trailing `:number` (so `prm:PATH` keeps its
/// path and `prm:PATH:0.5` is weighted).
fn split_weight(s: &str) -> Result<(&str, f64)> {
    if let Some((head, tail)) = s.rsplit_once(':')
        && let Ok(w) = tail.trim().parse::<f64>()
    {
        if head.trim().is_empty() {
            return Err(Error::InvalidConfig(format!(
                "scorer weight without a name: `{s}`"
            )));
        }
        return Ok((head, w));
    }
    Ok((s, 1.0))
}

impl FromStr for ScorerSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.trim().is_empty() {
            return Err(Error::InvalidConfig("empty scorer spec".into()));
        }
        let parts: Vec<&str> = s.split(',').collect();
        let spec = if parts.len() == 1 {
            let (name, w) = split_weight(parts[0])?;
            let one = parse_one(name)?;
            if name.len() == parts[0].len() {
                one
            } else {
                ScorerSpec::Weighted(vec![(one, w)])
            }
        } else {
            ScorerSpec::Weighted(
                parts
                    .iter()
                    .map(|p| {
                        let (name, w) = split_weight(p)?;
                        Ok((parse_one(name)?, w))
                    })
                    .collect::<Result<Vec<_>>>()?,
            )
        };
        spec.validate()?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_weights_and_paths() {
        assert_eq!(
            "confidence".parse::<ScorerSpec>().unwrap(),
            ScorerSpec::Confidence
        );
        assert_eq!(
            "self-eval".parse::<ScorerSpec>().unwrap(),
            ScorerSpec::SelfEval
        );
        assert_eq!(
            "confidence:0.5,verifier:0.5".parse::<ScorerSpec>().unwrap(),
            ScorerSpec::Weighted(vec![
                (ScorerSpec::Confidence, 0.5),
                (ScorerSpec::Verifier, 0.5)
            ])
        );
        assert_eq!(
            "prm:/m/judge.gguf".parse::<ScorerSpec>().unwrap(),
            ScorerSpec::Prm("/m/judge.gguf".into())
        );
        assert_eq!(
            "prm:/m/j.gguf:2,rollout".parse::<ScorerSpec>().unwrap(),
            ScorerSpec::Weighted(vec![
                (ScorerSpec::Prm("/m/j.gguf".into()), 2.0),
                (ScorerSpec::Rollout, 1.0)
            ])
        );
        assert_eq!(
            "value:/tmp/v.safetensors".parse::<ScorerSpec>().unwrap(),
            ScorerSpec::Value("/tmp/v.safetensors".into())
        );
        assert_eq!(
            "value:/tmp/v.safetensors:0.5,confidence:0.5"
                .parse::<ScorerSpec>()
                .unwrap(),
            ScorerSpec::Weighted(vec![
                (ScorerSpec::Value("/tmp/v.safetensors".into()), 0.5),
                (ScorerSpec::Confidence, 0.5)
            ])
        );
        let round = "confidence:0.3,verifier:0.7".parse::<ScorerSpec>().unwrap();
        assert_eq!(round.to_string().parse::<ScorerSpec>().unwrap(), round);
    }

    #[test]
    fn rejects_bad_specs() {
        for bad in [
            "",
            "magic",
            "confidence:-1",
            "confidence:0,verifier:0",
            ":0.5",
            "prm:",
            "value:",
        ] {
            assert!(bad.parse::<ScorerSpec>().is_err(), "{bad}");
        }
    }
}
