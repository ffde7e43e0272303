//! Helpers for durable-delivery tests: run the scheduled drains the way
//! EventBridge would, and read the outbox and the dead letters.

use std::time::{Duration, Instant};

use kefu_bridge::dynamo::item::{num_attr, str_attr};
use kefu_bridge::relay::outbox::{self, DrainSummary};
use kefu_bridge::store::{DeadLetter, Direction, OutboxItem};

use crate::TestApp;

impl TestApp {
    /// One scheduled drain of `direction`, with the production time budget.
    pub async fn drain(&self, direction: Direction) -> DrainSummary {
        outbox::drain(
            &self.bridge,
            direction,
            Instant::now() + outbox::DRAIN_BUDGET,
        )
        .await
    }

    /// Drains both directions every `every` until both outboxes are empty
    /// or `limit` has passed; returns how many rounds ran. The time passes
    /// on the app's clock, moved forward between rounds (whole seconds, at
    /// least one), not slept: a backoff costs a round, not its seconds.
    pub async fn drain_until_empty(&self, every: Duration, limit: Duration) -> usize {
        let started = self.clock.advanced();
        let step = every.as_secs().max(1) as i64;
        let mut rounds = 0;
        loop {
            rounds += 1;
            self.drain(Direction::ToKefu).await;
            self.drain(Direction::ToSlack).await;
            let waiting = self.waiting(Direction::ToKefu).await.len()
                + self.waiting(Direction::ToSlack).await.len();
            if waiting == 0 || self.clock.advanced() - started >= limit.as_secs() as i64 {
                return rounds;
            }
            self.clock.advance(step);
        }
    }

    /// What waits in the outbox in `direction`, in order.
    pub async fn waiting(&self, direction: Direction) -> Vec<OutboxItem> {
        self.bridge.store.outbox(direction).await.expect("outbox")
    }

    /// Makes every waiting message due now, as if its backoff had passed
    /// (the backoff itself has its own tests; this keeps scenarios quick).
    pub async fn make_due(&self) {
        for direction in [Direction::ToKefu, Direction::ToSlack] {
            for item in self.waiting(direction).await {
                self.bridge
                    .store
                    .db()
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", str_attr("OUTBOX"))
                    .key("sk", str_attr(item.sort_key()))
                    .update_expression("SET next_attempt_at = :zero")
                    .expression_attribute_values(":zero", num_attr(0))
                    .send()
                    .await
                    .expect("make due");
            }
        }
    }

    pub async fn dead_letters(&self) -> Vec<DeadLetter> {
        self.bridge
            .store
            .dead_letters()
            .await
            .expect("dead letters")
    }
}
