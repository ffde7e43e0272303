//! `easemob-callback`: `POST /easemob/callback` (agent replies in Kefu → Slack),
//! and the scheduled drain of the outbox to Slack.
// The AWS SDK's request futures nest deeply inside the handler's; the
// compiler's default depth (128) is too shallow for their layout.
#![recursion_limit = "256"]
use kefu_bridge::lambda::{self, Function};
use kefu_bridge::{logging, Bridge};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

// One invocation at a time per Lambda instance and nothing spawned: a
// current-thread runtime halves CPU per request (BENCHMARKS.md A/B).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    logging::init();
    let bridge = match Bridge::from_env(Function::EasemobCallback.duties()).await {
        Ok(bridge) => bridge,
        Err(error) => return Err(lambda::report_init_error(error).await),
    };
    let bridge = &bridge;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = event.context.deadline;
        Ok::<_, Error>(
            lambda::invoke(bridge, Function::EasemobCallback, event.payload, deadline).await,
        )
    }))
    .await
}
