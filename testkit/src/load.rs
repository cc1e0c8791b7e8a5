//! Load loops for the fault and failover tests: people registering passkeys
//! and signing in with them, one request after another until told to stop,
//! each request recorded with what it answered and when.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::Authenticator;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    RegistrationOptions,
    Registration,
    LoginOptions,
    Login,
}

/// What one request saw: sent `at`, answered `done`.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub kind: Kind,
    /// Which loop sent it (its index in the caller's list).
    pub worker: usize,
    pub at: Instant,
    pub done: Instant,
    /// 0 when no answer came (the service was gone).
    pub status: u16,
    pub error_id: Option<String>,
    /// The passkey a registration stored or a login used, when it succeeded.
    pub passkey: Option<String>,
}

impl Outcome {
    pub fn took(&self) -> Duration {
        self.done - self.at
    }

    pub fn succeeded(&self) -> bool {
        matches!(self.status, 200 | 201)
    }
}

#[derive(Debug, Default)]
pub struct Tally {
    pub outcomes: Vec<Outcome>,
}

impl Tally {
    fn record(
        &mut self,
        kind: Kind,
        worker: usize,
        at: Instant,
        (status, body): &(u16, Value),
        passkey: Option<&str>,
    ) {
        self.outcomes.push(Outcome {
            kind,
            worker,
            at,
            done: Instant::now(),
            status: *status,
            error_id: body["error"]["id"].as_str().map(str::to_string),
            passkey: passkey.map(str::to_string),
        });
    }

    /// The passkeys registrations stored (answered 201), in answer order.
    pub fn created(&self) -> Vec<(usize, String)> {
        self.outcomes
            .iter()
            .filter(|o| o.kind == Kind::Registration)
            .filter_map(|o| Some((o.worker, o.passkey.clone()?)))
            .collect()
    }

    pub fn succeeded_since(&self, since: Instant, kind: Kind) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.at >= since && o.kind == kind && o.succeeded())
            .count()
    }
}

/// How many requests answered each status and error id.
pub fn summary<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for o in outcomes {
        let key = format!("{} {}", o.status, o.error_id.as_deref().unwrap_or(""));
        *counts.entry(key.trim().to_string()).or_insert(0) += 1;
    }
    counts
}

/// One loop's share: its index, the shared tally and stop flag, and the
/// pause between two rounds (none: as fast as the service answers).
#[derive(Clone)]
pub struct Worker {
    pub index: usize,
    pub tally: Arc<Mutex<Tally>>,
    pub stop: Arc<AtomicBool>,
    pub pause: Duration,
}

impl Worker {
    fn record(&self, kind: Kind, at: Instant, answer: &(u16, Value), passkey: Option<&str>) {
        self.tally
            .lock()
            .expect("tally")
            .record(kind, self.index, at, answer, passkey);
    }

    async fn rest(&self) {
        if !self.pause.is_zero() {
            tokio::time::sleep(self.pause).await;
        }
    }
}

/// One ceremony: options, then (when they came) verify with the body
/// `verify` makes of them; `stored` is the passkey a successful verify
/// stored or used.
struct Ceremony<'a> {
    options: (&'static str, Kind),
    verify: (&'static str, Kind),
    body: &'a mut (dyn FnMut(&Value) -> Value + Send),
    stored: &'a (dyn Fn(&(u16, Value)) -> Option<String> + Sync),
}

async fn until_stopped<P, F>(post: &P, worker: &Worker, ceremony: Ceremony<'_>)
where
    P: Fn(&'static str, Value) -> F,
    F: Future<Output = (u16, Value)>,
{
    while !worker.stop.load(Ordering::Relaxed) {
        let at = Instant::now();
        let options = post(ceremony.options.0, json!({})).await;
        worker.record(ceremony.options.1, at, &options, None);
        if options.0 == 200 {
            let body = (ceremony.body)(&options.1);
            let at = Instant::now();
            let answer = post(ceremony.verify.0, body).await;
            let stored = (ceremony.stored)(&answer);
            worker.record(ceremony.verify.1, at, &answer, stored.as_deref());
        }
        worker.rest().await;
    }
}

/// Registrations (options, then verify) by one signed-in person until
/// stopped. `post` sends JSON as that person and answers the status (0: no
/// answer) and body.
pub async fn registrations<P, F>(post: P, worker: Worker)
where
    P: Fn(&'static str, Value) -> F,
    F: Future<Output = (u16, Value)>,
{
    let mut authenticator = Authenticator::new();
    let mut body = |options: &Value| {
        let credential = authenticator.register(options);
        json!({"ceremony_id": options["ceremony_id"], "credential": credential})
    };
    let stored = |(status, answer): &(u16, Value)| {
        answer["id"]
            .as_str()
            .filter(|_| *status == 201)
            .map(str::to_string)
    };
    let ceremony = Ceremony {
        options: ("/passkeys/registration/options", Kind::RegistrationOptions),
        verify: ("/passkeys/registration/verify", Kind::Registration),
        body: &mut body,
        stored: &stored,
    };
    until_stopped(&post, &worker, ceremony).await;
}

/// Discoverable logins with `authenticator`'s one passkey, `passkey`, until
/// stopped; `post` as for `registrations`, without a session.
pub async fn logins<P, F>(
    post: P,
    mut authenticator: Authenticator,
    passkey: String,
    worker: Worker,
) where
    P: Fn(&'static str, Value) -> F,
    F: Future<Output = (u16, Value)>,
{
    let mut body = |options: &Value| {
        let credential = authenticator.login(options);
        json!({"ceremony_id": options["ceremony_id"], "credential": credential, "session": "token"})
    };
    let stored = |(status, _): &(u16, Value)| (*status == 200).then(|| passkey.clone());
    let ceremony = Ceremony {
        options: ("/passkeys/login/options", Kind::LoginOptions),
        verify: ("/passkeys/login/verify", Kind::Login),
        body: &mut body,
        stored: &stored,
    };
    until_stopped(&post, &worker, ceremony).await;
}
