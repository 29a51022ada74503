//! The SQS-compatible queue service, through the real `aws-sdk-sqs` (JSON protocol) and raw
//! form posts (query protocol), against a real `lamina serve`.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use common::*;
use md5::{Digest, Md5};

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

async fn attribute(sqs: &aws_sdk_sqs::Client, url: &str, name: QueueAttributeName) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .expect("get queue attributes")
        .attributes()
        .and_then(|a| a.get(&name))
        .cloned()
        .unwrap_or_else(|| panic!("attribute {name:?} missing"))
}

#[tokio::test]
async fn queues_are_created_listed_described_and_deleted() {
    let server = Server::start();
    let sqs = server.sqs();
    let url = sqs
        .create_queue()
        .queue_name("orders")
        .attributes(QueueAttributeName::VisibilityTimeout, "7")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    assert_eq!(url, format!("{}/000000000000/orders", server.endpoint));
    // Creating it again with the same attributes returns the same URL; other values are refused.
    let again = sqs
        .create_queue()
        .queue_name("orders")
        .attributes(QueueAttributeName::VisibilityTimeout, "7")
        .send()
        .await
        .unwrap();
    assert_eq!(again.queue_url(), Some(url.as_str()));
    let (code, message) = sqs_error(
        sqs.create_queue()
            .queue_name("orders")
            .attributes(QueueAttributeName::VisibilityTimeout, "8")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "QueueAlreadyExists");
    assert!(message.contains("VisibilityTimeout"), "{message}");
    create_queue(&sqs, "other").await;
    let listed = sqs
        .list_queues()
        .queue_name_prefix("ord")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.queue_urls(), std::slice::from_ref(&url));
    let got = sqs
        .get_queue_url()
        .queue_name("orders")
        .send()
        .await
        .unwrap();
    assert_eq!(got.queue_url(), Some(url.as_str()));

    let all = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let attrs = all.attributes().unwrap();
    let get = |n: QueueAttributeName| attrs.get(&n).cloned().unwrap_or_default();
    assert_eq!(
        get(QueueAttributeName::QueueArn),
        "arn:aws:sqs:us-east-1:000000000000:orders"
    );
    assert_eq!(get(QueueAttributeName::VisibilityTimeout), "7");
    assert_eq!(get(QueueAttributeName::ApproximateNumberOfMessages), "0");
    assert_eq!(get(QueueAttributeName::MessageRetentionPeriod), "345600");
    assert_eq!(get(QueueAttributeName::DelaySeconds), "0");
    assert!(
        get(QueueAttributeName::CreatedTimestamp)
            .parse::<i64>()
            .unwrap()
            > 1_700_000_000
    );

    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::DelaySeconds, "3")
        .send()
        .await
        .unwrap();
    assert_eq!(
        attribute(&sqs, &url, QueueAttributeName::DelaySeconds).await,
        "3"
    );
    let (code, message) = sqs_error(
        sqs.set_queue_attributes()
            .queue_url(&url)
            .attributes(QueueAttributeName::DelaySeconds, "901")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "InvalidAttributeValue");
    assert_eq!(message, "Invalid value for the parameter DelaySeconds.");
    let (code, _) = sqs_error(
        sqs.set_queue_attributes()
            .queue_url(&url)
            .attributes(QueueAttributeName::from("Colour"), "red")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "InvalidAttributeName");

    sqs.delete_queue().queue_url(&url).send().await.unwrap();
    let (code, message) = sqs_error(
        sqs.get_queue_url()
            .queue_name("orders")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "AWS.SimpleQueueService.NonExistentQueue");
    assert_eq!(message, "The specified queue does not exist.");
    let (code, _) = sqs_error(
        sqs.send_message()
            .queue_url(&url)
            .message_body("x")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "AWS.SimpleQueueService.NonExistentQueue");
}

#[tokio::test]
async fn messages_are_sent_received_hidden_and_deleted() {
    let server = Server::start();
    let sqs = server.sqs();
    let url = create_queue(&sqs, "work").await;
    let sent = sqs
        .send_message()
        .queue_url(&url)
        .message_body("hello")
        .message_attributes(
            "colour",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("blue")
                .build()
                .unwrap(),
        )
        .message_attributes(
            "n",
            MessageAttributeValue::builder()
                .data_type("Number")
                .string_value("42")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(sent.md5_of_message_body(), Some(md5_hex("hello").as_str()));
    let attrs_md5 = sent.md5_of_message_attributes().unwrap().to_string();
    assert_eq!(attrs_md5.len(), 32);
    assert_eq!(
        attribute(&sqs, &url, QueueAttributeName::ApproximateNumberOfMessages).await,
        "1"
    );

    let before = chrono_ms();
    let got = sqs
        .receive_message()
        .queue_url(&url)
        .visibility_timeout(30)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    let m = &got.messages()[0];
    assert_eq!(m.message_id(), sent.message_id());
    assert_eq!(m.body(), Some("hello"));
    assert_eq!(m.md5_of_body(), Some(md5_hex("hello").as_str()));
    assert_eq!(m.md5_of_message_attributes(), Some(attrs_md5.as_str()));
    let a = m.attributes().unwrap();
    assert_eq!(a[&MessageSystemAttributeName::ApproximateReceiveCount], "1");
    let sent_at: i64 = a[&MessageSystemAttributeName::SentTimestamp]
        .parse()
        .unwrap();
    assert!(sent_at <= before && sent_at > before - 60_000);
    let ma = m.message_attributes().unwrap();
    assert_eq!(ma["colour"].string_value(), Some("blue"));
    assert_eq!(ma["n"].data_type(), "Number");
    // In flight: invisible to other receivers, counted as not visible.
    let none = sqs.receive_message().queue_url(&url).send().await.unwrap();
    assert!(none.messages().is_empty());
    assert_eq!(
        attribute(
            &sqs,
            &url,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible
        )
        .await,
        "1"
    );
    // Made visible again, it comes back with a new handle and a higher count.
    let handle = m.receipt_handle().unwrap().to_string();
    sqs.change_message_visibility()
        .queue_url(&url)
        .receipt_handle(&handle)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let again = receive_one(&sqs, &url, Duration::from_secs(10)).await;
    assert_eq!(
        again.attributes().unwrap()[&MessageSystemAttributeName::ApproximateReceiveCount],
        "2"
    );
    assert_ne!(again.receipt_handle(), Some(handle.as_str()));
    // The old handle no longer changes visibility.
    let (code, _) = sqs_error(
        sqs.change_message_visibility()
            .queue_url(&url)
            .receipt_handle(&handle)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "AWS.SimpleQueueService.MessageNotInflight");
    sqs.delete_message()
        .queue_url(&url)
        .receipt_handle(again.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        attribute(
            &sqs,
            &url,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible
        )
        .await,
        "0"
    );
    let (code, message) = sqs_error(
        sqs.delete_message()
            .queue_url(&url)
            .receipt_handle("not-a-handle")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "ReceiptHandleIsInvalid");
    assert_eq!(
        message,
        "The input receipt handle \"not-a-handle\" is not a valid receipt handle."
    );
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn long_polls_wait_for_a_message_and_time_out_empty() {
    let server = Server::start();
    let sqs = server.sqs();
    let url = create_queue(&sqs, "poll").await;
    let started = Instant::now();
    let empty = sqs
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(empty.messages().is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900));
    let poller = {
        let sqs = sqs.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let out = sqs
                .receive_message()
                .queue_url(&url)
                .wait_time_seconds(10)
                .send()
                .await
                .unwrap();
            (out, started.elapsed())
        })
    };
    // The poller is waiting when the message is sent (no message exists before this point).
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqs.send_message()
        .queue_url(&url)
        .message_body("late")
        .send()
        .await
        .unwrap();
    let (out, waited) = poller.await.unwrap();
    assert_eq!(out.messages()[0].body(), Some("late"));
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
}

#[tokio::test]
async fn batches_delays_limits_and_redrive() {
    let server = Server::start();
    let sqs = server.sqs();
    let url = create_queue(&sqs, "batch").await;
    let out = sqs
        .send_message_batch()
        .queue_url(&url)
        .entries(
            SendMessageBatchRequestEntry::builder()
                .id("a")
                .message_body("one")
                .build()
                .unwrap(),
        )
        .entries(
            SendMessageBatchRequestEntry::builder()
                .id("b")
                .message_body("two")
                .delay_seconds(600)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.successful().len(), 2);
    assert!(out.failed().is_empty());
    assert_eq!(
        attribute(
            &sqs,
            &url,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed
        )
        .await,
        "1"
    );
    let got = sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.messages().len(),
        1,
        "the delayed message is not receivable"
    );
    let del = sqs
        .delete_message_batch()
        .queue_url(&url)
        .entries(
            DeleteMessageBatchRequestEntry::builder()
                .id("x")
                .receipt_handle(got.messages()[0].receipt_handle().unwrap())
                .build()
                .unwrap(),
        )
        .entries(
            DeleteMessageBatchRequestEntry::builder()
                .id("y")
                .receipt_handle("bogus")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(del.successful().len(), 1);
    assert_eq!(del.failed()[0].id(), "y");
    assert_eq!(del.failed()[0].code(), "ReceiptHandleIsInvalid");
    // The delayed message, made receivable, then hidden again and shown by a batch change.
    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::DelaySeconds, "0")
        .send()
        .await
        .unwrap();
    sqs.send_message()
        .queue_url(&url)
        .message_body("three")
        .send()
        .await
        .unwrap();
    let three = receive_one(&sqs, &url, Duration::from_secs(10)).await;
    let changed = sqs
        .change_message_visibility_batch()
        .queue_url(&url)
        .entries(
            aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                .id("c")
                .receipt_handle(three.receipt_handle().unwrap())
                .visibility_timeout(0)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(changed.successful()[0].id(), "c");
    let again = receive_one(&sqs, &url, Duration::from_secs(10)).await;
    assert_eq!(again.body(), Some("three"));
    purge(&sqs, &url).await;
    let (code, _) = sqs_error(
        sqs.send_message_batch()
            .queue_url(&url)
            .entries(
                SendMessageBatchRequestEntry::builder()
                    .id("same")
                    .message_body("1")
                    .build()
                    .unwrap(),
            )
            .entries(
                SendMessageBatchRequestEntry::builder()
                    .id("same")
                    .message_body("2")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "AWS.SimpleQueueService.BatchEntryIdsNotDistinct");

    // An oversize message is refused with SQS's message.
    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::MaximumMessageSize, "1024")
        .send()
        .await
        .unwrap();
    let (code, message) = sqs_error(
        sqs.send_message()
            .queue_url(&url)
            .message_body("x".repeat(1025))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "InvalidParameterValue");
    assert_eq!(
        message,
        "One or more parameters are invalid. Reason: Message must be shorter than 1024 bytes."
    );
    purge(&sqs, &url).await;

    // Redrive: after maxReceiveCount receives the message moves to the dead-letter queue.
    let dlq = create_queue(&sqs, "batch-dlq").await;
    let policy = serde_json::json!({
        "deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:batch-dlq",
        "maxReceiveCount": "2",
    });
    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
        .send()
        .await
        .unwrap();
    sqs.send_message()
        .queue_url(&url)
        .message_body("poison")
        .send()
        .await
        .unwrap();
    for _ in 0..2 {
        let got = sqs
            .receive_message()
            .queue_url(&url)
            .visibility_timeout(0)
            .wait_time_seconds(2)
            .send()
            .await
            .unwrap();
        assert_eq!(got.messages()[0].body(), Some("poison"));
    }
    let third = sqs.receive_message().queue_url(&url).send().await.unwrap();
    assert!(third.messages().is_empty());
    let moved = receive_one(&sqs, &dlq, Duration::from_secs(10)).await;
    assert_eq!(moved.body(), Some("poison"));
}

async fn purge(sqs: &aws_sdk_sqs::Client, url: &str) {
    sqs.purge_queue().queue_url(url).send().await.unwrap();
    assert_eq!(
        attribute(sqs, url, QueueAttributeName::ApproximateNumberOfMessages).await,
        "0"
    );
}

#[tokio::test]
async fn messages_survive_a_crash_and_in_flight_ones_come_back() {
    let mut server = Server::start();
    let sqs = server.sqs();
    let url = create_queue(&sqs, "durable").await;
    for body in ["a-received", "b-waiting"] {
        sqs.send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let first = sqs
        .receive_message()
        .queue_url(&url)
        .visibility_timeout(2)
        .send()
        .await
        .unwrap();
    assert_eq!(first.messages()[0].body(), Some("a-received"));
    server.crash_and_restart();
    let sqs = server.sqs();
    let url = format!("{}/000000000000/durable", server.endpoint);
    let mut bodies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while bodies.len() < 2 {
        assert!(Instant::now() < deadline, "got only {bodies:?}");
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            bodies.push((
                m.body().unwrap().to_string(),
                m.attributes().unwrap()[&MessageSystemAttributeName::ApproximateReceiveCount]
                    .clone(),
            ));
        }
    }
    bodies.sort();
    assert_eq!(
        bodies,
        [
            ("a-received".to_string(), "2".to_string()),
            ("b-waiting".to_string(), "1".to_string())
        ]
    );
}

/// POST a form to `endpoint` (the query protocol, as older clients send it).
fn post_form(endpoint: &str, path: &str, form: &str) -> (u16, String) {
    let authority = endpoint.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let status = raw[9..12].parse().unwrap();
    let body = raw.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

#[tokio::test]
async fn the_query_protocol_answers_in_xml() {
    let server = Server::start();
    let (status, body) = post_form(
        &server.endpoint,
        "/",
        "Action=CreateQueue&QueueName=legacy&Attribute.1.Name=VisibilityTimeout&Attribute.1.Value=5&Version=2012-11-05",
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<CreateQueueResponse"), "{body}");
    assert!(
        body.contains(&format!(
            "<QueueUrl>{}/000000000000/legacy</QueueUrl>",
            server.endpoint
        )),
        "{body}"
    );
    let (status, body) = post_form(
        &server.endpoint,
        "/000000000000/legacy",
        "Action=SendMessage&MessageBody=a%26b&MessageAttribute.1.Name=k&MessageAttribute.1.Value.DataType=String&MessageAttribute.1.Value.StringValue=v",
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!(
            "<MD5OfMessageBody>{}</MD5OfMessageBody>",
            md5_hex("a&b")
        )),
        "{body}"
    );
    let (_, body) = post_form(
        &server.endpoint,
        "/000000000000/legacy",
        "Action=ReceiveMessage&AttributeName.1=All&MessageAttributeName.1=All",
    );
    assert!(body.contains("<Body>a&amp;b</Body>"), "{body}");
    assert!(
        body.contains(
            "<Attribute><Name>ApproximateReceiveCount</Name><Value>1</Value></Attribute>"
        ),
        "{body}"
    );
    assert!(
        body.contains("<MessageAttribute><Name>k</Name><Value><DataType>String</DataType><StringValue>v</StringValue></Value></MessageAttribute>"),
        "{body}"
    );
    // The SDK reads what the query protocol wrote.
    let sqs = server.sqs();
    let url = format!("{}/000000000000/legacy", server.endpoint);
    assert_eq!(
        attribute(&sqs, &url, QueueAttributeName::VisibilityTimeout).await,
        "5"
    );
    let (status, body) = post_form(
        &server.endpoint,
        "/000000000000/legacy",
        "Action=SendMessageBatch&SendMessageBatchRequestEntry.1.Id=one&SendMessageBatchRequestEntry.1.MessageBody=x&SendMessageBatchRequestEntry.2.Id=two&SendMessageBatchRequestEntry.2.MessageBody=",
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<SendMessageBatchResultEntry><Id>one</Id>"),
        "{body}"
    );
    assert!(
        body.contains("<BatchResultErrorEntry><Code>MissingParameter</Code><Id>two</Id>"),
        "{body}"
    );
    let (status, body) = post_form(
        &server.endpoint,
        "/",
        "Action=GetQueueUrl&QueueName=missing",
    );
    assert_eq!(status, 400);
    assert!(
        body.contains("<Code>AWS.SimpleQueueService.NonExistentQueue</Code>"),
        "{body}"
    );
    assert!(body.contains("<Type>Sender</Type>"), "{body}");
}
