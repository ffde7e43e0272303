//! A Lambda function that does nothing: the baseline for what the emulator,
//! the loopback Runtime API and `lambda_runtime` itself cost per cold start
//! and per invocation. The bench binary becomes this function when started
//! with [`NOOP_ENV`] set, so no second binary has to be built.

use lambda_runtime::{run as run_lambda, service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

/// `multi_thread` or `current_thread` (what the functions' `#[tokio::main]`
/// builds): the same no-op on either Tokio runtime, to show what the runtime
/// flavour costs a one-invocation-at-a-time Lambda.
pub const NOOP_ENV: &str = "BRIDGE_BENCH_NOOP_FUNCTION";

/// Same event type as the real functions (`serde_json::Value`), a minimal
/// API Gateway answer.
pub fn run(flavour: &str) -> Result<(), Error> {
    let mut builder = if flavour == "current_thread" {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder
        .enable_all()
        .build()?
        .block_on(run_lambda(service_fn(|_: LambdaEvent<Value>| async {
            Ok::<_, Error>(json!({ "statusCode": 200, "body": "" }))
        })))
}
