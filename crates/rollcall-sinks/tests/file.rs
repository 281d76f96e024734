//! The file sink against real temporary files.
#![cfg(feature = "file")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use rollcall_core::{ConfigError, Sink, SinkError, SinkOptions};
use serde_json::json;

// Links the crate so its registrations are in the registry.
use rollcall_sinks as _;

/// Builds a file sink through the registry, as the host does.
fn file_sink(options: serde_json::Value) -> Result<Box<dyn Sink>, ConfigError> {
    let registration = rollcall_core::sink_registration("file").expect("file is registered");
    (registration.build)(&SinkOptions::new("test-file", options))
}

fn sink_at(path: &Path) -> Box<dyn Sink> {
    file_sink(json!({ "path": path })).unwrap()
}

fn body(n: usize) -> String {
    format!(r#"{{"id":"evt-{n}","type":"user.created"}}"#)
}

#[tokio::test]
async fn each_event_becomes_exactly_one_line_in_a_file_created_with_its_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/events.jsonl");
    let sink = sink_at(&path);

    for n in 0..3 {
        sink.send(&common::event(&format!("evt-{n}"), body(n)))
            .await
            .unwrap();
    }
    sink.flush().await.unwrap();

    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written, format!("{}\n{}\n{}\n", body(0), body(1), body(2)));
}

#[tokio::test]
async fn lines_are_appended_to_what_the_file_already_holds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    std::fs::write(&path, "earlier\n").unwrap();

    let first = sink_at(&path);
    first.send(&common::event("evt-1", body(1))).await.unwrap();
    drop(first);
    // A restarted rollcall opens the file again and appends too.
    let second = sink_at(&path);
    second.send(&common::event("evt-2", body(2))).await.unwrap();

    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written, format!("earlier\n{}\n{}\n", body(1), body(2)));
}

#[tokio::test]
async fn a_file_ending_in_a_partial_line_gets_a_newline_before_the_next_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    std::fs::write(&path, "{\"id\":\"evt-0\",\"ty").unwrap();

    sink_at(&path)
        .send(&common::event("evt-1", body(1)))
        .await
        .unwrap();

    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written, format!("{{\"id\":\"evt-0\",\"ty\n{}\n", body(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sends_never_interleave() {
    const TASKS: usize = 8;
    const PER_TASK: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let sink: Arc<dyn Sink> = Arc::from(sink_at(&path));
    // Lines far larger than a pipe or page buffer, so a split write would show.
    let line = |task: usize, n: usize| {
        let pad = char::from(b'a' + u8::try_from(task).unwrap()).to_string();
        format!(
            r#"{{"task":{task},"n":{n},"pad":"{}"}}"#,
            pad.repeat(64 * 1024)
        )
    };

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

    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.ends_with('\n'));
    let mut lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines.len(), TASKS * PER_TASK);
    lines.sort_unstable();
    let mut expected: Vec<String> = (0..TASKS)
        .flat_map(|task| (0..PER_TASK).map(move |n| line(task, n)))
        .collect();
    expected.sort_unstable();
    assert!(lines.iter().zip(&expected).all(|(got, want)| got == want));
    // Each task's own events stay in the order it sent them.
    for task in 0..TASKS {
        let order: Vec<usize> = written
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|value| value["task"] == task)
            .map(|value| usize::try_from(value["n"].as_u64().unwrap()).unwrap())
            .collect();
        assert_eq!(order, (0..PER_TASK).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn flush_syncs_what_was_sent_and_is_harmless_before_the_first_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let sink = sink_at(&path);

    sink.flush().await.unwrap();
    assert!(!path.exists(), "flush alone must not create the file");

    sink.send(&common::event("evt-1", body(1))).await.unwrap();
    sink.flush().await.unwrap();
    sink.flush().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", body(1))
    );
}

#[test]
fn building_the_sink_leaves_the_disk_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-yet/events.jsonl");
    sink_at(&path);
    assert!(!dir.path().join("not-yet").exists());
}

#[tokio::test]
async fn a_path_that_cannot_be_created_is_transient_and_recovers_once_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("logs");
    std::fs::write(&blocker, "a file where a directory should be").unwrap();
    let path = blocker.join("events.jsonl");
    let sink = sink_at(&path);

    let error = sink
        .send(&common::event("evt-1", body(1)))
        .await
        .unwrap_err();
    match &error {
        SinkError::Transient { message, .. } => {
            assert!(message.contains("events.jsonl"), "{message}")
        }
        SinkError::Permanent { .. } => panic!("expected transient, got {error:?}"),
    }

    std::fs::remove_file(&blocker).unwrap();
    sink.send(&common::event("evt-1", body(1))).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", body(1))
    );
}

#[test]
fn the_options_are_a_path_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");

    let unknown = file_sink(json!({ "path": path, "rotate": true })).unwrap_err();
    assert_eq!(unknown.key, "rotate");
    assert_eq!(file_sink(json!({})).unwrap_err().key, "path");
    assert_eq!(file_sink(json!({ "path": "" })).unwrap_err().key, "path");
    assert_eq!(
        file_sink(json!({ "path": dir.path() })).unwrap_err().key,
        "path"
    );
    assert!(file_sink(json!({ "path": path })).is_ok());
}

#[cfg(unix)]
#[tokio::test]
async fn the_file_is_owner_only_in_owner_only_directories_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/events.jsonl");
    // The test process's umask is usually 022; the modes must not depend on it.
    let sink = sink_at(&path);
    sink.send(&common::event("evt-1", body(1))).await.unwrap();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("a/b")), 0o700);
    assert_eq!(mode(&dir.path().join("a")), 0o700);
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_planted_at_the_path_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.txt");
    std::fs::write(&target, "precious\n").unwrap();
    let path = dir.path().join("events.jsonl");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let sink = sink_at(&path);
    let error = sink
        .send(&common::event("evt-1", body(1)))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("cannot open"), "{error}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
}
