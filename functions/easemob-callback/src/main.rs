//! `easemob-callback`: `POST /easemob/callback` (agent replies in Kefu → Slack).
use kefu_bridge::{lambda, logging, relay::easemob_callback, Bridge};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let bridge = match Bridge::from_env() {
        Ok(bridge) => bridge,
        Err(error) => return Err(lambda::report_init_error(error).await),
    };
    let bridge = &bridge;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let http = |request| async move { easemob_callback::handle(bridge, &request).await };
        Ok::<_, Error>(
            lambda::dispatch(event.payload, http, |e| async move {
                lambda::nothing_scheduled(&e)
            })
            .await,
        )
    }))
    .await
}
