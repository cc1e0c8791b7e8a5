//! Events: what happened to passkeys and logins, for the rest of the
//! system. Each is written to the outbox in the same transaction as the
//! change it reports (`crate::store` does the writing; this module says
//! what an event holds), then delivered at least once, in order per
//! identity, to the configured endpoints, signed per Standard Webhooks.
//!
//! The body is the Standard Webhooks payload: `{type, timestamp, data}`;
//! the event's id travels as `webhook-id`. `data` always has
//! `identity_id`, `actor` and `client`, and `passkey` when the event is
//! about one. No event holds a secret: no key material, token or cookie.

pub mod delivery;
pub mod endpoints;
pub mod signature;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::aaguid::authenticator_name;
use crate::domain::{IdentityId, KratosSessionId, LoginRecordId, SessionDelivery};
use crate::kratos::ClientContext;
use crate::store::{AttestationRow, NewEvent, PasskeyRow};
use crate::webauthn_policy::Mediation;

pub use endpoints::Endpoint;

/// Every event type, as it appears in `type` and in `events.endpoints[].types`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
)]
pub enum EventKind {
    #[strum(serialize = "passkey.registered")]
    PasskeyRegistered,
    #[strum(serialize = "passkey.renamed")]
    PasskeyRenamed,
    #[strum(serialize = "passkey.removed")]
    PasskeyRemoved,
    #[strum(serialize = "passkey.login")]
    PasskeyLogin,
    #[strum(serialize = "passkey.login_refused")]
    PasskeyLoginRefused,
    #[strum(serialize = "passkey.flagged")]
    PasskeyFlagged,
    /// A new MDS3 BLOB gave the passkey's attested model a refused status,
    /// and `authenticators.on_status_change` is `warn`: nothing changed.
    #[strum(serialize = "passkey.authenticator_warning")]
    PasskeyAuthenticatorWarning,
    #[strum(serialize = "passkey.imported")]
    PasskeyImported,
    #[strum(serialize = "passkey.exported")]
    PasskeyExported,
    #[strum(serialize = "identity.purged")]
    IdentityPurged,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Who made the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The passkey's owner, with their own session (or their passkey).
    Person,
    /// Support staff, through the admin API.
    Support,
    /// The service itself (garbage collection, the migration commands).
    Service,
}

impl Actor {
    fn as_str(self) -> &'static str {
        match self {
            Actor::Person => "person",
            Actor::Support => "support",
            Actor::Service => "service",
        }
    }
}

/// Why a login was refused, among those a security team acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The passkey is disabled after its signature counter went backwards.
    CredentialCloned,
    /// Kratos has the identity disabled.
    IdentityInactive,
    /// The passkey's attested model got a refused status in the metadata.
    AuthenticatorRevoked,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::CredentialCloned => "credential_cloned",
            Refusal::IdentityInactive => "identity_inactive",
            Refusal::AuthenticatorRevoked => "authenticator_revoked",
        }
    }
}

/// What the login event says of the session it minted.
pub struct Minted {
    pub record: LoginRecordId,
    /// Unknown yet: the event is held until the login record learns it.
    pub session_id: Option<KratosSessionId>,
    pub delivery: SessionDelivery,
    pub recovery_flow_id: Uuid,
    pub second_factor_pending: bool,
}

/// The queue of recovery notices to `recovery_hook.notifier_url`: an
/// endpoint of the outbox like the configured ones, whose name no
/// configured endpoint may take.
pub const NOTIFIER_ENDPOINT: &str = "recovery_hook.notifier";

/// The type of a recovery notice in the audit; no configured endpoint
/// receives it.
pub const RECOVERY_NOTICE: &str = "recovery.notice";

/// Builds events and routes them to the endpoints that want their type.
#[derive(Clone)]
pub struct Events {
    routes: Arc<Vec<(String, Option<HashSet<EventKind>>)>>,
    /// How long a login event waits for its session id at most.
    hold_for: Duration,
}

impl Events {
    pub fn new(endpoints: &[Endpoint], hold_for: Duration) -> Self {
        Self {
            routes: Arc::new(
                endpoints
                    .iter()
                    .map(|e| (e.name.clone(), e.types.clone()))
                    .collect(),
            ),
            hold_for,
        }
    }

    /// A real recovery's notice: `notify` is what the notifier receives,
    /// unchanged (the audit shows it as the event's `data`).
    pub fn recovery_notice(&self, identity: IdentityId, notify: Value) -> NewEvent {
        let occurred_at = Utc::now();
        NewEvent {
            id: Uuid::new_v4(),
            kind: RECOVERY_NOTICE,
            identity_id: identity,
            occurred_at,
            payload: json!({
                "type": RECOVERY_NOTICE,
                "timestamp": occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                "data": notify,
            }),
            endpoints: vec![NOTIFIER_ENDPOINT.to_string()],
            held: None,
        }
    }

    /// `mediation` says whether the person answered a dialog (`modal`) or
    /// their password manager added the passkey on its own after a password
    /// sign-in (`conditional`): the "a passkey was added" mail matters most
    /// for the second, which the person may not have noticed.
    pub fn registered(
        &self,
        row: &PasskeyRow,
        attestation: Option<&AttestationRow>,
        mediation: Mediation,
        client: &ClientContext,
    ) -> NewEvent {
        self.about(
            EventKind::PasskeyRegistered,
            row,
            Actor::Person,
            Some(client),
            object(json!({
                "mediation": mediation,
                "attestation": attestation_summary(attestation),
            })),
        )
    }

    /// A new MDS3 BLOB gave the passkey's attested model a status the
    /// policy refuses: `flag` disabled its logins (`passkey.flagged`),
    /// `warn` only says so (`passkey.authenticator_warning`).
    pub fn authenticator_status(
        &self,
        row: &PasskeyRow,
        attestation: &AttestationRow,
        status: &str,
        status_reports: &Value,
        flagged: bool,
    ) -> NewEvent {
        let kind = if flagged {
            EventKind::PasskeyFlagged
        } else {
            EventKind::PasskeyAuthenticatorWarning
        };
        let details = object(json!({
            "reason": "authenticator_status",
            "status": status,
            "status_reports": status_reports,
            "attestation": attestation_summary(Some(attestation)),
        }));
        self.about(kind, row, Actor::Service, None, details)
    }

    pub fn renamed(&self, row: &PasskeyRow, previous: &str, client: &ClientContext) -> NewEvent {
        let details = object(json!({ "previous_name": previous }));
        self.about(
            EventKind::PasskeyRenamed,
            row,
            Actor::Person,
            Some(client),
            details,
        )
    }

    pub fn removed(&self, row: &PasskeyRow, actor: Actor, client: &ClientContext) -> NewEvent {
        self.about(
            EventKind::PasskeyRemoved,
            row,
            actor,
            Some(client),
            Map::new(),
        )
    }

    pub fn login(&self, row: &PasskeyRow, minted: &Minted, client: &ClientContext) -> NewEvent {
        let details = object(json!({
            "kratos_session_id": minted.session_id.map(|s| s.to_string()),
            "session_delivery": minted.delivery.as_str(),
            "recovery_flow_id": minted.recovery_flow_id,
            "second_factor_pending": minted.second_factor_pending,
        }));
        let mut event = self.about(
            EventKind::PasskeyLogin,
            row,
            Actor::Person,
            Some(client),
            details,
        );
        // The login record's id: its session id is filled in by it later.
        event.id = minted.record.as_uuid();
        event.held =
            (minted.session_id.is_none() && !event.endpoints.is_empty()).then_some(self.hold_for);
        event
    }

    pub fn login_refused(
        &self,
        row: &PasskeyRow,
        refusal: Refusal,
        client: &ClientContext,
    ) -> NewEvent {
        let details = object(json!({ "reason": refusal.as_str() }));
        self.about(
            EventKind::PasskeyLoginRefused,
            row,
            Actor::Person,
            Some(client),
            details,
        )
    }

    /// The passkey was disabled: its signature counter went backwards.
    pub fn flagged(&self, row: &PasskeyRow, client: &ClientContext) -> NewEvent {
        let details = object(json!({
            "reason": "counter_regression",
            "stored_counter": row.sign_count,
        }));
        self.about(
            EventKind::PasskeyFlagged,
            row,
            Actor::Person,
            Some(client),
            details,
        )
    }

    pub fn imported(&self, row: &PasskeyRow) -> NewEvent {
        let details = object(json!({ "from": "kratos" }));
        self.about(
            EventKind::PasskeyImported,
            row,
            Actor::Service,
            None,
            details,
        )
    }

    pub fn exported(&self, row: &PasskeyRow) -> NewEvent {
        let details = object(json!({ "to": "kratos" }));
        self.about(
            EventKind::PasskeyExported,
            row,
            Actor::Service,
            None,
            details,
        )
    }

    /// Kratos no longer has the identity: everything about it was removed.
    pub fn identity_purged(&self, identity: IdentityId, removed: &[PasskeyRow]) -> NewEvent {
        let passkeys: Vec<Value> = removed.iter().map(passkey_summary).collect();
        let details = object(json!({
            "reason": "identity_deleted_in_kratos",
            "passkeys": passkeys,
        }));
        self.build(
            EventKind::IdentityPurged,
            identity,
            Actor::Service,
            None,
            details,
        )
    }

    fn about(
        &self,
        kind: EventKind,
        row: &PasskeyRow,
        actor: Actor,
        client: Option<&ClientContext>,
        mut details: Map<String, Value>,
    ) -> NewEvent {
        details.insert("passkey".into(), passkey_summary(row));
        self.build(
            kind,
            IdentityId::new(row.identity_id),
            actor,
            client,
            details,
        )
    }

    fn build(
        &self,
        kind: EventKind,
        identity: IdentityId,
        actor: Actor,
        client: Option<&ClientContext>,
        details: Map<String, Value>,
    ) -> NewEvent {
        let occurred_at = Utc::now();
        let mut data = object(json!({
            "identity_id": identity,
            "actor": actor.as_str(),
            "client": client.map(|c| json!({
                "ip": c.ip.map(|ip| ip.to_string()),
                "user_agent": c.user_agent,
            })),
        }));
        data.extend(details);
        NewEvent {
            id: Uuid::new_v4(),
            kind: kind.as_str(),
            identity_id: identity,
            occurred_at,
            payload: payload(kind, occurred_at, data),
            endpoints: self.endpoints_for(kind),
            held: None,
        }
    }

    fn endpoints_for(&self, kind: EventKind) -> Vec<String> {
        self.routes
            .iter()
            .filter(|(_, types)| types.as_ref().is_none_or(|t| t.contains(&kind)))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

fn payload(kind: EventKind, occurred_at: DateTime<Utc>, data: Map<String, Value>) -> Value {
    json!({
        "type": kind.as_str(),
        "timestamp": occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "data": data,
    })
}

/// A passkey as events name it: never its key material.
fn passkey_summary(row: &PasskeyRow) -> Value {
    json!({
        "id": row.id,
        "name": row.name,
        "aaguid": row.aaguid,
        "authenticator": authenticator_name(row.aaguid),
        "backup_eligible": row.backup_eligible,
        "backup_state": row.backup_state,
    })
}

/// Whether the passkey's model was attested, and as what.
pub fn attestation_summary(attestation: Option<&AttestationRow>) -> Value {
    match attestation {
        Some(a) => json!({
            "attested": true,
            "format": a.format,
            "aaguid": a.aaguid,
            "description": a.description,
            "certification": a.certification,
            "metadata_no": a.metadata_no,
        }),
        None => json!({ "attested": false }),
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use strum::IntoEnumIterator;

    fn row() -> PasskeyRow {
        PasskeyRow {
            id: Uuid::new_v4(),
            identity_id: Uuid::new_v4(),
            credential_id: vec![1, 2, 3],
            credential: json!({"cred": {"key": "SECRET-KEY-MATERIAL"}}),
            name: "Laptop".into(),
            aaguid: Uuid::nil(),
            transports: vec!["internal".into()],
            backup_eligible: true,
            backup_state: true,
            sign_count: 7,
            flagged_at: None,
            created_at: Utc::now(),
            last_used_at: None,
            user_handle: vec![9; 16],
            unconfirmed_user_handles: vec![],
            prf_enabled: None,
            prf_salt: None,
        }
    }

    #[test]
    fn every_type_name_parses_back() {
        for kind in EventKind::iter() {
            assert_eq!(EventKind::from_str(kind.as_str()), Ok(kind));
        }
    }

    #[test]
    fn an_event_goes_to_the_endpoints_that_want_its_type() {
        let events = Events {
            routes: Arc::new(vec![
                ("all".into(), None),
                ("mailer".into(), Some([EventKind::PasskeyRegistered].into())),
            ]),
            hold_for: Duration::from_secs(10),
        };
        let client = ClientContext::default();
        assert_eq!(
            events
                .registered(&row(), None, Mediation::Modal, &client)
                .endpoints,
            ["all", "mailer"]
        );
        assert_eq!(events.renamed(&row(), "Old", &client).endpoints, ["all"]);
    }

    #[test]
    fn events_carry_no_key_material_or_user_handle() {
        let events = Events::new(&[], Duration::from_secs(10));
        let event = events.registered(
            &row(),
            None,
            Mediation::Conditional,
            &ClientContext::default(),
        );
        let text = event.payload.to_string();
        assert!(!text.contains("SECRET-KEY-MATERIAL"));
        assert!(!text.contains("credential_id"));
        assert_eq!(event.payload["type"], "passkey.registered");
        assert_eq!(event.payload["data"]["passkey"]["name"], "Laptop");
        assert_eq!(event.payload["data"]["mediation"], "conditional");
        assert_eq!(event.payload["data"]["actor"], "person");
    }

    #[test]
    fn a_login_event_waits_for_its_session_id_only_when_it_is_delivered() {
        let minted = Minted {
            record: LoginRecordId::generate(),
            session_id: None,
            delivery: SessionDelivery::Token,
            recovery_flow_id: Uuid::new_v4(),
            second_factor_pending: false,
        };
        let client = ClientContext::default();
        let unrouted = Events::new(&[], Duration::from_secs(10)).login(&row(), &minted, &client);
        assert!(unrouted.held.is_none());
        assert_eq!(unrouted.id, minted.record.as_uuid());
        let routed = Events {
            routes: Arc::new(vec![("all".into(), None)]),
            hold_for: Duration::from_secs(10),
        }
        .login(&row(), &minted, &client);
        assert_eq!(routed.held, Some(Duration::from_secs(10)));
        assert_eq!(routed.payload["data"]["kratos_session_id"], Value::Null);
    }
}
