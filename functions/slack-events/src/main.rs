//! `slack-events`: `POST /slack/events` (Slack Events API → Kefu) and
//! `POST /slack/interactivity` (button clicks and modals → Kefu).
use kefu_bridge::relay::{interactivity, outbox, slack_events};
use kefu_bridge::store::Direction;
use kefu_bridge::{lambda, logging, Bridge};
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
        let http = |request: kefu_bridge::http_types::HttpRequest| async move {
            if interactivity::is_interactivity_path(&request.path) {
                interactivity::handle(bridge, &request).await
            } else {
                slack_events::handle(bridge, &request).await
            }
        };
        // Scheduled Events drain the outbox (template.yaml: every minute).
        let deadline = outbox::drain_deadline(event.context.deadline);
        let drain =
            |e| async move { outbox::scheduled(bridge, Direction::ToKefu, &e, deadline).await };
        Ok::<_, Error>(lambda::dispatch(event.payload, http, drain).await)
    }))
    .await
}
