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
            "/health/alive",
            "/health/ready",
            "/passkeys",
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
            "/admin/identities/{identity_id}/passkeys",
            "/admin/identities/{identity_id}/passkeys/{passkey_id}",
            "/health/alive",
            "/health/ready",
            "/hooks/kratos/after-registration",
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

#[test]
fn every_error_id_is_in_the_readme() {
    let readme = include_str!("../../README.md");
    for id in ErrorId::iter() {
        assert!(
            readme.contains(&format!("`{}`", id.as_str())),
            "README misses {}",
            id.as_str()
        );
    }
}
