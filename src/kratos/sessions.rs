//! Kratos's admin API for an identity's sessions: signing the person out
//! everywhere after a real recovery, and finding the session a passkey
//! login minted when `whoami` cannot name it (a second factor pending).

use chrono::{DateTime, Utc};
use reqwest::header::LINK;
use reqwest::StatusCode;
use serde::Deserialize;

use super::credentials::next_page_token;
use super::{decode, unexpected, KratosClient, KratosError};
use crate::domain::{IdentityId, KratosSessionId};

/// How Kratos names the method of a session issued by a recovery code.
const RECOVERY_CODE_METHOD: &str = "code_recovery";
/// How far the clocks of this service and Kratos may disagree when the
/// minted session is looked for by its time.
const CLOCK_SLACK: chrono::Duration = chrono::Duration::seconds(10);
const PAGE_SIZE: u32 = 250;

/// A session as the admin list names it.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionSummary {
    pub id: KratosSessionId,
    pub authenticated_at: DateTime<Utc>,
    #[serde(default)]
    pub authentication_methods: Vec<AuthenticationMethod>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthenticationMethod {
    #[serde(default)]
    pub method: String,
}

impl KratosClient {
    /// `GET /admin/identities/{id}/sessions?active=true`, every page.
    pub async fn active_sessions(
        &self,
        identity: IdentityId,
    ) -> Result<Vec<SessionSummary>, KratosError> {
        const OP: &str = "list_identity_sessions";
        let _timer = self.metrics.kratos_timer(OP);
        let mut sessions = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut url = self.admin(&format!("admin/identities/{identity}/sessions"));
            {
                let mut query = url.query_pairs_mut();
                query
                    .append_pair("active", "true")
                    .append_pair("page_size", &PAGE_SIZE.to_string());
                if let Some(token) = &page_token {
                    query.append_pair("page_token", token);
                }
            }
            let response = self.admin_get(OP, url).await?;
            match response.status() {
                StatusCode::OK => {}
                // No such identity: it has no sessions.
                StatusCode::NOT_FOUND => return Ok(sessions),
                status => return Err(unexpected(OP, status, response).await),
            }
            page_token = response
                .headers()
                .get_all(LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_page_token);
            let page: Vec<SessionSummary> = response.json().await.map_err(decode(OP))?;
            let last = page.is_empty() || page_token.is_none();
            sessions.extend(page);
            if last {
                return Ok(sessions);
            }
        }
    }

    /// Revokes every active session of `identity`, as Kratos's
    /// `revoke_active_sessions` hook does (they stay listed, inactive).
    /// Says how many.
    pub async fn revoke_active_sessions(&self, identity: IdentityId) -> Result<usize, KratosError> {
        let sessions = self.active_sessions(identity).await?;
        for session in &sessions {
            self.revoke_session(session.id).await?;
        }
        Ok(sessions.len())
    }

    /// The session a passkey login minted at `minted_at`, found among the
    /// identity's active sessions when `whoami` cannot name it (Kratos
    /// answers 403 until the second factor is presented): the only one
    /// issued by a recovery code and nothing else, around that time. `None`
    /// when there is no such session or more than one.
    pub async fn minted_recovery_session(
        &self,
        identity: IdentityId,
        minted_at: DateTime<Utc>,
    ) -> Result<Option<KratosSessionId>, KratosError> {
        let sessions = self.active_sessions(identity).await?;
        Ok(single_recovery_session(&sessions, minted_at))
    }
}

fn single_recovery_session(
    sessions: &[SessionSummary],
    minted_at: DateTime<Utc>,
) -> Option<KratosSessionId> {
    let window = (minted_at - CLOCK_SLACK)..=(minted_at + CLOCK_SLACK);
    let mut candidates = sessions.iter().filter(|s| {
        window.contains(&s.authenticated_at)
            && matches!(s.authentication_methods.as_slice(), [only] if only.method == RECOVERY_CODE_METHOD)
    });
    let first = candidates.next()?;
    candidates.next().is_none().then_some(first.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(at: DateTime<Utc>, methods: &[&str]) -> SessionSummary {
        SessionSummary {
            id: KratosSessionId::new(uuid::Uuid::new_v4()),
            authenticated_at: at,
            authentication_methods: methods
                .iter()
                .map(|m| AuthenticationMethod {
                    method: m.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn the_one_recovery_session_of_the_moment_is_found() {
        let now = Utc::now();
        let minted = session(now, &["code_recovery"]);
        let sessions = vec![
            session(now, &["password"]),
            session(now - chrono::Duration::minutes(5), &["code_recovery"]),
            session(now, &["code_recovery", "totp"]),
            minted.clone(),
        ];
        assert_eq!(single_recovery_session(&sessions, now), Some(minted.id));
    }

    #[test]
    fn two_candidates_name_none() {
        let now = Utc::now();
        let sessions = vec![
            session(now, &["code_recovery"]),
            session(now + chrono::Duration::seconds(1), &["code_recovery"]),
        ];
        assert_eq!(single_recovery_session(&sessions, now), None);
        assert_eq!(single_recovery_session(&[], now), None);
    }
}
