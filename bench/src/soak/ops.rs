//! The soak's virtual users and what each visit does: registrations,
//! discoverable and identifier logins, autofill visits that never finish,
//! and list, rename and delete of the person's passkeys.
//!
//! Every request goes to one of the replicas, chosen per request (so a
//! ceremony's options and verify usually land on different replicas, as
//! behind a load balancer). A failure is classified once, by what a client
//! sees: the service's stable error id, a connection that failed, or an
//! answer the load tool did not expect.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kratos_passkeys_testkit::Authenticator;
use serde::Serialize;
use serde_json::{json, Value};
use url::Url;

use crate::ceremonies::{
    api_login, ceremony_id, check_login_answer, client, create_identity, Delivery,
};

/// What a visit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    Register,
    Login,
    LoginIdentifier,
    Autofill,
    List,
    Rename,
    Delete,
}

impl Op {
    pub const ALL: [Op; 7] = [
        Op::Register,
        Op::Login,
        Op::LoginIdentifier,
        Op::Autofill,
        Op::List,
        Op::Rename,
        Op::Delete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Register => "register",
            Op::Login => "login",
            Op::LoginIdentifier => "login-identifier",
            Op::Autofill => "autofill",
            Op::List => "list",
            Op::Rename => "rename",
            Op::Delete => "delete",
        }
    }

    /// Out of 100 visits. Logins dominate, as on a real front door;
    /// deletes stay below registrations so each person keeps passkeys to
    /// rename and delete.
    pub fn weight(self) -> u32 {
        match self {
            Op::Login => 35,
            Op::LoginIdentifier => 15,
            Op::Autofill => 15,
            Op::Register => 10,
            Op::List => 12,
            Op::Rename => 8,
            Op::Delete => 5,
        }
    }

    /// The visit for a number in 0..100.
    pub fn pick(roll: u32) -> Op {
        let mut left = roll % 100;
        for op in Op::ALL {
            if left < op.weight() {
                return op;
            }
            left -= op.weight();
        }
        Op::Login
    }
}

/// Why a visit failed, as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The service answered an error: its status and stable error id.
    Service { status: u16, id: String },
    /// No answer: the connection was refused, reset or timed out.
    Connection,
    /// A direct call to Kratos (the load tool refreshing its session).
    Kratos(String),
    /// An answer the load tool did not expect (a success of the wrong
    /// shape, a passkey missing from a list).
    Unexpected(String),
}

impl Failure {
    /// The label errors are counted by: `503 database_unavailable`,
    /// `connection`, ...
    pub fn label(&self) -> String {
        match self {
            Failure::Service { status, id } => format!("{status} {id}"),
            Failure::Connection => "connection".into(),
            Failure::Kratos(what) => format!("kratos-direct {what}"),
            Failure::Unexpected(what) => format!("unexpected: {what}"),
        }
    }
}

/// The replicas, and which of them the load balancer (this) sends to: one
/// that refused a connection is left out until its health check answers.
pub struct Replicas {
    pub public: Vec<Url>,
    up: Vec<AtomicBool>,
    next: AtomicUsize,
}

impl Replicas {
    pub fn new(public: Vec<Url>) -> Self {
        let up = public.iter().map(|_| AtomicBool::new(true)).collect();
        Self {
            public,
            up,
            next: AtomicUsize::new(0),
        }
    }

    /// Round robin over the replicas that are up; all of them when none is.
    pub fn choose(&self) -> usize {
        let n = self.public.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| (start + i) % n)
            .find(|&i| self.up[i].load(Ordering::Relaxed))
            .unwrap_or(start % n)
    }

    pub fn mark(&self, replica: usize, up: bool) {
        self.up[replica].store(up, Ordering::Relaxed);
    }
}

/// Where the visits go.
pub struct Targets {
    pub replicas: Replicas,
    pub kratos_public: Url,
    pub kratos_admin: Url,
    pub origin: String,
}

/// What a completed visit changed, for the end checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acknowledged {
    Nothing,
    /// A passkey the service answered 201 for.
    Registered(String),
    /// A passkey the service answered 204 for deleting.
    Deleted(String),
    /// A login answered with a session.
    LoggedIn,
}

/// Passkeys a person adds beyond the one it logs in with, at most: at the
/// cap a registration visit deletes the oldest instead. People keep a
/// handful of passkeys; without the cap registrations (10 %) outpace
/// deletes (5 %), every list and `allowCredentials` grows through the run,
/// and so does the memory a replica needs to answer them.
pub const MAX_EXTRAS: usize = 4;

/// A session token is renewed before the service would call it too old
/// to delete a passkey (`sessions.privileged_session_max_age`, 15 min).
const SESSION_RENEWAL: Duration = Duration::from_secs(600);

/// One person: an identity with a password, a session token, the passkey
/// it logs in with, and the passkeys it added since.
pub struct SoakUser {
    pub index: usize,
    http: reqwest::Client,
    email: String,
    token: String,
    token_at: Instant,
    primary: Authenticator,
    primary_id: String,
    extras: Vec<String>,
    renames: u64,
    /// A passkey whose delete failed: it may or may not be gone.
    uncertain: Option<String>,
}

fn joined(base: &Url, path: &str) -> Result<Url, Failure> {
    base.join(path)
        .map_err(|e| Failure::Unexpected(format!("joining {path}: {e}")))
}

/// The answer's JSON when its status is `expected`; else the failure.
async fn answer(
    sent: Result<reqwest::Response, reqwest::Error>,
    expected: u16,
    step: &str,
) -> Result<Value, Failure> {
    let response = sent.map_err(|_| Failure::Connection)?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|_| Failure::Connection)?;
    if status != expected {
        let id = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["id"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("(no error id: {step})"));
        return Err(Failure::Service { status, id });
    }
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|_| Failure::Unexpected(format!("{step}: not JSON")))
}

impl SoakUser {
    /// An identity (Kratos admin API), a session token (Kratos API login)
    /// and the passkey it logs in with (through a replica).
    pub async fn setup(t: &Targets, run_id: &str, index: usize) -> Result<Self> {
        let http = client(false)?;
        let email = format!("soak-{run_id}-{index}@example.test");
        create_identity(&http, &t.kratos_admin, &email)
            .await
            .with_context(|| format!("soak user {index}"))?;
        let token = api_login(&http, &t.kratos_public, &email).await?;
        let mut user = Self {
            index,
            http,
            email,
            token,
            token_at: Instant::now(),
            primary: Authenticator::new(),
            primary_id: String::new(),
            extras: Vec::new(),
            renames: 0,
            uncertain: None,
        };
        let mut primary = Authenticator::new();
        let id = user
            .register_with(t, &mut primary, &mut None)
            .await
            .map_err(|f| anyhow::anyhow!("soak user {index}: first passkey: {}", f.label()))?;
        user.primary = primary;
        user.primary_id = id;
        Ok(user)
    }

    /// A passkey whose delete failed in the last visit (the user no longer
    /// counts on it either way).
    pub fn take_uncertain(&mut self) -> Option<String> {
        self.uncertain.take()
    }

    /// The passkey this user registered in the set-up.
    pub fn primary_id(&self) -> &str {
        &self.primary_id
    }

    /// The visit this person makes of the one drawn: a registration at the
    /// cap deletes instead, a delete with nothing of its own registers.
    pub fn effective(&self, op: Op) -> Op {
        match op {
            Op::Register if self.extras.len() >= MAX_EXTRAS => Op::Delete,
            Op::Delete if self.extras.is_empty() => Op::Register,
            op => op,
        }
    }

    /// One visit; what it changed, and which replica answered last.
    pub async fn visit(
        &mut self,
        t: &Targets,
        op: Op,
    ) -> (Result<Acknowledged, Failure>, Option<usize>) {
        let mut last = None;
        let result = self.run(t, op, &mut last).await;
        if matches!(result, Err(Failure::Connection)) {
            if let Some(replica) = last {
                t.replicas.mark(replica, false);
            }
        }
        (result, last)
    }

    async fn run(
        &mut self,
        t: &Targets,
        op: Op,
        last: &mut Option<usize>,
    ) -> Result<Acknowledged, Failure> {
        if matches!(op, Op::Register | Op::List | Op::Rename | Op::Delete) {
            self.renew_session(t).await?;
        }
        match op {
            Op::Register => {
                let mut authenticator = Authenticator::new();
                let id = self.register_with(t, &mut authenticator, last).await?;
                self.extras.push(id.clone());
                Ok(Acknowledged::Registered(id))
            }
            Op::Login => self.login(t, json!({}), last).await,
            Op::LoginIdentifier => self.login(t, json!({"identifier": self.email}), last).await,
            Op::Autofill => {
                // The page asks for options for the autofill prompt and the
                // person never picks a passkey.
                let replica = t.replicas.choose();
                *last = Some(replica);
                let url = joined(&t.replicas.public[replica], "passkeys/login/options")?;
                let options = answer(
                    self.http.post(url).json(&json!({})).send().await,
                    200,
                    "autofill options",
                )
                .await?;
                ceremony_id(&options, "autofill options")
                    .map_err(|_| Failure::Unexpected("autofill options: no ceremony_id".into()))?;
                Ok(Acknowledged::Nothing)
            }
            Op::List => {
                let replica = t.replicas.choose();
                *last = Some(replica);
                let url = joined(&t.replicas.public[replica], "passkeys")?;
                let list = answer(
                    self.http
                        .get(url)
                        .header("X-Session-Token", &self.token)
                        .send()
                        .await,
                    200,
                    "list",
                )
                .await?;
                let listed = list["passkeys"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|p| p["id"].as_str())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                // Every passkey this person was told it has is listed.
                for id in std::iter::once(&self.primary_id).chain(&self.extras) {
                    if !listed.contains(&id.as_str()) {
                        return Err(Failure::Unexpected("list: a passkey is missing".into()));
                    }
                }
                Ok(Acknowledged::Nothing)
            }
            Op::Rename => {
                self.renames += 1;
                let id = match self.extras.last() {
                    Some(id) if self.renames.is_multiple_of(2) => id.clone(),
                    _ => self.primary_id.clone(),
                };
                let replica = t.replicas.choose();
                *last = Some(replica);
                let url = joined(&t.replicas.public[replica], &format!("passkeys/{id}"))?;
                answer(
                    self.http
                        .patch(url)
                        .header("X-Session-Token", &self.token)
                        .json(&json!({"name": format!("soak key {}", self.renames)}))
                        .send()
                        .await,
                    200,
                    "rename",
                )
                .await?;
                Ok(Acknowledged::Nothing)
            }
            Op::Delete => {
                let Some(id) = self.extras.first().cloned() else {
                    // Nothing of its own to delete yet: add one instead.
                    return Box::pin(self.run(t, Op::Register, last)).await;
                };
                let replica = t.replicas.choose();
                *last = Some(replica);
                let url = joined(&t.replicas.public[replica], &format!("passkeys/{id}"))?;
                let deleted = answer(
                    self.http
                        .delete(url)
                        .header("X-Session-Token", &self.token)
                        .send()
                        .await,
                    204,
                    "delete",
                )
                .await;
                self.extras.remove(0);
                if let Err(failure) = deleted {
                    self.uncertain = Some(id);
                    return Err(failure);
                }
                Ok(Acknowledged::Deleted(id))
            }
        }
    }

    async fn renew_session(&mut self, t: &Targets) -> Result<(), Failure> {
        if self.token_at.elapsed() < SESSION_RENEWAL {
            return Ok(());
        }
        self.token = api_login(&self.http, &t.kratos_public, &self.email)
            .await
            .map_err(|_| Failure::Kratos("API login".into()))?;
        self.token_at = Instant::now();
        Ok(())
    }

    /// Options and verify (each on the replica the balancer picks); the
    /// new passkey's id and the replica that verified.
    async fn register_with(
        &mut self,
        t: &Targets,
        authenticator: &mut Authenticator,
        last: &mut Option<usize>,
    ) -> Result<String, Failure> {
        let replica = t.replicas.choose();
        *last = Some(replica);
        let url = joined(&t.replicas.public[replica], "passkeys/registration/options")?;
        let options = answer(
            self.http
                .post(url)
                .header("X-Session-Token", &self.token)
                .json(&json!({}))
                .send()
                .await,
            200,
            "registration options",
        )
        .await?;
        let ceremony = ceremony_id(&options, "registration options")
            .map_err(|_| Failure::Unexpected("registration options: no ceremony_id".into()))?;
        let credential = authenticator.register_with(&options, &t.origin, |_| {});
        let replica = t.replicas.choose();
        *last = Some(replica);
        let url = joined(&t.replicas.public[replica], "passkeys/registration/verify")?;
        let created = answer(
            self.http
                .post(url)
                .header("X-Session-Token", &self.token)
                .json(&json!({"ceremony_id": ceremony, "credential": credential}))
                .send()
                .await,
            201,
            "registration verify",
        )
        .await?;
        let id = created["id"]
            .as_str()
            .ok_or_else(|| Failure::Unexpected("registration verify: no id".into()))?;
        Ok(id.to_string())
    }

    async fn login(
        &mut self,
        t: &Targets,
        body: Value,
        last: &mut Option<usize>,
    ) -> Result<Acknowledged, Failure> {
        let replica = t.replicas.choose();
        *last = Some(replica);
        let url = joined(&t.replicas.public[replica], "passkeys/login/options")?;
        let options = answer(
            self.http.post(url).json(&body).send().await,
            200,
            "login options",
        )
        .await?;
        let ceremony = ceremony_id(&options, "login options")
            .map_err(|_| Failure::Unexpected("login options: no ceremony_id".into()))?;
        let credential = self.primary.login_with(&options, &t.origin, |_| {});
        let replica = t.replicas.choose();
        *last = Some(replica);
        let url = joined(&t.replicas.public[replica], "passkeys/login/verify")?;
        let body = answer(
            self.http
                .post(url)
                .json(
                    &json!({"ceremony_id": ceremony, "credential": credential, "session": "token"}),
                )
                .send()
                .await,
            200,
            "login verify",
        )
        .await?;
        check_login_answer(&body, Delivery::Token, false)
            .map_err(|_| Failure::Unexpected("login verify: no session".into()))?;
        Ok(Acknowledged::LoggedIn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_cover_every_roll() {
        assert_eq!(Op::ALL.iter().map(|o| o.weight()).sum::<u32>(), 100);
        let mut seen = std::collections::BTreeMap::new();
        for roll in 0..100 {
            *seen.entry(Op::pick(roll)).or_insert(0u32) += 1;
        }
        for op in Op::ALL {
            assert_eq!(seen[&op], op.weight(), "{}", op.name());
        }
    }

    #[test]
    fn the_balancer_skips_replicas_that_are_down() {
        let replicas = Replicas::new(vec![
            Url::parse("http://127.0.0.1:1/").unwrap(),
            Url::parse("http://127.0.0.1:2/").unwrap(),
        ]);
        let both: Vec<usize> = (0..4).map(|_| replicas.choose()).collect();
        assert_eq!(both, vec![0, 1, 0, 1]);
        replicas.mark(0, false);
        assert!((0..4).all(|_| replicas.choose() == 1));
        replicas.mark(1, false);
        // None up: requests still go somewhere and fail there.
        let _ = replicas.choose();
        replicas.mark(0, true);
        assert!((0..4).all(|_| replicas.choose() == 0));
    }

    #[test]
    fn failures_are_labelled_by_what_a_client_sees() {
        let f = Failure::Service {
            status: 503,
            id: "database_unavailable".into(),
        };
        assert_eq!(f.label(), "503 database_unavailable");
        assert_eq!(Failure::Connection.label(), "connection");
    }
}
