//! OpenTelemetry traces (the `otlp` feature): the real daemon exports its spans over
//! OTLP/HTTP to a receiver in this test, which decodes them as a collector would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use support::*;

/// One OTLP/HTTP export: the request path, its content type and body.
struct Export {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// A minimal OTLP/HTTP receiver: answers every request 200 and keeps it.
fn otlp_receiver() -> (String, Arc<Mutex<Vec<Export>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let exports = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&exports);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let kept = Arc::clone(&kept);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                // Keep-alive: several requests per connection.
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = request_line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or("")
                        .to_owned();
                    let (mut length, mut content_type) = (0usize, String::new());
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        let (name, value) = line.split_once(':').unwrap();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse().unwrap(),
                            "content-type" => content_type = value.trim().to_owned(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0u8; length];
                    reader.read_exact(&mut body).unwrap();
                    kept.lock().unwrap().push(Export {
                        path,
                        content_type,
                        body,
                    });
                    writer
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
                        )
                        .unwrap();
                }
            });
        }
    });
    (format!("http://{address}/v1/traces"), exports)
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(text) => Some(text.as_str()),
            _ => None,
        }
    })
}

fn string_values(attributes: &[KeyValue]) -> Vec<String> {
    attributes
        .iter()
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(text) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_delivery_and_every_send_is_an_exported_span() {
    let (endpoint, exports) = otlp_receiver();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[traces]\notlp_endpoint = \"{endpoint}\"\nservice_name = \"rollcall-test\"\n{}\n\
         [[sinks]]\nid = \"archive\"\ntype = \"file\"\npath = \"{}\"\n",
        sources_toml(),
        dir.path().join("events.jsonl").display()
    );
    let daemon = Daemon::start(dir.path(), &config);
    let client = client();
    let (status, answer) = daemon
        .send(&client, "vcc", &fixture("vcclive", "user_created.json"))
        .await;
    assert_eq!(status, 202);
    let event_id = answer["event_ids"][0].as_str().unwrap().to_owned();
    let events = dir.path().join("events.jsonl");
    eventually(
        Duration::from_secs(20),
        "the event reaches the file",
        || file_lines(&events).len() == 1,
    )
    .await;
    // SIGTERM flushes the exporter before the process exits.
    assert_eq!(daemon.terminate().code(), Some(0));

    let exports = exports.lock().unwrap();
    assert!(!exports.is_empty(), "nothing was exported");
    let mut spans: Vec<Span> = Vec::new();
    for export in exports.iter() {
        assert_eq!(export.path, "/v1/traces");
        assert_eq!(export.content_type, "application/x-protobuf");
        let request = ExportTraceServiceRequest::decode(export.body.as_slice()).unwrap();
        for resource in request.resource_spans {
            let resource_attributes = resource.resource.unwrap().attributes;
            assert_eq!(
                attribute(&resource_attributes, "service.name"),
                Some("rollcall-test")
            );
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
    }
    let delivery = spans
        .iter()
        .find(|span| span.name == "delivery")
        .unwrap_or_else(|| panic!("no delivery span in {:?}", names(&spans)));
    assert_eq!(attribute(&delivery.attributes, "source"), Some("vcc"));
    assert_eq!(
        attribute(&delivery.attributes, "connector"),
        Some("vcclive")
    );
    let send = spans
        .iter()
        .find(|span| span.name == "send")
        .unwrap_or_else(|| panic!("no send span in {:?}", names(&spans)));
    assert_eq!(attribute(&send.attributes, "sink"), Some("archive"));
    assert_eq!(
        attribute(&send.attributes, "event_id"),
        Some(event_id.as_str())
    );
    assert!(send.end_time_unix_nano >= send.start_time_unix_nano);
    // Spans carry ids and names, never the user's data (the fixture's email).
    for span in &spans {
        for value in string_values(&span.attributes) {
            assert!(!value.contains('@'), "{}: {value}", span.name);
        }
    }
}

fn names(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(|span| span.name.as_str()).collect()
}
