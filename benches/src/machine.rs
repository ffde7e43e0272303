//! Where and on what the numbers were taken: CPU, memory, date, commit,
//! toolchain — read from the machine, never typed in.

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

#[derive(Debug, Clone)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory: String,
    pub kernel: String,
    pub date: String,
    pub commit: String,
    pub rustc: String,
    /// `/proc/loadavg` when the run began: other work on the machine skews
    /// every number, so the report says how busy it was.
    pub load_at_start: String,
    pub load_at_end: String,
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

impl Machine {
    pub fn read(workspace: &Path, load_at_start: String) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<f64>().ok())
            .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".into());
        let commit = {
            let head = output("git", &["rev-parse", "--short=10", "HEAD"], workspace);
            let dirty = Command::new("git")
                .args(["diff", "--quiet", "HEAD", "--"])
                .current_dir(workspace)
                .status()
                .is_ok_and(|s| !s.success());
            if dirty {
                format!("{head} (with uncommitted changes in the work tree)")
            } else {
                head
            }
        };
        Self {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            memory,
            kernel: output("uname", &["-sr"], workspace),
            date: utc_now(),
            commit,
            rustc: output("rustc", &["--version"], workspace),
            load_at_start,
            load_at_end: load_average(),
        }
    }
}

fn output(program: &str, args: &[&str], dir: &Path) -> String {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// `2026-11-26 10:55 UTC`.
pub fn utc_now() -> String {
    utc(SystemTime::now())
}

pub fn utc(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (y, mo, d, h, mi, _) = kefu_bridge::clock::utc_parts(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC")
}
