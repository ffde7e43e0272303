//! Runs the real `kefu-bridge-admin` binary as an operator would, against a
//! test's table in DynamoDB Local: `TABLE_NAME`, `AWS_ENDPOINT_URL_DYNAMODB`
//! and placeholder credentials in its environment, nothing else of the
//! machine's AWS setup (no profile, no config file).

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;

use crate::runtime_emulator::built_binaries;
use crate::TestApp;

/// What one run printed and how it ended.
#[derive(Debug)]
pub struct AdminRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl AdminRun {
    /// The `--json` output as a JSON array.
    pub fn json(&self) -> Vec<serde_json::Value> {
        match serde_json::from_str(&self.stdout) {
            Ok(serde_json::Value::Array(rows)) => rows,
            _ => panic!("not one JSON array: {self:?}"),
        }
    }
}

/// The binary, built once per test process (`$BRIDGE_BIN_DIR` when set).
pub fn admin_binary() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = match std::env::var("BRIDGE_BIN_DIR") {
            Ok(dir) => PathBuf::from(dir),
            Err(_) => built_binaries(&["kefu-bridge-admin"], false),
        };
        dir.join("kefu-bridge-admin")
    })
    .clone()
}

/// A command for the binary with only `env` as its environment (plus PATH),
/// so the machine's own AWS configuration never leaks in.
pub fn admin_command(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(admin_binary());
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // No home: no ~/.aws/config or credentials to find.
        .env("HOME", "/nonexistent")
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Waits for a started command and collects what it printed.
pub async fn finish(command: &mut tokio::process::Command) -> AdminRun {
    let output = command.output().await.expect("run kefu-bridge-admin");
    AdminRun {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl TestApp {
    /// The environment an operator's shell would have for this table.
    pub fn admin_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TABLE_NAME", self.table.clone()),
            ("AWS_ENDPOINT_URL_DYNAMODB", self.dynamodb_endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "local".into()),
            ("AWS_SECRET_ACCESS_KEY", "local".into()),
        ]
    }

    /// The admin CLI with `args`, on this test's table, ready to spawn.
    pub fn admin_command(&self, args: &[&str]) -> tokio::process::Command {
        let env = self.admin_env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        admin_command(args, &env)
    }

    /// Runs the admin CLI with `args` on this test's table.
    pub async fn admin(&self, args: &[&str]) -> AdminRun {
        finish(&mut self.admin_command(args)).await
    }
}
