//! The demo page and the browser client module, compiled into the binary so
//! every deployment (and the Docker image) serves the same files.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

const CLIENT_JS: &str = include_str!("../../client/index.js");
const DEMO_HTML: &str = include_str!("../../static/demo/index.html");
const DEMO_JS: &str = include_str!("../../static/demo/demo.js");
const DEMO_CSS: &str = include_str!("../../static/demo/demo.css");

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        // Small and changed with every release: always revalidate.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body)
}

pub async fn client_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", CLIENT_JS)
}

pub async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", DEMO_HTML)
}

pub async fn demo_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", DEMO_JS)
}

pub async fn demo_css() -> HttpResponse {
    asset("text/css; charset=utf-8", DEMO_CSS)
}

/// What the page needs to know about this deployment: where browsers reach Kratos.
pub async fn config(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .json(json!({ "kratos_url": state.settings.kratos.browser_url }))
}
