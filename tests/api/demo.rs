//! The demo page and the browser client are served by the public listener.

use kratos_passkeys::error::ErrorId;
use strum::IntoEnumIterator;

use crate::helpers::spawn_app;

/// The client package's source (client/), which the service serves as is.
const CLIENT_JS: &str = include_str!("../../client/index.js");
const CLIENT_TYPES: &str = include_str!("../../client/index.d.ts");

#[tokio::test]
async fn the_client_module_and_the_demo_page_are_served() {
    let app = spawn_app().await;
    for (path, content_type, needle) in [
        (
            "/passkeys/client.js",
            "text/javascript",
            "export function createClient",
        ),
        (
            "/",
            "text/html",
            "Would you like to set up a passkey for easier login?",
        ),
        ("/demo/demo.js", "text/javascript", "/passkeys/client.js"),
        ("/demo/demo.css", "text/css", ".passkey"),
    ] {
        let response = app.http.get(app.url(path)).send().await.expect("request");
        assert_eq!(response.status(), 200, "{path}");
        let got = response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(got.starts_with(content_type), "{path}: {got}");
        assert!(
            response.text().await.expect("body").contains(needle),
            "{path}"
        );
    }
    // Byte for byte the package's index.js.
    let served = app
        .http
        .get(app.url("/passkeys/client.js"))
        .send()
        .await
        .expect("request")
        .bytes()
        .await
        .expect("body");
    assert!(
        served.as_ref() == CLIENT_JS.as_bytes(),
        "/passkeys/client.js is not client/index.js"
    );
    let config: serde_json::Value = app
        .http
        .get(app.url("/demo/config.json"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(
        config["kratos_url"],
        app.settings.kratos.browser_url.as_str()
    );
}

/// The client's TypeScript union of the service's error ids is the
/// service's own list, no more, no less.
#[test]
fn the_client_types_name_every_error_id() {
    let union = CLIENT_TYPES
        .split("export type ServiceErrorId =")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("client/index.d.ts declares ServiceErrorId");
    let mut declared: Vec<&str> = union.split('"').skip(1).step_by(2).collect();
    let mut ids: Vec<&str> = ErrorId::iter().map(ErrorId::as_str).collect();
    declared.sort_unstable();
    ids.sort_unstable();
    assert_eq!(declared, ids);
}
