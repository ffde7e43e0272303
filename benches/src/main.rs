//! `cargo run --release -p bridge-benches -- [--requests N] [--cold-runs N]
//! [--warmup N] [--out PATH]` (or `scripts/bench`): measures the three
//! function binaries and writes BENCHMARKS.md at the workspace root.
//! `--backlog [--messages N --conversations M]` measures the outbox drain
//! after an outage instead and writes only BENCHMARKS.md's "## Backlog"
//! section; the full run keeps that section as it is.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use bridge_benches::backlog::{self, BacklogOptions};
use bridge_benches::criterion_results;
use bridge_benches::machine::{load_average, utc, Machine};
use bridge_benches::measure::{noop_binary, Bench, Run, WarmRun};
use bridge_benches::noop::{self, NOOP_ENV};
use bridge_benches::report::{Baseline, Before, FunctionResult, Report};
use bridge_benches::scenarios::{Function, FUNCTIONS};
use bridge_tests::runtime_emulator::function_binaries;

const USAGE: &str =
    "usage: bridge-benches [--requests N] [--cold-runs N] [--warmup N] [--out PATH] \
     [--before DIR --before-label TEXT] | --backlog [--messages N] [--conversations N] \
     [--limit-secs N] [--out PATH]";

#[derive(Debug)]
struct Options {
    requests: usize,
    cold_runs: usize,
    warmup: usize,
    out: Option<PathBuf>,
    /// Another build's function binaries (`DIR/<function>`, and arm64
    /// bootstraps as `DIR/arm64/<function>` when there), measured beside
    /// this one.
    before: Option<PathBuf>,
    before_label: String,
    /// Measure the backlog drain (backlog.rs) instead.
    backlog: Option<BacklogOptions>,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut options = Options {
            requests: 1_000,
            cold_runs: 7,
            warmup: 100,
            out: None,
            before: None,
            before_label: "the build in --before".into(),
            backlog: None,
        };
        let mut backlog = BacklogOptions::default();
        let mut measure_backlog = false;
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
            let number = |v: String| v.parse::<usize>().map_err(|_| format!("{v}: not a number"));
            match arg.as_str() {
                "--requests" => options.requests = number(value()?)?.max(1),
                "--cold-runs" => options.cold_runs = number(value()?)?.max(1),
                "--warmup" => options.warmup = number(value()?)?,
                "--out" => options.out = Some(PathBuf::from(value()?)),
                "--before" => options.before = Some(PathBuf::from(value()?)),
                "--before-label" => options.before_label = value()?,
                "--backlog" => measure_backlog = true,
                "--messages" => backlog.messages = number(value()?)?.max(1),
                "--conversations" => backlog.conversations = number(value()?)?.max(1),
                "--limit-secs" => {
                    backlog.limit = std::time::Duration::from_secs(number(value()?)? as u64)
                }
                "-h" | "--help" => return Err(USAGE.into()),
                other => return Err(format!("unknown argument {other}\n{USAGE}")),
            }
        }
        options.backlog = measure_backlog.then_some(backlog);
        Ok(options)
    }
}

fn main() -> ExitCode {
    if let Ok(flavour) = std::env::var(NOOP_ENV) {
        return match noop::run(&flavour) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bridge-benches: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<(), String> {
    let load_at_start = load_average();
    let workspace = workspace_root();
    let target = target_dir(&workspace);
    eprintln!("building the release function binaries (cargo build --release)…");
    let bins = tokio::task::spawn_blocking(|| function_binaries(true))
        .await
        .map_err(|e| format!("cargo build: {e}"))?;
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| workspace.join("BENCHMARKS.md"));
    // Whatever the file says besides what this run measures stays.
    let existing = std::fs::read_to_string(&out).unwrap_or_default();
    if let Some(backlog_options) = &options.backlog {
        let mut results = Vec::new();
        for side in backlog::Side::BOTH {
            results.push(backlog::run(backlog_options, side, &bins).await?);
        }
        let section = backlog::markdown(&results);
        std::fs::write(&out, backlog::with_section(&existing, &section))
            .map_err(|e| format!("{}: {e}", out.display()))?;
        println!("{section}");
        eprintln!("wrote the backlog section of {}", out.display());
        return Ok(());
    }

    eprintln!("starting DynamoDB Local, the counting proxy and the fakes…");
    let bench = Bench::start().await?;
    bench.prepare_table().await?;
    // DynamoDB Local is a JVM: its first few thousand calls run slower
    // while the JIT compiles. Nothing is timed until it has seen them.
    eprintln!("warming DynamoDB Local up…");
    for function in [Function::SlackEvents, Function::EasemobCallback] {
        bench
            .in_process_run(function, 4 * options.warmup.max(100), 0)
            .await?;
    }

    let mut in_process = Vec::new();
    for function in FUNCTIONS {
        eprintln!(
            "{}: {} requests in-process…",
            function.name(),
            options.requests
        );
        in_process.push(
            bench
                .in_process_run(function, options.warmup, options.requests)
                .await?,
        );
    }

    let sources_changed = newest_source_change(&workspace);
    let mut functions = Vec::new();
    let mut before = Vec::new();
    for (function, in_process) in FUNCTIONS.into_iter().zip(in_process) {
        let binary = bins.join(function.name());
        eprintln!(
            "{}: {} cold starts, then {} warm requests…",
            function.name(),
            options.cold_runs,
            options.requests
        );
        if let Some(dir) = &options.before {
            let binary = dir.join(function.name());
            let (cold, warm) = measure_binary(&bench, &options, function, &binary).await?;
            before.push(FunctionResult {
                function,
                cold,
                warm,
                in_process: Default::default(),
                binary_bytes: std::fs::metadata(&binary).ok().map(|m| m.len()),
                arm64_bytes: std::fs::metadata(dir.join("arm64").join(function.name()))
                    .ok()
                    .map(|m| m.len()),
                arm64_stale: false,
            });
        }
        let (cold, warm) = measure_binary(&bench, &options, function, &binary).await?;
        let x86 = std::fs::metadata(&binary).ok();
        let arm64 = arm64_bootstrap(&target, function);
        // A bootstrap built before the sources last changed is not the code
        // measured here.
        let arm64_stale = match (&arm64, sources_changed) {
            (Some((_, built)), Some(changed)) => *built < changed,
            _ => false,
        };
        functions.push(FunctionResult {
            function,
            cold,
            warm,
            in_process,
            binary_bytes: x86.map(|m| m.len()),
            arm64_bytes: arm64.map(|(size, _)| size),
            arm64_stale,
        });
    }

    let mut noops = Vec::new();
    for flavour in ["multi_thread", "current_thread"] {
        eprintln!("no-op function baseline ({flavour} runtime)…");
        let (noop_exe, noop_env) = noop_binary(flavour)?;
        let event = |i| Function::SlackEvents.event(i);
        let cold = bench
            .cold_starts(&noop_exe, "noop", &noop_env, || event(0), options.cold_runs)
            .await?;
        let warm = bench
            .warm_run(
                &noop_exe,
                "noop",
                &noop_env,
                event,
                options.warmup,
                options.requests,
            )
            .await?;
        noops.push(Baseline {
            flavour,
            cold,
            warm,
        });
    }

    let report = Report {
        machine: Machine::read(&workspace, load_at_start),
        cold_runs: options.cold_runs,
        warmup: options.warmup,
        requests: options.requests,
        functions,
        noops,
        arm64_note: arm64_note(&target),
        dynamodb_local: dynamodb_local_version(),
        micro: criterion_results::read(&target),
        before: options.before.as_ref().map(|_| Before {
            label: options.before_label.clone(),
            functions: before,
        }),
        backlog: backlog::section(&existing),
    };
    let markdown = report.markdown();
    std::fs::write(&out, &markdown).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("{markdown}");
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// Cold starts, then a warm run, of one function binary.
async fn measure_binary(
    bench: &Bench,
    options: &Options,
    function: Function,
    binary: &Path,
) -> Result<(Run, WarmRun), String> {
    let cold = bench
        .cold_starts(
            binary,
            function.name(),
            &[],
            || function.event(0),
            options.cold_runs,
        )
        .await?;
    let warm = bench
        .warm_run(
            binary,
            function.name(),
            &[],
            |i| function.event(i),
            options.warmup,
            options.requests,
        )
        .await?;
    Ok((cold, warm))
}

fn workspace_root() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

fn target_dir(workspace: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
}

/// `cargo lambda build --release --arm64` output, if it is there and is an
/// aarch64 ELF: its size and when it was built.
fn arm64_bootstrap(target: &Path, function: Function) -> Option<(u64, SystemTime)> {
    let path = target
        .join("lambda")
        .join(function.name())
        .join("bootstrap");
    let bytes = std::fs::read(&path).ok()?;
    // ELF, e_machine (offset 18, little-endian) = EM_AARCH64 (183).
    let is_aarch64 = bytes.starts_with(b"\x7fELF") && bytes.get(18..20) == Some(&[183, 0]);
    if !is_aarch64 {
        return None;
    }
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    Some((bytes.len() as u64, built))
}

/// When the code the function binaries are built from last changed: the
/// newest modification time under `shared/src`, `functions/` and the
/// manifests and lock file.
fn newest_source_change(workspace: &Path) -> Option<SystemTime> {
    let mut newest = None;
    let mut pending: Vec<PathBuf> = [
        "shared/src",
        "functions",
        "shared/Cargo.toml",
        "Cargo.toml",
        "Cargo.lock",
    ]
    .iter()
    .map(|p| workspace.join(p))
    .collect();
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            pending.extend(
                std::fs::read_dir(&path)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
        } else if let Ok(modified) = meta.modified() {
            newest = newest.max(Some(modified));
        }
    }
    newest
}

fn arm64_note(target: &Path) -> String {
    let built: Vec<SystemTime> = FUNCTIONS
        .iter()
        .filter_map(|f| arm64_bootstrap(target, *f).map(|(_, at)| at))
        .collect();
    match built.iter().min() {
        Some(oldest) => format!(
            "`target/lambda/*/bootstrap` from `scripts/bench --arm64` (cargo-lambda with zig \
             as the cross linker), built {}.",
            utc(*oldest)
        ),
        None => "not built for this run; `scripts/bench --arm64` cross-builds with cargo-lambda \
                 (needs `rustup target add aarch64-unknown-linux-gnu` and `pip install \
                 cargo-lambda ziglang`)."
            .into(),
    }
}

fn dynamodb_local_version() -> String {
    bridge_tests::dynamodb_local::jar_dir()
        .ok()
        .and_then(|dir| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|name| name.replace("dynamodb_local_", "DynamoDB Local "))
        .unwrap_or_else(|| "DynamoDB Local".into())
}
