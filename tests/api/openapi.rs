//! The OpenAPI documents describe what each listener serves.

use serde_json::Value;
use strum::IntoEnumIterator;

use kratos_passkeys::error::ErrorId;

use crate::helpers::spawn_app;

async fn document(url: String) -> Value {
    let response = reqwest::get(url).await.expect("request");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

fn paths(document: &Value) -> Vec<String> {
    let mut paths: Vec<String> = document["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    paths.sort();
    paths
}

#[tokio::test]
async fn each_listener_documents_its_own_endpoints() {
    let app = spawn_app().await;
    let public = document(app.url("/openapi.json")).await;
    assert!(public["openapi"]
        .as_str()
        .expect("version")
        .starts_with("3."));
    assert_eq!(
        paths(&public),
        [
            "/.well-known/apple-app-site-association",
            "/.well-known/assetlinks.json",
            "/.well-known/passkey-endpoints",
            "/.well-known/webauthn",
            "/health/alive",
            "/health/ready",
            "/passkeys",
            "/passkeys/authenticators/{aaguid}/icon/{theme}",
            "/passkeys/enrollment",
            "/passkeys/enrollment/dismiss",
            "/passkeys/login/options",
            "/passkeys/login/verify",
            "/passkeys/registration/options",
            "/passkeys/registration/verify",
            "/passkeys/{id}",
        ]
    );
    let admin = document(app.admin_url("/openapi.json")).await;
    assert_eq!(
        paths(&admin),
        [
            "/admin/identities/{identity_id}/events",
            "/admin/identities/{identity_id}/passkeys",
            "/admin/identities/{identity_id}/passkeys/{passkey_id}",
            "/admin/sessions/{kratos_session_id}",
            "/health/alive",
            "/health/ready",
            "/hooks/kratos/after-recovery",
            "/hooks/kratos/after-registration",
            "/hooks/kratos/after-settings",
            "/metrics",
        ]
    );
    // Every error id is in the document.
    let ids: Vec<&str> = public["components"]["schemas"]["ErrorId"]["enum"]
        .as_array()
        .expect("enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for id in ErrorId::iter() {
        assert!(ids.contains(&id.as_str()), "{}", id.as_str());
    }
    let verify = &public["paths"]["/passkeys/login/verify"]["post"]["responses"];
    for status in [
        "200", "400", "403", "404", "410", "413", "415", "429", "502", "503",
    ] {
        assert!(
            verify.get(status).is_some(),
            "login/verify documents {status}"
        );
    }
}

/// The words a response's description puts in backticks.
fn backticked(description: &str) -> Vec<&str> {
    description.split('`').skip(1).step_by(2).collect()
}

fn is_error_response(response: &Value) -> bool {
    response["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .is_some_and(|r| r.ends_with("/ErrorResponse"))
}

#[tokio::test]
async fn every_documented_refusal_has_the_status_its_id_answers_with() {
    let app = spawn_app().await;
    let ids: std::collections::HashMap<&str, ErrorId> =
        ErrorId::iter().map(|id| (id.as_str(), id)).collect();
    let mut documented = std::collections::HashSet::new();
    for url in [app.url("/openapi.json"), app.admin_url("/openapi.json")] {
        let document = document(url).await;
        for (path, operations) in document["paths"].as_object().expect("paths") {
            for (method, operation) in operations.as_object().expect("operations") {
                let responses = operation["responses"].as_object().expect("responses");
                for (status, response) in responses {
                    if !is_error_response(response) {
                        continue;
                    }
                    let description = response["description"].as_str().unwrap_or("");
                    let named: Vec<&str> = backticked(description)
                        .into_iter()
                        .filter(|word| ids.contains_key(word))
                        .collect();
                    let code: u16 = status.parse().expect("a status code");
                    assert!(
                        !named.is_empty(),
                        "{method} {path} {status} names no error id: {description}"
                    );
                    for name in named {
                        let id = ids[name];
                        assert_eq!(
                            id.status().as_u16(),
                            code,
                            "{method} {path}: `{name}` answers {}, documented under {status}",
                            id.status()
                        );
                        documented.insert(name.to_string());
                    }
                }
            }
        }
    }
    // And every id the service can answer is documented somewhere, except
    // the ones any route can answer (unknown routes and methods, bugs).
    for id in ErrorId::iter() {
        if matches!(
            id,
            ErrorId::NotFound | ErrorId::MethodNotAllowed | ErrorId::InternalError
        ) {
            continue;
        }
        assert!(
            documented.contains(id.as_str()),
            "`{}` is documented under no operation",
            id.as_str()
        );
    }
}

#[test]
fn every_error_id_is_in_the_readme() {
    // The README, and the pages of the documentation that explain their ids.
    let readme = [
        include_str!("../../README.md"),
        include_str!("../../docs/src/authenticator-policy.md"),
    ]
    .concat();
    for id in ErrorId::iter() {
        assert!(
            readme.contains(&format!("`{}`", id.as_str())),
            "README misses {}",
            id.as_str()
        );
    }
}
