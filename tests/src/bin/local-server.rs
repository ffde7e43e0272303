//! `make dev`: every route of the bridge on one local port, with the real
//! handlers, DynamoDB Local and the configuration from the environment
//! (`scripts/dev` loads `.env`). Without credentials it still starts and
//! says what is missing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge_tests::{local_server, local_sqs};
use kefu_bridge::relay::outbox;
use kefu_bridge::store::Direction;
use kefu_bridge::{logging, Bridge};

/// How often the local stand-in for EventBridge drains the outbox
/// (template.yaml: every minute).
const DRAIN_EVERY: Duration = Duration::from_secs(60);

/// What Lambda's SQS event source and the minute schedule do in AWS:
/// deliver due wake-ups (`RETRY_QUEUE_URL` on the local SQS that
/// `scripts/dev` starts) and drain both directions every minute, so a local
/// outage drill behaves like the deployed stack.
async fn background(bridge: Arc<Bridge>) {
    let queue = match bridge.config.retry_queue_url.as_deref() {
        Some(url) => {
            let name = url.rsplit('/').next().unwrap_or("retry");
            Some(local_sqs::create_named_queue(name).await)
        }
        None => None,
    };
    let mut last_drain = Instant::now();
    loop {
        match &queue {
            // Long polling: returns as soon as a wake-up is due.
            Some(queue) => {
                local_sqs::deliver_by_direction(&bridge, queue, 5).await;
            }
            None => tokio::time::sleep(Duration::from_secs(5)).await,
        }
        if last_drain.elapsed() >= DRAIN_EVERY {
            last_drain = Instant::now();
            for direction in [Direction::ToKefu, Direction::ToSlack] {
                let deadline = Instant::now() + outbox::DRAIN_BUDGET;
                outbox::drain(&bridge, direction, deadline).await;
            }
        }
    }
}

#[tokio::main]
async fn main() {
    logging::init();
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let bridge = match Bridge::from_env(kefu_bridge::config::Duties::ALL).await {
        Ok(bridge) => {
            if let Err(error) = bridge.store.create_table().await {
                eprintln!("cannot create table {}: {error}", bridge.config.table_name);
            }
            let bridge = Arc::new(bridge);
            tokio::spawn(background(bridge.clone()));
            Ok(bridge)
        }
        Err(error) => {
            eprintln!("⚠ not configured: {error}. Fill them in .env (see .env.example); routes answer 503 until then.");
            Err(error.to_string())
        }
    };
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .expect("bind port");
    println!("Bridge listening on http://localhost:{port}");
    println!("Expose it (e.g. `cloudflared tunnel --url http://localhost:{port}` or `ngrok http {port}`), then paste:");
    println!("  Slack → Event Subscriptions → Request URL:   https://<tunnel>/slack/events");
    println!(
        "  Slack → OAuth & Permissions → Redirect URL:  https://<tunnel>/slack/oauth/callback"
    );
    println!("  Install the app:                             https://<tunnel>/slack/install");
    println!("  Easemob / Kefu message callback URL:          https://<tunnel>/easemob/callback");
    local_server::serve(listener, bridge).await;
}
