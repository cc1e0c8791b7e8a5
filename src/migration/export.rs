//! `export-kratos`: this service's passkeys written into the identity's
//! WebAuthn credentials in Kratos, so Kratos's own passkey login accepts
//! them. Only through the admin API's JSON patch on `/credentials/...`,
//! which Kratos v25.4.0 and later accept; v1.3.1 discards it, and the
//! command refuses before writing anything.
//!
//! Kratos's passkey login finds the identity by the assertion's user
//! handle: as a `passkey` credential identifier (a string), else as a
//! `webauthn` credential's `user_handle`. A handle that is text (Kratos's
//! own, on imported passkeys) goes into the `passkey` credential; the
//! 16 random bytes this service gives each identity are not text, so its
//! passkeys go into the `webauthn` credential (passwordless), which holds
//! one handle per identity, as the service does.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::kratos_format::{credential_ids, kratos_credential, WebauthnCredential};
use super::{by_reason, MigrationError, Options, Progress};
use crate::domain::IdentityId;
use crate::events::Events;
use crate::kratos::credentials::{holds_passkeys, IdentityCredentials};
use crate::kratos::KratosClient;
use crate::store::{PasskeyRow, Store};
use crate::stored_credential::parts_of;

/// Identities per page of the service's own listing.
const PAGE_SIZE: i64 = 250;

/// Why one of our passkeys is not exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExportSkip {
    /// Kratos has no such identity (any more).
    IdentityNotInKratos,
    /// The identity's `webauthn` credential in Kratos answers to another
    /// binary user handle, and it holds only one.
    UserHandleConflict,
    /// The stored credential could not be read back.
    UnreadableStoredPasskey,
}

impl ExportSkip {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportSkip::IdentityNotInKratos => "identity not in Kratos",
            ExportSkip::UserHandleConflict => "another user handle in Kratos's webauthn credential",
            ExportSkip::UnreadableStoredPasskey => "unreadable stored passkey",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportSummary {
    pub dry_run: bool,
    pub kratos_version: String,
    pub identities_scanned: usize,
    pub exported: usize,
    pub already_in_kratos: usize,
    pub skipped: BTreeMap<ExportSkip, usize>,
}

impl fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "export-kratos{} to Kratos {}: {} identities scanned, {} credentials {}, {} already in Kratos, {} skipped",
            if self.dry_run { " (dry run, nothing written)" } else { "" },
            self.kratos_version,
            self.identities_scanned,
            self.exported,
            if self.dry_run { "to export" } else { "exported" },
            self.already_in_kratos,
            self.skipped.values().sum::<usize>(),
        )?;
        if !self.skipped.is_empty() {
            write!(f, " ({})", by_reason(&self.skipped, |r| r.as_str()))?;
        }
        if self.exported == 0 && !self.dry_run {
            write!(f, "; nothing to export")?;
        }
        Ok(())
    }
}

/// Whether this Kratos release's identity PATCH stores `/credentials/...`
/// (v25.4.0 and later). An unrecognised version is tried, and what Kratos
/// stored is read back either way.
pub fn accepts_credential_patches(version: &str) -> bool {
    let major = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    !matches!(major, Some(0..=24))
}

pub async fn export_to_kratos(
    kratos: &KratosClient,
    store: &Store,
    events: &Events,
    options: Options,
    progress: &Progress,
) -> Result<ExportSummary, MigrationError> {
    let version = kratos.version().await?;
    if !accepts_credential_patches(&version) {
        return Err(MigrationError::ExportUnsupported { version });
    }
    let mut summary = ExportSummary {
        dry_run: options.dry_run,
        kratos_version: version,
        ..ExportSummary::default()
    };
    if let Some(identity) = options.identity {
        export_identity(kratos, store, events, identity, options, &mut summary).await?;
        progress.step();
    } else {
        let mut after = None;
        loop {
            let page = store.identities_with_passkeys(after, PAGE_SIZE).await?;
            for identity in &page {
                export_identity(kratos, store, events, *identity, options, &mut summary).await?;
                progress.step();
            }
            match page.last() {
                Some(last) if page.len() as i64 == PAGE_SIZE => after = Some(*last),
                _ => break,
            }
        }
    }
    progress.finish();
    Ok(summary)
}

async fn export_identity(
    kratos: &KratosClient,
    store: &Store,
    events: &Events,
    identity: IdentityId,
    options: Options,
    summary: &mut ExportSummary,
) -> Result<(), MigrationError> {
    summary.identities_scanned += 1;
    let ours = store.passkeys(identity).await?;
    if ours.is_empty() {
        return Ok(());
    }
    let Some(theirs) = kratos.identity_with_passkeys(identity).await? else {
        *summary
            .skipped
            .entry(ExportSkip::IdentityNotInKratos)
            .or_default() += ours.len();
        return Ok(());
    };
    let plan = plan(&ours, &theirs);
    summary.already_in_kratos += plan.already_in_kratos;
    for skip in &plan.skipped {
        *summary.skipped.entry(*skip).or_default() += 1;
    }
    if plan.exported.is_empty() {
        return Ok(());
    }
    if !options.dry_run {
        kratos.patch_identity(identity, &plan.patch).await?;
        let stored = kratos
            .identity_with_passkeys(identity)
            .await?
            .ok_or(MigrationError::IdentityNotFound(identity))?;
        let now_there = kratos_credential_ids(&stored);
        if !plan.exported.iter().all(|id| now_there.contains(id)) {
            return Err(MigrationError::ExportNotStored(identity));
        }
        tracing::info!(identity = %identity, exported = plan.exported.len(), "passkeys exported to Kratos");
        // Kratos holds them now: the events follow the change, not with it.
        let exported: Vec<_> = ours
            .iter()
            .filter(|row| plan.exported.contains(&row.credential_id))
            .map(|row| events.exported(row))
            .collect();
        store.append_events(exported).await?;
    }
    summary.exported += plan.exported.len();
    Ok(())
}

/// What exporting one identity takes: the JSON patch, and what it covers.
#[derive(Debug, Default)]
struct Plan {
    patch: Value,
    exported: Vec<Vec<u8>>,
    already_in_kratos: usize,
    skipped: Vec<ExportSkip>,
}

fn plan(ours: &[PasskeyRow], theirs: &IdentityCredentials) -> Plan {
    let present = kratos_credential_ids(theirs);
    // Kratos gives every identity whose schema names a WebAuthn identifier
    // a `webauthn` credential with a random handle and no credentials; that
    // handle binds nothing and is replaced. One with credentials binds them.
    let webauthn_config = theirs
        .credentials
        .get("webauthn")
        .and_then(|c| c.config.as_ref());
    let existing_webauthn_handle = webauthn_config
        .filter(|c| !credential_ids(c).is_empty())
        .and_then(|c| c.get("user_handle"))
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        .and_then(|h| STANDARD.decode(h).ok());
    let mut plan = Plan::default();
    let mut passkeys: Vec<(WebauthnCredential, Vec<String>)> = Vec::new();
    let mut webauthn: Vec<WebauthnCredential> = Vec::new();
    let mut webauthn_handle = existing_webauthn_handle.clone();
    for row in ours {
        if present.contains(&row.credential_id) {
            plan.already_in_kratos += 1;
            continue;
        }
        let Ok(parts) = parts_of(&row.credential) else {
            plan.skipped.push(ExportSkip::UnreadableStoredPasskey);
            continue;
        };
        let credential = kratos_credential(
            &parts,
            row.aaguid,
            &row.name,
            &row.transports,
            row.created_at,
        );
        match text_handles(row) {
            Some(handles) => passkeys.push((credential, handles)),
            None => match &webauthn_handle {
                Some(handle) if *handle != row.user_handle => {
                    plan.skipped.push(ExportSkip::UserHandleConflict);
                    continue;
                }
                _ => {
                    webauthn_handle = Some(row.user_handle.clone());
                    webauthn.push(credential);
                }
            },
        }
        plan.exported.push(row.credential_id.clone());
    }
    let mut ops = Vec::new();
    if !passkeys.is_empty() {
        ops.extend(passkey_ops(theirs, passkeys));
    }
    if !webauthn.is_empty() {
        let handle = webauthn_handle.unwrap_or_default();
        ops.extend(webauthn_ops(
            theirs,
            webauthn,
            &handle,
            existing_webauthn_handle.is_none(),
        ));
    }
    plan.patch = Value::Array(ops);
    plan
}

/// The passkey's user handles as Kratos identifiers, when they are text.
fn text_handles(row: &PasskeyRow) -> Option<Vec<String>> {
    std::iter::once(&row.user_handle)
        .chain(row.unconfirmed_user_handles.iter())
        .map(|h| {
            String::from_utf8(h.clone())
                .ok()
                .filter(|s| !s.chars().any(char::is_control))
        })
        .collect::<Option<Vec<_>>>()
        .map(|mut handles| {
            handles.dedup();
            handles
        })
}

fn passkey_ops(
    theirs: &IdentityCredentials,
    passkeys: Vec<(WebauthnCredential, Vec<String>)>,
) -> Vec<Value> {
    let existing = theirs.credentials.get("passkey");
    let known: HashSet<&String> = existing
        .map(|c| c.identifiers.iter().collect())
        .unwrap_or_default();
    let mut new_identifiers: Vec<String> = Vec::new();
    for handle in passkeys.iter().flat_map(|(_, handles)| handles) {
        if !known.contains(handle) && !new_identifiers.contains(handle) {
            new_identifiers.push(handle.clone());
        }
    }
    let latest_handle = passkeys
        .last()
        .and_then(|(_, handles)| handles.first())
        .map(|h| STANDARD.encode(h.as_bytes()));
    let credentials: Vec<WebauthnCredential> = passkeys.into_iter().map(|(c, _)| c).collect();
    if let Some(config) = existing.and_then(|c| c.config.as_ref()) {
        let mut ops = append_credentials(
            config,
            "/credentials/passkey/config/credentials",
            &credentials,
        );
        ops.extend(new_identifiers.iter().map(
            |h| json!({"op": "add", "path": "/credentials/passkey/identifiers/-", "value": h}),
        ));
        return ops;
    }
    vec![json!({
        "op": "add",
        "path": "/credentials/passkey",
        "value": {
            "type": "passkey",
            "version": 1,
            "identifiers": new_identifiers,
            "config": {"credentials": credentials, "user_handle": latest_handle},
        },
    })]
}

fn webauthn_ops(
    theirs: &IdentityCredentials,
    credentials: Vec<WebauthnCredential>,
    handle: &[u8],
    set_handle: bool,
) -> Vec<Value> {
    let handle = STANDARD.encode(handle);
    let existing = theirs
        .credentials
        .get("webauthn")
        .and_then(|c| c.config.as_ref());
    if let Some(config) = existing {
        let mut ops = append_credentials(
            config,
            "/credentials/webauthn/config/credentials",
            &credentials,
        );
        if set_handle {
            ops.push(json!({"op": "add", "path": "/credentials/webauthn/config/user_handle", "value": handle}));
        }
        return ops;
    }
    // Kratos fills the identifiers in from the identity schema.
    vec![json!({
        "op": "add",
        "path": "/credentials/webauthn",
        "value": {
            "type": "webauthn",
            "version": 1,
            "identifiers": [],
            "config": {"credentials": credentials, "user_handle": handle},
        },
    })]
}

/// Patch operations adding `credentials` to the list at `path` of an
/// existing configuration, or setting the list when it has none.
fn append_credentials(
    config: &Value,
    path: &str,
    credentials: &[WebauthnCredential],
) -> Vec<Value> {
    if config.get("credentials").is_some_and(Value::is_array) {
        credentials
            .iter()
            .map(|c| json!({"op": "add", "path": format!("{path}/-"), "value": c}))
            .collect()
    } else {
        vec![json!({"op": "add", "path": path, "value": credentials})]
    }
}

fn kratos_credential_ids(identity: &IdentityCredentials) -> HashSet<Vec<u8>> {
    identity
        .credentials
        .iter()
        .filter(|(kind, _)| holds_passkeys(kind))
        .filter_map(|(_, c)| c.config.as_ref())
        .flat_map(credential_ids)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_before_v25_cannot_take_passkeys() {
        assert!(!accepts_credential_patches("v1.3.1"));
        assert!(!accepts_credential_patches("v0.13.0"));
        assert!(accepts_credential_patches("v25.4.0"));
        assert!(accepts_credential_patches("v26.2.0"));
        assert!(accepts_credential_patches("master"));
    }
}
