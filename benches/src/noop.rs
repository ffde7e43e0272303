//! A Lambda function that does nothing: the baseline for what the emulator,
//! the loopback Runtime API and `lambda_runtime` itself cost per cold start
//! and per invocation. The bench binary becomes this function when started
//! with [`NOOP_ENV`] set, so no second binary has to be built.

use lambda_runtime::{run as run_lambda, service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

pub const NOOP_ENV: &str = "BRIDGE_BENCH_NOOP_FUNCTION";

/// Same runtime flavour as the real functions (`#[tokio::main]`), same event
/// type (`serde_json::Value`), a minimal API Gateway answer.
pub fn run() -> Result<(), Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run_lambda(service_fn(|_: LambdaEvent<Value>| async {
            Ok::<_, Error>(json!({ "statusCode": 200, "body": "" }))
        })))
}
