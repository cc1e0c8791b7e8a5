//! The real `kratos-passkeys` binary as a separate process, for tests that
//! kill it, run its subcommands, or capture its logs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
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

/// `serve` with both listeners on port 0: the process binds ports the OS
/// picks and holds them from the start (see `Served`). Its logs are plain
/// text, without colours, so the test can read them.
pub fn serve(database_url: &str) -> Command {
    let mut command = command(database_url);
    command
        .arg("serve")
        .env("KRATOS_PASSKEYS__PUBLIC__PORT", "0")
        .env("KRATOS_PASSKEYS__ADMIN__PORT", "0")
        .env("KRATOS_PASSKEYS_LOG_FORMAT", "text")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null());
    command
}

/// A `serve` process and the ports it bound, read from its "is serving"
/// log line. SIGKILLed when dropped.
pub struct Served {
    child: Child,
    database_url: String,
    pub public: u16,
    pub admin: u16,
    log: Arc<Mutex<String>>,
}

impl Served {
    /// Spawns `command` (made by `serve`), waits until it serves and is
    /// ready, and describes it as a TestApp.
    pub async fn start(mut command: Command, database_url: &str) -> (Served, TestApp) {
        let mut child = command
            .stderr(Stdio::piped())
            .spawn()
            .expect("the service starts");
        let stderr = child.stderr.take().expect("its stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let ports = Arc::new(Mutex::new(None));
        let (log_in, ports_in) = (log.clone(), ports.clone());
        // Every line is kept (the secrets test reads them all).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(found) = serving_ports(&line) {
                    *ports_in.lock().expect("ports") = Some(found);
                }
                let mut log = log_in.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let (public, admin) = loop {
            if let Some(found) = *ports.lock().expect("ports") {
                break found;
            }
            if let Some(status) = child.try_wait().expect("wait") {
                panic!(
                    "the service exited ({status}) before serving:\n{}",
                    log.lock().expect("log")
                );
            }
            assert!(
                Instant::now() < deadline,
                "the service did not say it serves:\n{}",
                log.lock().expect("log")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let served = Served {
            child,
            database_url: database_url.to_string(),
            public,
            admin,
            log,
        };
        let app = served.ready().await;
        (served, app)
    }

    /// Waits until the process answers ready, and describes it as a TestApp.
    async fn ready(&self) -> TestApp {
        let http = super::client();
        let base = format!("http://127.0.0.1:{}", self.public);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match http.get(format!("{base}/health/ready")).send().await {
                Ok(r) if r.status().is_success() => break,
                _ if Instant::now() > deadline => panic!("{base} did not become ready"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let mut settings = test_settings(&self.database_url);
        settings.public.port = self.public;
        settings.admin.port = self.admin;
        TestApp {
            public: base,
            admin: format!("http://127.0.0.1:{}", self.admin),
            database_url: self.database_url.clone(),
            settings,
            http,
            kratos: Kratos::new(kratos_public_url(), kratos_admin_url()),
            state: None,
        }
    }

    /// SIGKILL, and the process reaped.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The ports of the "kratos-passkeys is serving public_port=.. admin_port=.."
/// line.
fn serving_ports(line: &str) -> Option<(u16, u16)> {
    let fields = line.split_once("kratos-passkeys is serving")?.1;
    let field = |name: &str| -> Option<u16> {
        let value = fields.split_once(&format!("{name}="))?.1;
        value
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((field("public_port")?, field("admin_port")?))
}

#[test]
fn the_serving_line_names_both_ports() {
    let line =
        "2026-12-03T22:00:00Z  INFO kratos-passkeys is serving public_port=41234 admin_port=41235";
    assert_eq!(serving_ports(line), Some((41234, 41235)));
    assert_eq!(serving_ports("INFO applied migrations"), None);
}
