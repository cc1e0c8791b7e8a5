//! The real `kratos-passkeys` binary as a separate process, for tests that
//! kill it, run its subcommands, or capture its logs.

use std::process::Command;
use std::time::{Duration, Instant};

use super::{kratos_admin_url, kratos_public_url, test_settings, Kratos, TestApp};

/// The binary with the test configuration: config directory, database and
/// the test Kratos (override with further `.env` calls).
pub fn command(database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kratos-passkeys"));
    command
        .env(
            "KRATOS_PASSKEYS_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .env("KRATOS_PASSKEYS__DATABASE__URL", database_url)
        .env(
            "KRATOS_PASSKEYS__KRATOS__PUBLIC_URL",
            kratos_public_url().as_str(),
        )
        .env(
            "KRATOS_PASSKEYS__KRATOS__ADMIN_URL",
            kratos_admin_url().as_str(),
        );
    command
}

/// `serve` on the given ports.
pub fn serve(database_url: &str, public: u16, admin: u16) -> Command {
    let mut command = command(database_url);
    command
        .arg("serve")
        .env("KRATOS_PASSKEYS__PUBLIC__PORT", public.to_string())
        .env("KRATOS_PASSKEYS__ADMIN__PORT", admin.to_string());
    command
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until the process on `public` is ready, and describes it as a TestApp.
pub async fn ready(database_url: &str, public: u16, admin: u16) -> TestApp {
    let http = super::client();
    let base = format!("http://127.0.0.1:{public}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match http.get(format!("{base}/health/ready")).send().await {
            Ok(r) if r.status().is_success() => break,
            _ if Instant::now() > deadline => panic!("{base} did not become ready"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let mut settings = test_settings(database_url);
    settings.public.port = public;
    settings.admin.port = admin;
    TestApp {
        public: base,
        admin: format!("http://127.0.0.1:{admin}"),
        database_url: database_url.to_string(),
        settings,
        http,
        kratos: Kratos::new(kratos_public_url(), kratos_admin_url()),
        state: None,
    }
}
