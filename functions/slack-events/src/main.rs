//! `slack-events`: `POST /slack/events` (Slack Events API → Kefu).
use kefu_bridge::{lambda, logging, relay::slack_events, Bridge};
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
        let http = |request| async move { slack_events::handle(bridge, &request).await };
        Ok::<_, Error>(
            lambda::dispatch(event.payload, http, |e| async move {
                lambda::nothing_scheduled(&e)
            })
            .await,
        )
    }))
    .await
}
