//! A real SMTP server for tests: `fixtures/smtp_sink.py` (Python aiosmtpd) on 127.0.0.1,
//! started as a subprocess, saving every accepted message to a directory.
//!
//! The interpreter is `MEDGATE_PYTHON` (scripts/test.sh points it at its virtualenv, where
//! `tests/python/requirements.txt` installs aiosmtpd), else `python3`. Without aiosmtpd a
//! test skips, printing why, unless `MEDGATE_REQUIRE_SMTP=1` (CI), which makes it fail.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running SMTP sink; killed when dropped.
pub struct SmtpSink {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

/// One saved message.
#[derive(Debug, Clone)]
pub struct Received {
    pub envelope_from: String,
    pub envelope_to: String,
    /// The login the client authenticated with, if it did.
    pub auth_login: Option<String>,
    pub subject: String,
    /// The whole message as saved (headers and body).
    pub raw: String,
}

fn python() -> String {
    std::env::var("MEDGATE_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether aiosmtpd is importable; when it is not, panics under `MEDGATE_REQUIRE_SMTP=1` and
/// otherwise prints that `test` skips.
pub async fn available(test: &str) -> bool {
    let probe = Command::new(python())
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await;
    let why = match probe {
        Ok(out) if out.status.success() => return true,
        // The last line of the traceback, e.g. "ModuleNotFoundError: No module named ...".
        Ok(out) => String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        Err(e) => format!("{} cannot run: {e}", python()),
    };
    if std::env::var("MEDGATE_REQUIRE_SMTP").is_ok_and(|v| v == "1") {
        panic!(
            "a real SMTP server is required (MEDGATE_REQUIRE_SMTP=1) but aiosmtpd is not \
             importable with {} (set MEDGATE_PYTHON or pip install aiosmtpd): {why}",
            python()
        );
    }
    eprintln!(
        "SKIP {test}: aiosmtpd is not importable with {} ({why})",
        python()
    );
    false
}

/// A port nothing listens on right now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl SmtpSink {
    /// Starts the sink on `port` (0: any free port), saving to `dir`, requiring
    /// `login`/`password` when given. Waits until it listens.
    pub async fn start(port: u16, dir: &Path, login: Option<(&str, &str)>) -> SmtpSink {
        let port = if port == 0 { free_port() } else { port };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smtp_sink.py");
        let mut cmd = Command::new(python());
        cmd.arg("-u")
            .arg(&script)
            .arg("--port")
            .arg(port.to_string())
            .arg("--dir")
            .arg(dir);
        if let Some((user, password)) = login {
            cmd.args(["--login", user, "--password", password]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start smtp_sink.py");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.trim() == "READY" {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            matches!(ready, Ok(true)),
            "smtp_sink.py did not start on 127.0.0.1:{port}"
        );
        SmtpSink {
            port,
            dir: dir.to_owned(),
            child,
        }
    }

    /// Every message saved so far, oldest first.
    pub fn messages(&self) -> Vec<Received> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        paths.sort();
        paths
            .iter()
            .map(|p| parse(&std::fs::read_to_string(p).expect("message")))
            .collect()
    }

    /// Waits up to 10 s until at least `n` messages were saved.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..100 {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {n} messages, got {:?}", self.messages());
    }

    /// Stops the server (its port refuses connections afterwards).
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }
}

/// A header's value, with folded continuation lines unfolded.
fn header(raw: &str, name: &str) -> Option<String> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let mut unfolded: Vec<String> = Vec::new();
    for line in raw.lines().take_while(|l| !l.is_empty()) {
        match unfolded.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => {
                last.push(' ');
                last.push_str(line.trim());
            }
            _ => unfolded.push(line.to_owned()),
        }
    }
    unfolded
        .iter()
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim().to_owned())
}

fn parse(raw: &str) -> Received {
    let raw = raw.replace("\r\n", "\n");
    Received {
        envelope_from: header(&raw, "X-Envelope-From").unwrap_or_default(),
        envelope_to: header(&raw, "X-Envelope-To").unwrap_or_default(),
        auth_login: header(&raw, "X-Auth-Login"),
        subject: header(&raw, "Subject").unwrap_or_default(),
        raw,
    }
}
