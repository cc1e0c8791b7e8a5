//! The demo page and the browser client are served by the public listener.

use crate::helpers::spawn_app;

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
