//! The stdout sink, watched from outside: the test runs a copy of this test binary whose
//! standard output is a pipe, and reads what it printed.
#![cfg(feature = "stdout")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;

use rollcall_core::{ConfigError, Sink, SinkOptions};
use serde_json::json;

// Links the crate so its registrations are in the registry.
use rollcall_sinks as _;

const TASKS: usize = 8;
const PER_TASK: usize = 25;

/// Builds a stdout sink through the registry, as the host does.
fn stdout_sink(options: serde_json::Value) -> Result<Box<dyn Sink>, ConfigError> {
    let registration = rollcall_core::sink_registration("stdout").expect("stdout is registered");
    (registration.build)(&SinkOptions::new("test-stdout", options))
}

/// Twice the size the kernel writes to a pipe atomically, so a split write would show.
fn line(task: usize, n: usize) -> String {
    format!(r#"{{"task":{task},"n":{n},"pad":"{}"}}"#, "x".repeat(8192))
}

/// Run by `concurrent_sends_print_whole_lines` in a child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "prints to the real standard output; run as a child process"]
async fn child_prints_events_from_many_tasks() {
    let sink: Arc<dyn Sink> = Arc::from(stdout_sink(json!({})).unwrap());
    let mut senders = Vec::new();
    for task in 0..TASKS {
        let sink = Arc::clone(&sink);
        senders.push(tokio::spawn(async move {
            for n in 0..PER_TASK {
                let event = common::event(&format!("evt-{task}-{n}"), line(task, n));
                sink.send(&event).await.unwrap();
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    sink.flush().await.unwrap();
}

#[test]
fn concurrent_sends_print_whole_lines() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_prints_events_from_many_tasks",
            "--exact",
            "--ignored",
            "--nocapture",
            "--quiet",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success(), "{:?}", output.status);

    let printed = String::from_utf8(output.stdout).unwrap();
    // The test harness prints its own lines ("running 1 test", "."); events start with `{`.
    let mut lines: Vec<&str> = printed
        .lines()
        .filter(|line| line.starts_with('{'))
        .collect();
    assert_eq!(lines.len(), TASKS * PER_TASK);
    lines.sort_unstable();
    let mut expected: Vec<String> = (0..TASKS)
        .flat_map(|task| (0..PER_TASK).map(move |n| line(task, n)))
        .collect();
    expected.sort_unstable();
    assert!(lines.iter().zip(&expected).all(|(got, want)| got == want));
}

#[test]
fn the_stdout_sink_takes_no_options() {
    assert!(stdout_sink(json!({})).is_ok());
    let error = stdout_sink(json!({ "pretty": true })).unwrap_err();
    assert_eq!(error.key, "pretty");
}
