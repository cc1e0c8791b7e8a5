use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn alive_answers_on_both_listeners() {
    let app = spawn_app().await;
    for url in [app.url("/health/alive"), app.admin_url("/health/alive")] {
        let response = app.http.get(&url).send().await.expect("request");
        assert_eq!(response.status(), 200, "{url}");
    }
}

#[tokio::test]
async fn ready_when_postgres_and_kratos_answer() {
    let app = spawn_app().await;
    for url in [app.url("/health/ready"), app.admin_url("/health/ready")] {
        let response = app.http.get(&url).send().await.expect("request");
        assert_eq!(response.status(), 200, "{url}");
    }
}

#[tokio::test]
async fn ready_reports_postgres_down() {
    let app = spawn_app_with(|s| {
        // Nothing listens on port 1; the pool is lazy, so the service starts.
        s.database.url = "postgres://kratos_passkeys:x@127.0.0.1:1/nothing"
            .to_string()
            .into();
        s.database.run_migrations_on_start = false;
        s.database.acquire_timeout = std::time::Duration::from_millis(500);
    })
    .await;
    let response = app
        .http
        .get(app.url("/health/ready"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["errors"]["database"], "unavailable", "{body}");
    assert!(body["errors"].get("kratos").is_none(), "{body}");

    // Alive still answers: the process is fine, its dependency is not.
    let alive = app
        .http
        .get(app.url("/health/alive"))
        .send()
        .await
        .expect("request");
    assert_eq!(alive.status(), 200);
}

#[tokio::test]
async fn ready_reports_kratos_down() {
    let app = spawn_app_with(|s| {
        s.kratos.admin_url = url::Url::parse("http://127.0.0.1:1/").expect("url");
    })
    .await;
    let response = app
        .http
        .get(app.admin_url("/health/ready"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["errors"]["kratos"], "unavailable", "{body}");
    assert!(body["errors"].get("database").is_none(), "{body}");
}

#[tokio::test]
async fn unknown_routes_answer_json_404() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/nope"))
        .send()
        .await
        .expect("request");
    let (status, body) = crate::helpers::status_and_json(response).await;
    crate::helpers::assert_error(status, &body, 404, "not_found");

    let response = app
        .http
        .put(app.url("/passkeys"))
        .send()
        .await
        .expect("request");
    let (status, body) = crate::helpers::status_and_json(response).await;
    crate::helpers::assert_error(status, &body, 405, "method_not_allowed");
}
