//! The benchmark's fake SQS (tests/src/fake_sqs.rs) behaves like moto's on
//! what the bridge and its kit use: delays, long polls, visibility
//! timeouts, receive counts, redrive to a dead-letter queue, the queue's
//! counts, and a signature required. The same scenario runs against both
//! and what each observes must be the same.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use bridge_tests::fake_sqs::FakeSqs;
use bridge_tests::local_sqs;
use kefu_bridge::wakeup::{client_for_endpoint, SqsClient};
use serde_json::json;

async fn counts(client: &SqsClient, queue_url: &str) -> (String, String, String) {
    let answer = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("attributes");
    let attributes = answer.attributes().cloned().unwrap_or_default();
    let get = |name: QueueAttributeName| attributes.get(&name).cloned().unwrap_or_default();
    (
        get(QueueAttributeName::ApproximateNumberOfMessages),
        get(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Bodies received (and their receive counts), waiting up to `wait` s.
async fn receive(client: &SqsClient, queue_url: &str, wait: i32) -> Vec<(String, String, String)> {
    let answer = client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .customize()
        .config_override(
            aws_sdk_sqs::config::Builder::default().timeout_config(
                aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(30))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .read_timeout(Duration::from_secs(30))
                    .build(),
            ),
        )
        .send()
        .await
        .expect("receive");
    answer
        .messages()
        .iter()
        .map(|m| {
            let count = m
                .attributes()
                .and_then(|a| {
                    a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                })
                .cloned()
                .unwrap_or_default();
            (
                m.body().unwrap_or_default().to_string(),
                count,
                m.receipt_handle().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// What one SQS shows along the scenario, receipt handles left out.
async fn scenario(endpoint: String, suffix: &str) -> Vec<String> {
    let client = client_for_endpoint(&endpoint);
    let mut seen = Vec::new();
    let dead = client
        .create_queue()
        .queue_name(format!("contract-dlq-{suffix}"))
        .send()
        .await
        .expect("dlq");
    let dead = dead.queue_url().unwrap().to_string();
    let arn = client
        .get_queue_attributes()
        .queue_url(&dead)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("arn")
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap();
    let queue = client
        .create_queue()
        .queue_name(format!("contract-{suffix}"))
        .attributes(QueueAttributeName::VisibilityTimeout, "6")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({ "deadLetterTargetArn": arn, "maxReceiveCount": 2 }).to_string(),
        )
        .send()
        .await
        .expect("queue");
    let queue = queue.queue_url().unwrap().to_string();

    for (body, delay) in [("now", 0), ("later", 3)] {
        let sent = client
            .send_message()
            .queue_url(&queue)
            .message_body(body)
            .delay_seconds(delay)
            .send()
            .await
            .expect("send");
        seen.push(format!("md5 {:?}", sent.md5_of_message_body()));
    }
    seen.push(format!("counts {:?}", counts(&client, &queue).await));
    let first = receive(&client, &queue, 0).await;
    seen.push(format!("{:?}", strip(&first)));
    seen.push(format!("counts {:?}", counts(&client, &queue).await));
    // The delayed one, by a long poll (due before the first is visible
    // again); deleted.
    let later = receive(&client, &queue, 10).await;
    seen.push(format!("{:?}", strip(&later)));
    for (_, _, receipt) in &later {
        client
            .delete_message()
            .queue_url(&queue)
            .receipt_handle(receipt)
            .send()
            .await
            .expect("delete");
    }
    // "now" was not deleted: back after its visibility timeout, counted.
    let again = receive(&client, &queue, 10).await;
    seen.push(format!("{:?}", strip(&again)));
    // Received twice already: the next receive moves it to the dead letters.
    tokio::time::sleep(Duration::from_millis(6_500)).await;
    let none = receive(&client, &queue, 1).await;
    seen.push(format!("{:?}", strip(&none)));
    seen.push(format!("queue {:?}", counts(&client, &queue).await));
    seen.push(format!("dead letters {:?}", counts(&client, &dead).await));
    let missing = client
        .send_message()
        .queue_url(format!("{endpoint}/000000000000/no-such-queue-{suffix}"))
        .message_body("x")
        .send()
        .await;
    seen.push(format!("missing queue refused: {}", missing.is_err()));
    seen
}

fn strip(received: &[(String, String, String)]) -> Vec<(String, String)> {
    received
        .iter()
        .map(|(body, count, _)| (body.clone(), count.clone()))
        .collect()
}

#[tokio::test]
async fn the_fake_sqs_shows_what_moto_shows() {
    let fake = FakeSqs::start().await.expect("fake sqs");
    let suffix = format!("{}", std::process::id());
    let (moto, ours) = tokio::join!(
        scenario(local_sqs::endpoint(), &suffix),
        scenario(fake.endpoint.clone(), &suffix),
    );
    assert_eq!(ours, moto);
    // And the scenario saw what it is about.
    assert!(
        ours.contains(&r#"[("later", "1")]"#.to_string()),
        "{ours:?}"
    );
    assert!(ours.contains(&r#"[("now", "2")]"#.to_string()), "{ours:?}");
    assert_eq!(
        ours.last().map(String::as_str),
        Some("missing queue refused: true")
    );
}

#[tokio::test]
async fn the_fake_sqs_refuses_an_unsigned_request() {
    let fake = FakeSqs::start().await.expect("fake sqs");
    let answer = reqwest::Client::new()
        .post(&fake.endpoint)
        .header("x-amz-target", "AmazonSQS.CreateQueue")
        .header("content-type", "application/x-amz-json-1.0")
        .body(r#"{"QueueName":"unsigned"}"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status().as_u16(), 403);
}
