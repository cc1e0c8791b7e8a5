//! kratos-passkeys: passkeys beside a self-hosted Ory Kratos.
//!
//! Kratos keeps identities, passwords and sessions; this service runs the
//! WebAuthn ceremonies, stores credentials keyed by the Kratos identity id,
//! and after a passkey login hands out a genuine Kratos session.

pub mod aaguid;
pub mod admin_access;
pub mod association_files;
pub mod attestation;
pub mod authenticator_policy;
pub mod cause_chain;
pub mod ceremonies;
pub mod ceremony_keys;
pub mod clock;
pub mod conditional_registration;
pub mod configuration;
pub mod cors;
pub mod domain;
pub mod error;
pub mod events;
pub mod gc;
pub mod kratos;
pub mod limits;
pub mod login_hooks;
pub mod login_limits;
pub mod login_marker;
pub mod login_records;
pub mod metadata;
pub mod metrics;
pub mod migration;
pub mod passkey_login;
pub mod passkey_removal;
pub mod prf;
pub mod recovery_hook;
pub mod related_origins;
pub mod routes;
pub mod sealed_ceremony;
pub mod session;
pub mod startup;
pub mod state;
pub mod store;
pub mod stored_credential;
pub mod telemetry;
pub mod webauthn_policy;
