//! A real HTTP receiver for the service's events, and the independent
//! Standard Webhooks check (the `standardwebhooks` npm package, run with
//! node) every delivery goes through.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use kratos_passkeys::configuration::{EndpointSettings, Settings};
use secrecy::SecretString;
use serde_json::{json, Value};
use url::Url;

use super::TestApp;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One request the receiver got, as it arrived.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
}

impl Delivery {
    pub fn payload(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    pub fn kind(&self) -> String {
        self.payload()["type"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    Accept,
    /// 500 to the first `n` attempts of each event, then 204.
    FailFirst(usize),
    /// Holds every request this long before 204 (longer than the
    /// service's timeout: it gives up first).
    Hold(Duration),
    /// 500 to every event of this type, 204 to the others.
    Refuse(&'static str),
}

#[derive(Default)]
struct Seen {
    /// Every arrival, answered or not.
    arrivals: Vec<Delivery>,
    /// The ones answered 2xx.
    accepted: Vec<Delivery>,
    /// Per event id: requests in progress now, and the most ever at once.
    in_flight: HashMap<String, (usize, usize)>,
}

struct Shared {
    seen: Mutex<Seen>,
    behaviour: Mutex<Behaviour>,
}

pub struct Receiver {
    pub port: u16,
    shared: Arc<Shared>,
    handle: Mutex<Option<ServerHandle>>,
}

impl Receiver {
    /// Listens on a port the OS picks, bound from the start (no other
    /// process can take it between choosing and listening).
    pub async fn start(behaviour: Behaviour) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("the receiver binds a port");
        let port = listener.local_addr().expect("its address").port();
        let receiver = Receiver {
            port,
            shared: Arc::new(Shared {
                seen: Mutex::new(Seen::default()),
                behaviour: Mutex::new(behaviour),
            }),
            handle: Mutex::new(None),
        };
        receiver.serve(listener);
        receiver
    }

    pub fn url(&self) -> Url {
        Url::parse(&format!("http://127.0.0.1:{}/events", self.port)).expect("url")
    }

    /// Listens again on its port after `down`. The port was free while
    /// the receiver was down: if something took it, this says so.
    pub fn up(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap_or_else(|e| {
            panic!(
                "port {} was taken while the receiver was down: {e}",
                self.port
            )
        });
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let shared = self.shared.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::from(shared.clone()))
                .default_service(web::to(receive))
        })
        .workers(2)
        .listen(listener)
        .expect("the receiver listens")
        .run();
        *self.handle.lock().expect("lock") = Some(server.handle());
        tokio::spawn(server);
    }

    /// Stops listening: deliveries meet a closed port.
    pub async fn down(&self) {
        let handle = self.handle.lock().expect("lock").take();
        if let Some(handle) = handle {
            handle.stop(false).await;
        }
    }

    pub fn behave(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().expect("lock") = behaviour;
    }

    pub fn accepted(&self) -> Vec<Delivery> {
        self.shared.seen.lock().expect("lock").accepted.clone()
    }

    pub fn arrivals(&self) -> Vec<Delivery> {
        self.shared.seen.lock().expect("lock").arrivals.clone()
    }

    /// The most requests for one event id the receiver ever had at once.
    pub fn most_at_once(&self) -> usize {
        let seen = self.shared.seen.lock().expect("lock");
        seen.in_flight
            .values()
            .map(|(_, most)| *most)
            .max()
            .unwrap_or(0)
    }

    /// Waits until `n` distinct events were accepted, and answers them in
    /// the order of their first acceptance. Generous: a loaded machine
    /// cannot fail it.
    pub async fn wait_for(&self, n: usize) -> Vec<Delivery> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let firsts = first_of_each(&self.accepted());
            if firsts.len() >= n {
                return firsts;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} events arrived: {:?}",
                firsts.len(),
                firsts.iter().map(Delivery::kind).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until a request has arrived (answered or not).
    pub async fn wait_for_arrival(&self) -> Delivery {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(first) = self.arrivals().into_iter().next() {
                return first;
            }
            assert!(Instant::now() < deadline, "nothing arrived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Waits until the worker has committed `delivered` deliveries as
/// delivered, with nothing left to send: what the receiver has by then is
/// all it will get, so counting its acceptances is safe.
pub async fn wait_settled(app: &TestApp, delivered: i64) {
    app.eventually_count(
        "SELECT count(*) AS count FROM event_deliveries WHERE state = 'delivered'",
        delivered,
    )
    .await;
    assert_eq!(
        app.count(
            "SELECT count(*) AS count FROM event_deliveries WHERE state IN ('held', 'pending')"
        ),
        0,
        "nothing is left to send"
    );
}

/// The first acceptance of each event id, in arrival order.
pub fn first_of_each(deliveries: &[Delivery]) -> Vec<Delivery> {
    let mut seen = std::collections::HashSet::new();
    deliveries
        .iter()
        .filter(|d| seen.insert(d.id.clone()))
        .cloned()
        .collect()
}

async fn receive(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    // A recovery notice has no signature: its id is its Idempotency-Key.
    let id = match header("webhook-id") {
        id if id.is_empty() => header("idempotency-key"),
        id => id,
    };
    let delivery = Delivery {
        id,
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let attempts_before = {
        let mut seen = shared.seen.lock().expect("lock");
        seen.arrivals.push(delivery.clone());
        let (now, most) = seen.in_flight.entry(delivery.id.clone()).or_default();
        *now += 1;
        *most = (*most).max(*now);
        seen.arrivals.iter().filter(|d| d.id == delivery.id).count() - 1
    };
    let behaviour = *shared.behaviour.lock().expect("lock");
    let accept = match behaviour {
        Behaviour::Accept => true,
        Behaviour::FailFirst(n) => attempts_before >= n,
        Behaviour::Hold(pause) => {
            tokio::time::sleep(pause).await;
            true
        }
        Behaviour::Refuse(kind) => delivery.kind() != kind,
    };
    // Slow enough that two senders of one event would overlap here.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut seen = shared.seen.lock().expect("lock");
    if let Some((now, _)) = seen.in_flight.get_mut(&delivery.id) {
        *now -= 1;
    }
    if accept {
        seen.accepted.push(delivery);
        HttpResponse::NoContent().finish()
    } else {
        HttpResponse::InternalServerError().finish()
    }
}

/// One endpoint, the receiver, with pauses short enough for a test.
pub fn deliver_to(settings: &mut Settings, receiver: &Receiver) {
    settings.events.endpoints = vec![EndpointSettings {
        name: Some("test-receiver".into()),
        url: receiver.url(),
        secret: SecretString::from(SECRET.to_string()),
        types: Vec::new(),
    }];
    quick_retries(settings);
}

pub fn quick_retries(settings: &mut Settings) {
    settings.events.first_backoff = Duration::from_millis(100);
    settings.events.max_backoff = Duration::from_millis(400);
    settings.events.poll_interval = Duration::from_millis(100);
    // Generous: a delivery timed out on a loaded machine would be sent twice.
    settings.events.request_timeout = Duration::from_secs(10);
}

/// The binary's `serve` with the worker's pauses short enough for a test
/// (add the endpoints or the notifier with further `.env` calls).
pub fn serve_delivering(database_url: &str) -> Command {
    let mut command = super::binary::serve(database_url);
    command
        .env("KRATOS_PASSKEYS__EVENTS__POLL_INTERVAL", "100ms")
        .env("KRATOS_PASSKEYS__EVENTS__FIRST_BACKOFF", "100ms");
    command
}

/// The JSON the binary takes for the same endpoint.
pub fn endpoints_json(receiver: &Receiver) -> String {
    json!([{ "name": "test-receiver", "url": receiver.url(), "secret": SECRET }]).to_string()
}

/// Checks each delivery with the `standardwebhooks` package: the verified
/// payload, or why it was refused.
pub fn verify_independently(deliveries: &[Delivery]) -> Vec<Result<Value, String>> {
    let script = std::env::var("KRATOS_PASSKEYS_TEST_WEBHOOK_VERIFIER").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/standard-webhooks/verify.mjs"
        )
        .into()
    });
    let modules = std::path::Path::new(&script)
        .with_file_name("node_modules")
        .join("standardwebhooks");
    assert!(
        modules.exists(),
        "the Standard Webhooks verifier is not installed ({}): scripts/test installs it (npm ci in tests/standard-webhooks)",
        modules.display()
    );
    let input = json!({
        "secret": SECRET,
        "deliveries": deliveries.iter().map(|d| json!({
            "headers": {
                "webhook-id": d.id,
                "webhook-timestamp": d.timestamp,
                "webhook-signature": d.signature,
            },
            "body": d.body,
        })).collect::<Vec<_>>(),
    });
    let mut child = Command::new("node")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs the verifier");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write to the verifier");
    let output = child.wait_with_output().expect("the verifier finishes");
    assert!(output.status.success(), "the verifier failed");
    let results: Vec<Value> = serde_json::from_slice(&output.stdout).expect("verifier JSON");
    results
        .into_iter()
        .map(|r| {
            if r["ok"] == true {
                Ok(r["payload"].clone())
            } else {
                Err(r["error"].as_str().unwrap_or_default().to_string())
            }
        })
        .collect()
}
