//! A stored passkey as the store reads it: shared by the modules that read
//! passkeys and the ones that remove them with their identity.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;
use uuid::Uuid;

use super::schema::passkeys;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = passkeys)]
pub struct PasskeyRow {
    pub id: Uuid,
    pub identity_id: Uuid,
    pub credential_id: Vec<u8>,
    pub credential: Value,
    pub name: String,
    pub aaguid: Uuid,
    pub transports: Vec<String>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub sign_count: i64,
    pub flagged_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// The WebAuthn user handle this credential answers to.
    pub user_handle: Vec<u8>,
    /// An imported passkey's candidate handles until its first login (see
    /// the migration that made them).
    pub unconfirmed_user_handles: Vec<Vec<u8>>,
    /// `clientExtensionResults.prf.enabled` at registration (unsigned: what
    /// the browser said); `None` when it said nothing.
    pub prf_enabled: Option<bool>,
    /// The salt handed out for this passkey in `evalByCredential`.
    pub prf_salt: Option<Vec<u8>>,
}
