//! Kratos's after-recovery web hook, standing in front of the team's own
//! notifier and of Kratos's `revoke_active_sessions`.
//!
//! Every passkey login is, to Kratos, a recovery (the session is minted
//! through an admin recovery code), so every after-recovery hook would run
//! on every passkey login: "your account was recovered" mail, everyone
//! signed out everywhere. Kratos's hooks cannot tell the two apart by
//! themselves: support staff create admin recovery codes too, and a hook
//! sees neither who redeemed the code nor any session. The flows this
//! service redeems carry its mark (`crate::login_marker`); this hook checks
//! it, leaves passkey logins alone, and for every other recovery does what
//! the team's hooks did: forwards the body's `notify` object to the
//! notifier and revokes the person's other sessions.
//!
//! Kratos calls it before it stores the recovered session (v1.3.1
//! `selfservice/strategy/code/strategy_recovery.go:200`, the session is
//! stored at :206/:210), so "every active session" is "every other session".

use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::cause_chain::CauseChain;
use crate::configuration::RecoveryHookSettings;
use crate::domain::IdentityId;
use crate::events::Events;
use crate::kratos::{KratosClient, KratosError};
use crate::login_marker::LoginMarker;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// The body `kratos/after-recovery.jsonnet` renders.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AfterRecovery {
    /// The recovery flow Kratos just completed.
    pub flow_id: Uuid,
    #[schema(value_type = Uuid)]
    pub identity_id: IdentityId,
    /// The flow's mark, when it came from a passkey login.
    #[serde(default)]
    pub passkey_login: Option<String>,
    /// Forwarded unchanged to the notifier after a real recovery.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub notify: Option<Value>,
}

/// What the hook made of a recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A flow this service created to sign someone in: nothing happens.
    PasskeyLogin,
    /// A real recovery: other sessions revoked (when configured), the
    /// notifier's notice written to the outbox (delivered by the worker).
    Recovery { sessions_revoked: usize },
}

/// What stopped the hook; answered to Kratos, which then refuses the
/// recovery.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryHookError {
    #[error("revoking the recovered identity's sessions failed")]
    Kratos(#[from] KratosError),
    #[error("writing the recovery notice failed")]
    Store(#[from] StoreError),
}

/// Forwards `notify` to the team's notifier: the delivery worker sends
/// the notices the hook writes to the outbox.
#[derive(Clone)]
pub struct Notifier {
    target: Option<Target>,
}

#[derive(Clone)]
struct Target {
    http: reqwest::Client,
    url: url::Url,
    auth: Option<(HeaderName, HeaderValue)>,
}

impl Notifier {
    pub fn new(settings: &RecoveryHookSettings, timeout: Duration) -> anyhow::Result<Self> {
        let target = match &settings.notifier_url {
            None => None,
            Some(url) => {
                let header = settings.notifier_auth_header.trim();
                let auth = if header.is_empty() {
                    None
                } else {
                    let name = HeaderName::try_from(header).map_err(|_| {
                        anyhow::anyhow!("recovery_hook.notifier_auth_header is not a header name")
                    })?;
                    let mut value =
                        HeaderValue::try_from(settings.notifier_auth_value.expose_secret())
                            .map_err(|_| {
                                anyhow::anyhow!(
                                    "recovery_hook.notifier_auth_value is not a header value"
                                )
                            })?;
                    value.set_sensitive(true);
                    Some((name, value))
                };
                let http = reqwest::Client::builder()
                    .timeout(timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()?;
                Some(Target {
                    http,
                    url: url.clone(),
                    auth,
                })
            }
        };
        Ok(Self { target })
    }

    pub fn is_configured(&self) -> bool {
        self.target.is_some()
    }

    /// One attempt; any 2xx is a delivery. `Idempotency-Key` is the
    /// notice's id, the same on every attempt: delivery is at least once
    /// (a process killed mid-send sends again), so a notifier that keeps
    /// the keys it saw sends its mail once.
    pub async fn send(&self, notice: Uuid, body: &Value) -> Result<(), String> {
        match &self.target {
            Some(target) => target.send(notice, body).await,
            None => Err("recovery_hook.notifier_url is not configured".into()),
        }
    }
}

impl Target {
    async fn send(&self, notice: Uuid, body: &Value) -> Result<(), String> {
        let mut request = self
            .http
            .post(self.url.clone())
            .header("Idempotency-Key", notice.to_string())
            .json(body);
        if let Some((name, value)) = &self.auth {
            request = request.header(name.clone(), value.clone());
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("it answered {}", response.status()))
        }
    }
}

/// What the hook works with.
pub struct Hook<'a> {
    pub marker: &'a LoginMarker,
    pub kratos: &'a KratosClient,
    pub notifier: &'a Notifier,
    pub store: &'a Store,
    pub events: &'a Events,
    pub settings: &'a RecoveryHookSettings,
    pub metrics: &'a Metrics,
}

/// Decides what a completed recovery is, and acts on a real one. An error
/// (Kratos unavailable while revoking, the database while writing the
/// notice) is answered to Kratos, which then refuses the recovery, as it
/// would had its own `revoke_active_sessions` failed: the person tries
/// again rather than stays signed in elsewhere, or goes unannounced.
pub async fn after_recovery(
    hook: Hook<'_>,
    body: AfterRecovery,
) -> Result<Verdict, RecoveryHookError> {
    let Hook {
        marker,
        kratos,
        notifier,
        store,
        events,
        settings,
        metrics,
    } = hook;
    let identity = body.identity_id;
    let flow = body.flow_id;
    match body.passkey_login.as_deref() {
        Some(mark) if marker.is_mark_of(flow, mark) => {
            metrics.recovery_hook("passkey_login", 1);
            tracing::debug!(%flow, %identity, "after-recovery hook: a passkey login; nothing to do");
            return Ok(Verdict::PasskeyLogin);
        }
        Some(_) => {
            tracing::warn!(%flow, %identity, "after-recovery hook: a recovery flow carries a mark that is not ours; treated as a real recovery");
        }
        None => {}
    }
    metrics.recovery_hook("recovery", 1);
    let sessions_revoked = if settings.revoke_other_sessions {
        let revoked = kratos
            .revoke_active_sessions(identity)
            .await
            .inspect_err(|error| {
                tracing::error!(%flow, %identity, cause = ?CauseChain(error), "revoking the sessions of a recovered identity failed");
            })?;
        metrics.recovery_hook("sessions_revoked", revoked as u64);
        revoked
    } else {
        0
    };
    if let Some(notify) = body.notify.filter(|_| notifier.is_configured()) {
        // Written before Kratos hears back: from here the outbox retries
        // it on the events schedule, across restarts.
        store
            .append_events(vec![events.recovery_notice(identity, notify)])
            .await
            .inspect_err(|error| {
                tracing::error!(%flow, %identity, cause = ?CauseChain(error), "writing the recovery notice failed");
            })?;
    }
    tracing::info!(%flow, %identity, sessions_revoked, "after-recovery hook: a real recovery");
    Ok(Verdict::Recovery { sessions_revoked })
}
