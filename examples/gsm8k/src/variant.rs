//! How a run's options change a method, spelled into the method's name in results files
//! and reports.
//!
//! A results record is keyed by (problem, method name): `--resume` skips the pairs it
//! holds and `gsm8k report` merges files on that key. Runs of one method with and
//! without `--reflect`, `--mutual-check` or a non-default `--deepconf-keep` used to write
//! the same plain name, so resuming one on the other's file skipped work that was never
//! done, and merging their files kept one record per problem and dropped the other
//! silently (issue 16's evidence renamed them with `sed` before merging). The name now
//! says what ran: `marco+reflect`, `rstar+mc`, `deepconf-online-low`.

use thinktree::reason::{DeepConf, Method};

use crate::cli::Args;

/// The options that make a method a different method for comparison purposes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Variant {
    /// `--reflect`: Marco-o1's reflection (`+reflect`).
    pub reflect: bool,
    /// `--mutual-check`: rStar's discriminator after the method (`+mc`).
    pub mutual_check: bool,
    /// `--deepconf-keep`: DeepConf's kept share when given (`-low` at the paper's 0.1,
    /// `-keep<SHARE>` for other shares than the default 0.9; DeepConf methods only).
    pub deepconf_keep: Option<f64>,
}

impl Variant {
    /// The variant the command line asks for.
    pub fn from_args(args: &Args) -> Self {
        Self {
            reflect: args.reflect,
            mutual_check: args.mutual_check,
            deepconf_keep: args.deepconf_keep,
        }
    }

    /// `method`'s name under this variant: the plain name, then `-low` / `-keep<SHARE>`,
    /// `+reflect`, `+mc` for the options that apply to it.
    pub fn name(&self, method: Method) -> String {
        let mut s = method.to_string();
        let deepconf = matches!(method, Method::DeepConf | Method::DeepConfOnline);
        if let Some(k) = self.deepconf_keep.filter(|_| deepconf) {
            if k == 0.1 {
                s.push_str("-low");
            } else if k != DeepConf::default().keep {
                s.push_str(&format!("-keep{k}"));
            }
        }
        if self.reflect {
            s.push_str("+reflect");
        }
        if self.mutual_check {
            s.push_str("+mc");
        }
        s
    }
}
