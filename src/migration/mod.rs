//! Moving passkeys between Kratos's own credentials and this service,
//! both ways, through Kratos's admin API only (`import-kratos`,
//! `export-kratos`). A passkey is bound to the relying party id, not to the
//! server: its id, public key, counter and user handle are all it takes.

pub mod export;
pub mod import;
pub mod kratos_format;

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::domain::IdentityId;
use crate::kratos::KratosError;
use crate::store::StoreError;

/// What a run covers and whether it writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Reads and decides everything, writes nothing.
    pub dry_run: bool,
    /// Only this identity instead of all of them.
    pub identity: Option<IdentityId>,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(transparent)]
    Kratos(#[from] KratosError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Kratos has no identity {0}")]
    IdentityNotFound(IdentityId),
    #[error(
        "Kratos {version} cannot take passkeys through its admin API: its identity PATCH \
         discards /credentials (identity/handler.go:901 in v1.3.1), and identity create and \
         update import only password and oidc credentials (identity/handler_import.go). \
         Upgrade Kratos to v25.4.0 or later, then export; nothing was written"
    )]
    ExportUnsupported { version: String },
    #[error("Kratos accepted the passkeys of identity {0} but does not list them afterwards")]
    ExportNotStored(IdentityId),
}

/// How far a run is: a spinner with a count on a terminal, nothing in logs
/// or pipes.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    pub fn on_terminal(what: &'static str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {pos} identities {msg}") {
            bar.set_style(style);
        }
        bar.set_message(what);
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress(Some(bar))
    }

    pub fn hidden() -> Self {
        Progress(None)
    }

    fn step(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// "2 not passwordless, 1 unreadable key" from counts by reason.
fn by_reason<K: Ord>(
    counts: &std::collections::BTreeMap<K, usize>,
    name: impl Fn(&K) -> &'static str,
) -> String {
    counts
        .iter()
        .map(|(reason, n)| format!("{n} {}", name(reason)))
        .collect::<Vec<_>>()
        .join(", ")
}
