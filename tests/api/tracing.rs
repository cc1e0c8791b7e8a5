//! One trace per passkey login, across the service and Kratos: the real
//! binary exports its spans to a real Jaeger, the test Kratos (started by
//! scripts/test with `TRACING_PROVIDER=otel`) exports its own there too, and
//! Jaeger's query API must hold them as one trace, the caller's.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::binary::{self, Served};
use crate::helpers::{create_database, Authenticator};

/// Jaeger's query API (scripts/test: 127.0.0.1:16686).
fn jaeger_query() -> String {
    std::env::var("KRATOS_PASSKEYS_TEST_JAEGER_QUERY")
        .unwrap_or_else(|_| "http://127.0.0.1:16686".into())
}

/// Jaeger's OTLP/HTTP receiver (scripts/test: 127.0.0.1:4318).
fn jaeger_otlp() -> String {
    std::env::var("KRATOS_PASSKEYS_TEST_JAEGER_OTLP")
        .unwrap_or_else(|_| "http://127.0.0.1:4318/".into())
}

/// One span as Jaeger's query API gives it, with its service's name.
#[derive(Debug, Clone)]
struct Span {
    span_id: String,
    trace_id: String,
    operation: String,
    service: String,
    parent: Option<String>,
}

fn spans(trace: &Value) -> Vec<Span> {
    let processes = &trace["processes"];
    trace["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|span| Span {
            span_id: span["spanID"].as_str().expect("spanID").to_string(),
            trace_id: span["traceID"].as_str().expect("traceID").to_string(),
            operation: span["operationName"].as_str().expect("name").to_string(),
            service: processes[span["processID"].as_str().expect("processID")]["serviceName"]
                .as_str()
                .expect("serviceName")
                .to_string(),
            parent: span["references"].as_array().and_then(|refs| {
                refs.iter()
                    .find(|r| r["refType"] == "CHILD_OF")
                    .and_then(|r| r["spanID"].as_str())
                    .map(str::to_string)
            }),
        })
        .collect()
}

/// Asks Jaeger for the trace until `complete` holds for its spans; spans
/// reach it in batches, from two processes.
async fn trace_when(trace_id: &str, complete: impl Fn(&[Span]) -> bool) -> (Value, Vec<Span>) {
    let http = reqwest::Client::new();
    let url = format!("{}/api/traces/{trace_id}", jaeger_query());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last;
    loop {
        match http.get(&url).send().await {
            Ok(response) if response.status().is_success() => {
                let body: Value = response.json().await.expect("Jaeger's JSON");
                let trace = body["data"][0].clone();
                let found = spans(&trace);
                if complete(&found) {
                    return (trace, found);
                }
                last = format!("{found:#?}");
            }
            Ok(response) => last = format!("Jaeger answered {}", response.status()),
            Err(error) => {
                last = format!("Jaeger at {url} is unreachable (scripts/test starts it): {error}")
            }
        }
        assert!(
            Instant::now() < deadline,
            "trace {trace_id} did not become complete within 60 s; last seen: {last}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

#[tokio::test]
async fn a_passkey_login_is_one_trace_across_the_service_and_kratos() {
    let (_, database_url) = create_database();
    // A service name of its own: nothing else in Jaeger can be taken for it.
    let service_name = format!("kratos-passkeys-test-{}", Uuid::new_v4().simple());
    let mut command = binary::serve(&database_url);
    command
        .env("KRATOS_PASSKEYS__TRACING__ENABLED", "true")
        .env("KRATOS_PASSKEYS__TRACING__OTLP_ENDPOINT", jaeger_otlp())
        .env("KRATOS_PASSKEYS__TRACING__SERVICE_NAME", &service_name)
        // A batch every 100 ms rather than every 5 s.
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("RUST_LOG", "info");
    let (service, app) = Served::start(command, &database_url).await;
    let (_, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    app.register_passkey(&auth, &mut authenticator).await;

    // The caller starts the trace: its traceparent, sampled.
    let (trace_id, caller_span) = (random_hex(16), random_hex(8));
    let options = app.login_options().await;
    let credential = authenticator.login(&options);
    let response = app
        .http
        .post(app.url("/passkeys/login/verify"))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&json!({"ceremony_id": options["ceremony_id"], "credential": credential}))
        .send()
        .await
        .expect("verify");
    assert_eq!(response.status(), 200, "{:?}", response.text().await);

    // Kratos's server span for each call: a span of the other process
    // whose parent is the service's client span for that call. (Kratos
    // names them by path, or by route pattern from v26: not relied on.)
    let kratos_child = |spans: &[Span], call: &str| -> Option<(Span, Span)> {
        let ours = spans
            .iter()
            .find(|s| s.service == service_name && s.operation == call)?;
        spans
            .iter()
            .find(|s| s.service != service_name && s.parent.as_ref() == Some(&ours.span_id))
            .map(|theirs| (ours.clone(), theirs.clone()))
    };
    let (trace, spans) = trace_when(&trace_id, |spans| {
        kratos_child(spans, "kratos create_recovery_code").is_some()
            && kratos_child(spans, "kratos redeem_recovery_code").is_some()
            && spans
                .iter()
                .any(|s| s.service == service_name && s.operation == "db complete_login")
    })
    .await;
    let picture = serde_json::to_string_pretty(&json!({"data": [trace]})).expect("json");
    if let Ok(path) = std::env::var("KRATOS_PASSKEYS_TEST_TRACE_OUT") {
        std::fs::write(path, picture).expect("the trace is written");
    }

    // One trace id, the caller's, on every span of both processes.
    assert!(spans.iter().all(|s| s.trace_id == trace_id), "{spans:#?}");
    let ours: Vec<&Span> = spans.iter().filter(|s| s.service == service_name).collect();
    for step in [
        "open_ceremony",
        "db passkey_by_credential_id",
        "webauthn.finish_login",
        "db begin_login",
        "mint_session",
        "kratos create_recovery_code",
        "kratos redeem_recovery_code",
        "db complete_login",
    ] {
        assert!(
            ours.iter().any(|s| s.operation == step),
            "no `{step}` span in the service's part of the trace: {ours:#?}"
        );
    }
    // The service's root span is the caller's child.
    assert!(
        ours.iter()
            .any(|s| s.parent.as_deref() == Some(caller_span.as_str())),
        "no span of the service has the caller's span as its parent: {ours:#?}"
    );
    // The recovery code's creation and redemption: each of Kratos's spans
    // has its parent in the other process, the service's call that carried
    // the traceparent.
    for call in ["kratos create_recovery_code", "kratos redeem_recovery_code"] {
        let (ours, theirs) = kratos_child(&spans, call).expect("found above");
        assert_ne!(theirs.service, ours.service, "{call}: {theirs:?}");
        assert_eq!(theirs.trace_id, ours.trace_id, "{call}: {theirs:?}");
    }
    // Kratos's spans are there at all (its database, its handlers), all in
    // the caller's trace.
    assert!(
        spans.iter().filter(|s| s.service != service_name).count() >= 2,
        "{spans:#?}"
    );

    // The login's log line carries the trace id.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = service.log();
        let line = logs
            .lines()
            .find(|l| l.contains("passkey login minted a Kratos session"));
        if let Some(line) = line {
            assert!(line.contains(&format!("trace_id={trace_id}")), "{line}");
            break;
        }
        assert!(Instant::now() < deadline, "no login log line:\n{logs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
