//! The well-known files: `/.well-known/passkey-endpoints`,
//! `apple-app-site-association` and `assetlinks.json` are byte for byte what
//! the documentation (`docs/src/origins-and-apps.md`) shows, the `well-known` command prints the same bytes, a
//! bad entry stops start-up naming it, and the Android origin accepted at
//! verify is the one `assetlinks.json` grants.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use kratos_passkeys::configuration::{AndroidAppSettings, PasskeyEndpointSettings, Settings};
use kratos_passkeys::startup::Application;

use crate::helpers::{
    assert_error, binary, spawn_app, spawn_app_with, test_settings, Auth, Authenticator,
};

const DOCUMENTED: &str = include_str!("../../docs/src/origins-and-apps.md");

/// The documentation's example configuration.
const CONFIG: &str = r#"webauthn:
  passkey_endpoints:
    enroll: https://example.com/account/passkeys/new
    manage: https://example.com/account/passkeys
  apple_app_ids:
    - ABCDE12345.com.example.app
  android_apps:
    - package_name: com.example.app
      sha256_cert_fingerprints:
        - E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55
"#;

const PASSKEY_ENDPOINTS: &str = r#"{
  "enroll": "https://example.com/account/passkeys/new",
  "manage": "https://example.com/account/passkeys"
}
"#;

const APPLE_APP_SITE_ASSOCIATION: &str = r#"{
  "webcredentials": {
    "apps": [
      "ABCDE12345.com.example.app"
    ]
  }
}
"#;

const ASSETLINKS: &str = r#"[
  {
    "relation": [
      "delegate_permission/common.get_login_creds"
    ],
    "target": {
      "namespace": "android_app",
      "package_name": "com.example.app",
      "sha256_cert_fingerprints": [
        "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
      ]
    }
  }
]
"#;

const FILES: [(&str, &str, &str); 3] = [
    (
        "passkey-endpoints",
        "/.well-known/passkey-endpoints",
        PASSKEY_ENDPOINTS,
    ),
    (
        "apple-app-site-association",
        "/.well-known/apple-app-site-association",
        APPLE_APP_SITE_ASSOCIATION,
    ),
    ("assetlinks", "/.well-known/assetlinks.json", ASSETLINKS),
];

/// The documentation's configuration applied to `settings`, read the way the
/// service reads its YAML.
fn configure(settings: &mut Settings) {
    let config = config::Config::builder()
        .add_source(config::File::from_str(CONFIG, config::FileFormat::Yaml))
        .build()
        .expect("the documentation's configuration");
    settings.webauthn.passkey_endpoints = config
        .get::<PasskeyEndpointSettings>("webauthn.passkey_endpoints")
        .expect("passkey_endpoints");
    settings.webauthn.apple_app_ids = config.get("webauthn.apple_app_ids").expect("apple");
    settings.webauthn.android_apps = config
        .get::<Vec<AndroidAppSettings>>("webauthn.android_apps")
        .expect("android");
    // Only android_apps: the Android origin must come from assetlinks.json.
    settings.webauthn.app_origins = Vec::new();
}

#[test]
fn the_documentation_shows_these_bytes() {
    for documented in [
        CONFIG,
        PASSKEY_ENDPOINTS,
        APPLE_APP_SITE_ASSOCIATION,
        ASSETLINKS,
    ] {
        assert!(
            DOCUMENTED.contains(documented),
            "docs/src/origins-and-apps.md lacks:\n{documented}"
        );
    }
}

#[tokio::test]
async fn the_files_are_served_byte_for_byte_as_json() {
    let app = spawn_app_with(configure).await;
    for (_, path, expected) in FILES {
        let response = app.http.get(app.url(path)).send().await.expect(path);
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{path}"
        );
        assert_eq!(response.text().await.expect("body"), expected, "{path}");
    }

    let unconfigured = spawn_app().await;
    for (_, path, _) in FILES {
        let (status, body) = unconfigured.get_json(path, &Auth::None).await;
        assert_error(status, &body, 404, "not_found");
    }
}

#[tokio::test]
async fn the_command_prints_the_same_bytes() {
    let dir = std::env::temp_dir().join(format!(
        "kratos-passkeys-well-known-{}",
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/base.yaml"),
        dir.join("base.yaml"),
    )
    .expect("base.yaml");
    std::fs::write(dir.join("local.yaml"), CONFIG).expect("local.yaml");
    for (argument, path, expected) in FILES {
        let output = binary::command("postgres://unused@127.0.0.1:1/unused")
            .env("KRATOS_PASSKEYS_CONFIG_DIR", &dir)
            .args(["well-known", argument])
            .output()
            .expect("run");
        assert!(output.status.success(), "{path}: {output:?}");
        assert_eq!(
            String::from_utf8(output.stdout).expect("utf-8"),
            expected,
            "{path}"
        );
    }
    let output = binary::command("postgres://unused@127.0.0.1:1/unused")
        .args(["well-known", "assetlinks"])
        .output()
        .expect("run");
    assert!(!output.status.success(), "nothing configured: {output:?}");
    assert!(output.stdout.is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

/// A change to the test settings.
type Configure = fn(&mut Settings);

#[tokio::test]
async fn a_bad_entry_stops_start_up_naming_it() {
    let fingerprint = "E3:B0:C4:42:98:FC:1C:14";
    let cases: [(&str, Configure); 4] = [
        ("ABCDE1234.com.example.app", |s| {
            s.webauthn.apple_app_ids = vec!["ABCDE1234.com.example.app".into()]
        }),
        ("E3:B0:C4:42:98:FC:1C:14", |s| {
            s.webauthn.android_apps = vec![AndroidAppSettings {
                package_name: "com.example.app".into(),
                sha256_cert_fingerprints: vec!["E3:B0:C4:42:98:FC:1C:14".into()],
            }]
        }),
        ("example app", |s| {
            s.webauthn.android_apps = vec![AndroidAppSettings {
                package_name: "example app".into(),
                sha256_cert_fingerprints: Vec::new(),
            }]
        }),
        ("http://example.com/passkeys", |s| {
            s.webauthn.passkey_endpoints.manage = Some("http://example.com/passkeys".into())
        }),
    ];
    assert!(cases.iter().any(|(named, _)| *named == fingerprint));
    for (named, configure) in cases {
        let mut settings = test_settings("postgres://unused@127.0.0.1:1/unused");
        configure(&mut settings);
        let error = match Application::build(settings).await {
            Ok(_) => panic!("started with {named}"),
            Err(error) => format!("{error:#}"),
        };
        assert!(error.contains(named), "{named:?} not in {error:?}");
    }
}

#[tokio::test]
async fn the_android_origin_from_assetlinks_mints_a_session() {
    let app = spawn_app_with(configure).await;
    let (_, served) = app
        .get_json("/.well-known/assetlinks.json", &Auth::None)
        .await;
    let fingerprint = served[0]["target"]["sha256_cert_fingerprints"][0]
        .as_str()
        .expect("fingerprint");
    let bytes: Vec<u8> = fingerprint
        .split(':')
        .map(|pair| u8::from_str_radix(pair, 16).expect("hex"))
        .collect();
    let origin = format!("android:apk-key-hash:{}", URL_SAFE_NO_PAD.encode(bytes));
    let other = "android:apk-key-hash:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    let (user, auth) = app.signed_in_user().await;
    let mut authenticator = Authenticator::new();
    authenticator.vouch_for_origin(&origin);
    authenticator.vouch_for_origin(other);
    app.register_passkey(&auth, &mut authenticator).await;

    let (status, body) = app.login_from_origin(&mut authenticator, &origin).await;
    assert_eq!(status, 200, "{origin}: {body}");
    assert_eq!(body["identity_id"], user.id.to_string());
    let token = body["session_token"].as_str().expect("token");
    assert_eq!(app.kratos.whoami_token(token).await.0, 200);

    let (status, body) = app.login_from_origin(&mut authenticator, other).await;
    assert_error(status, &body, 400, "origin_mismatch");
}
