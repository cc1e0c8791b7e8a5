//! `import-kratos`: the passkeys Kratos registered (`passkey` credentials,
//! and passwordless `webauthn` ones) stored here under the same identity,
//! with the user handles Kratos gave them. Idempotent and resumable: each
//! identity is one transaction, and a credential already here is left.

use std::collections::BTreeMap;
use std::fmt;

use super::kratos_format::{candidates, Candidate, SkipReason};
use super::{by_reason, MigrationError, Options, Progress};
use crate::aaguid::default_passkey_name;
use crate::domain::PasskeyName;
use crate::events::Events;
use crate::kratos::credentials::{holds_passkeys, IdentityCredentials};
use crate::kratos::KratosClient;
use crate::store::{ImportedPasskey, Store};

/// Identities per page of Kratos's admin listing (its own default).
const PAGE_SIZE: u32 = 250;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub dry_run: bool,
    pub identities_scanned: usize,
    pub imported: usize,
    pub already_present: usize,
    pub skipped: BTreeMap<SkipReason, usize>,
}

impl ImportSummary {
    pub fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "import-kratos{}: {} identities scanned, {} credentials {}, {} already present, {} skipped",
            if self.dry_run { " (dry run, nothing written)" } else { "" },
            self.identities_scanned,
            self.imported,
            if self.dry_run { "to import" } else { "imported" },
            self.already_present,
            self.skipped_total(),
        )?;
        if !self.skipped.is_empty() {
            write!(f, " ({})", by_reason(&self.skipped, |r| r.as_str()))?;
        }
        if self.imported == 0 && !self.dry_run {
            write!(f, "; nothing to import")?;
        }
        Ok(())
    }
}

pub async fn import_from_kratos(
    kratos: &KratosClient,
    store: &Store,
    events: &Events,
    options: Options,
    progress: &Progress,
) -> Result<ImportSummary, MigrationError> {
    let mut summary = ImportSummary {
        dry_run: options.dry_run,
        ..ImportSummary::default()
    };
    if let Some(id) = options.identity {
        let identity = kratos
            .identity_with_passkeys(id)
            .await?
            .ok_or(MigrationError::IdentityNotFound(id))?;
        import_identity(store, events, &identity, options, &mut summary).await?;
        progress.step();
    } else {
        let mut page_token: Option<String> = None;
        loop {
            let page = kratos
                .identities_with_passkeys(page_token.as_deref(), PAGE_SIZE)
                .await?;
            for identity in &page.identities {
                import_identity(store, events, identity, options, &mut summary).await?;
                progress.step();
            }
            match page.next_page_token {
                Some(next) if !page.identities.is_empty() => page_token = Some(next),
                _ => break,
            }
        }
    }
    progress.finish();
    Ok(summary)
}

async fn import_identity(
    store: &Store,
    events: &Events,
    identity: &IdentityCredentials,
    options: Options,
    summary: &mut ImportSummary,
) -> Result<(), MigrationError> {
    summary.identities_scanned += 1;
    let mut found = Vec::new();
    for (kind, credential) in &identity.credentials {
        let Some(config) = credential.config.as_ref().filter(|_| holds_passkeys(kind)) else {
            continue;
        };
        let (candidates, skipped) = candidates(kind, &credential.identifiers, config);
        found.extend(candidates);
        for reason in skipped {
            *summary.skipped.entry(reason).or_default() += 1;
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    let outcome = store
        .import_passkeys(
            identity.id,
            found.into_iter().map(imported).collect(),
            options.dry_run,
            {
                let events = events.clone();
                move |row| events.imported(row)
            },
        )
        .await?;
    summary.imported += outcome.imported;
    summary.already_present += outcome.already_present;
    if outcome.owned_elsewhere > 0 {
        *summary
            .skipped
            .entry(SkipReason::OwnedByAnotherIdentity)
            .or_default() += outcome.owned_elsewhere;
    }
    if outcome.imported > 0 && !options.dry_run {
        tracing::info!(identity = %identity.id, imported = outcome.imported, "passkeys imported from Kratos");
    }
    Ok(())
}

fn imported(candidate: Candidate) -> ImportedPasskey {
    let name = candidate
        .display_name
        .as_deref()
        .and_then(|n| PasskeyName::parse(n).ok())
        .unwrap_or_else(|| default_passkey_name(candidate.aaguid));
    ImportedPasskey {
        credential_id: candidate.credential_id,
        credential: candidate.credential,
        user_handle: candidate.user_handle,
        unconfirmed_user_handles: candidate.unconfirmed_user_handles,
        name,
        aaguid: candidate.aaguid,
        transports: candidate.transports,
        backup_eligible: candidate.backup_eligible,
        backup_state: candidate.backup_state,
        sign_count: i64::from(candidate.sign_count),
        created_at: candidate.created_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_one_line_with_the_reasons() {
        let mut summary = ImportSummary {
            identities_scanned: 3,
            imported: 2,
            already_present: 1,
            ..ImportSummary::default()
        };
        summary.skipped.insert(SkipReason::NotPasswordless, 2);
        summary.skipped.insert(SkipReason::UnreadableKey, 1);
        assert_eq!(
            summary.to_string(),
            "import-kratos: 3 identities scanned, 2 credentials imported, 1 already present, 3 skipped (2 not passwordless, 1 unreadable key)"
        );
        let again = ImportSummary {
            identities_scanned: 3,
            already_present: 3,
            ..ImportSummary::default()
        };
        assert!(again.to_string().ends_with("; nothing to import"));
        let dry = ImportSummary {
            dry_run: true,
            imported: 2,
            ..ImportSummary::default()
        };
        assert!(dry.to_string().starts_with("import-kratos (dry run, nothing written): 0 identities scanned, 2 credentials to import"));
    }
}
