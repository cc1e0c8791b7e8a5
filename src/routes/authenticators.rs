//! `GET /passkeys/authenticators/{aaguid}/icon/{theme}`: an authenticator's
//! icon from the compiled-in AAGUID list, public and cacheable, so a passkey
//! list can show it with a plain `<img>`.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::aaguid::{authenticator_icon, Theme};

/// An SVG opened on its own runs no script and loads nothing.
const SVG_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; sandbox";

/// Where an authenticator's icons are served, for each theme.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthenticatorIcon {
    /// The icon for light backgrounds, e.g.
    /// `/passkeys/authenticators/{aaguid}/icon/light`.
    pub light: String,
    /// The icon for dark backgrounds.
    pub dark: String,
}

impl AuthenticatorIcon {
    /// Always both: an unknown or all-zero AAGUID has the neutral key.
    pub fn of(aaguid: Uuid) -> Self {
        Self {
            light: icon_path(aaguid, Theme::Light),
            dark: icon_path(aaguid, Theme::Dark),
        }
    }
}

pub fn icon_path(aaguid: Uuid, theme: Theme) -> String {
    format!("/passkeys/authenticators/{aaguid}/icon/{theme}")
}

/// An authenticator's icon. Unknown and all-zero AAGUIDs get a neutral key.
#[utoipa::path(
    get,
    path = "/passkeys/authenticators/{aaguid}/icon/{theme}",
    tag = "authenticators",
    params(
        ("aaguid" = uuid::Uuid, Path, description = "The authenticator's AAGUID, as a passkey's `aaguid`"),
        ("theme" = inline(Theme), Path, description = "`light` or `dark`: the background the icon is drawn for"),
    ),
    responses(
        (status = 200, description = "The icon (cacheable for a day)", content(
            ("image/svg+xml"),
            ("image/png"),
            ("image/jpeg"),
        )),
        (status = 404, description = "`not_found`: not an AAGUID, or not a theme", body = crate::error::ErrorResponse),
    )
)]
pub async fn icon(path: web::Path<(Uuid, Theme)>) -> HttpResponse {
    let (aaguid, theme) = path.into_inner();
    let icon = authenticator_icon(aaguid, theme);
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, icon.content_type))
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .insert_header(("X-Content-Type-Options", "nosniff"));
    if icon.is_svg() {
        response.insert_header((header::CONTENT_SECURITY_POLICY, SVG_POLICY));
    }
    let bytes: &'static [u8] = &icon.bytes;
    response.body(bytes)
}
