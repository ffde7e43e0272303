//! `make dev`: every route of the bridge on one local port, with the real
//! handlers, DynamoDB Local and the configuration from the environment
//! (`scripts/dev` loads `.env`). Without credentials it still starts and
//! says what is missing.

use std::sync::Arc;

use bridge_tests::local_server;
use kefu_bridge::{logging, Bridge};

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
            Ok(Arc::new(bridge))
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
