//! The `rollcall` binary's offline commands, run as a user runs them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn rollcall() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rollcall"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stderr_json(output: &Output) -> Value {
    let text = String::from_utf8_lossy(&output.stderr);
    let line = text
        .lines()
        .find(|line| line.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON on stderr: {text}"));
    serde_json::from_str(line).unwrap()
}

fn stdout_events(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The connectors of the default build: the host's `all-connectors` feature, sorted (so
/// adding a connector needs no change here).
fn default_connectors() -> Vec<String> {
    let manifest = std::fs::read_to_string(repo().join("crates/rollcall/Cargo.toml")).unwrap();
    let line = manifest
        .lines()
        .find_map(|line| line.strip_prefix("all-connectors = ["))
        .unwrap();
    let mut names: Vec<String> = line
        .trim_end_matches(']')
        .split(',')
        .map(|name| name.trim().trim_matches('"').to_owned())
        .filter(|name| !name.is_empty())
        .collect();
    names.sort();
    names
}

#[test]
fn connectors_lists_every_compiled_in_connector_with_its_event_types() {
    let output = rollcall().args(["connectors", "--json"]).output().unwrap();
    assert!(output.status.success());
    let list: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let names: Vec<_> = list.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, default_connectors());
    for connector in &list {
        assert!(!connector["vendor"].as_str().unwrap().is_empty());
        assert!(!connector["event_types"].as_array().unwrap().is_empty());
    }
    let table = rollcall().arg("connectors").output().unwrap();
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.starts_with("NAME"));
    assert!(text.contains("onUserCreate"));
}

#[test]
fn normalize_prints_one_unified_event_per_line() {
    let sample = repo().join("connectors/freshservice/fixtures/onUserCreate.json");
    let output = rollcall()
        .args([
            "normalize",
            "--connector",
            "freshservice",
            "--source",
            "fs-acme",
        ])
        .arg(&sample)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let events = stdout_events(&output);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "user.created");
    assert_eq!(events[0]["source"], "fs-acme");
    assert_eq!(events[0]["connector"], "freshservice");
    assert_eq!(events[0]["user"]["id"], "93");
    assert!(events[0]["received_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn normalize_reads_standard_input() {
    let body = std::fs::read(repo().join("connectors/vcclive/fixtures/user_created.json")).unwrap();
    let mut child = rollcall()
        .args(["normalize", "--connector", "vcclive", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout_events(&output)[0]["user"]["id"], "180");
}

#[test]
fn normalize_exits_1_with_a_coded_error_and_the_path_that_failed() {
    let dir = std::env::temp_dir().join(format!("rollcall-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, br#"{"type": "UserCreate", "id": {"nested": true}}"#).unwrap();
    let output = rollcall()
        .args(["normalize", "--connector", "highlevel"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let error = stderr_json(&output);
    assert_eq!(error["error"]["code"], "payload_invalid");
    assert_eq!(error["error"]["path"], "id");
    assert!(!error["error"]["message"].as_str().unwrap().is_empty());

    std::fs::write(&bad, br#"{"type": "ContactCreate", "id": "1"}"#).unwrap();
    let output = rollcall()
        .args(["normalize", "--connector", "highlevel"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr_json(&output)["error"]["code"], "event_unsupported");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn normalize_names_the_connectors_it_has_when_asked_for_another() {
    let output = rollcall()
        .args(["normalize", "--connector", "salesforce", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let error = stderr_json(&output);
    assert_eq!(error["error"]["code"], "connector_unknown");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("zendesk"));
}

#[test]
fn vcc_live_password_never_reaches_the_output() {
    let body = br#"{"old": null, "new": {"userId": 7, "name": "A B", "password": "pa55-w0rd-xyz", "state": "active"}, "timestamp": "2017-06-06T10:53:43+02:00"}"#;
    let mut child = rollcall()
        .args(["normalize", "--connector", "vcclive"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let all = [output.stdout, output.stderr].concat();
    assert!(!String::from_utf8_lossy(&all).contains("pa55-w0rd-xyz"));
}

#[test]
fn config_check_names_the_file_line_and_key_of_a_problem() {
    let dir = std::env::temp_dir().join(format!("rollcall-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rollcall.toml");
    std::fs::write(
        &file,
        "[[sources]]\nid = \"zd\"\nconnector = \"zendesk\"\nsigning_secret = \"${ROLLCALL_TEST_UNSET_VARIABLE}\"\n",
    )
    .unwrap();
    let output = config_check_with_the_variable_unset(&file);
    assert_eq!(output.status.code(), Some(1));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains(&format!("{}:4: signing_secret:", file.display())),
        "{message}"
    );
    assert!(
        message.contains("ROLLCALL_TEST_UNSET_VARIABLE"),
        "{message}"
    );

    let output = rollcall()
        .args(["config", "check", "--config"])
        .arg(&file)
        .env("ROLLCALL_TEST_UNSET_VARIABLE", "s3cret")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("s3cret"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn config_check_prints_every_problem_of_a_file_one_per_line() {
    let dir = std::env::temp_dir().join(format!("rollcall-config-all-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rollcall.toml");
    std::fs::write(
        &file,
        "[ingest]\nmax_body = 5\n\n[[sources]]\nid = \"zd\"\nconnector = \"zendesk\"\n\
         signing_secret = \"${ROLLCALL_TEST_UNSET_VARIABLE}\"\n\n[[sinks]]\nid = \"out\"\n\
         type = \"stdout\"\ncolour = \"red\"\n",
    )
    .unwrap();
    let output = config_check_with_the_variable_unset(&file);
    assert_eq!(output.status.code(), Some(1));
    let message = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = message.lines().collect();
    let prefix = |line: usize, key: &str| format!("{}:{line}: {key}: ", file.display());
    assert_eq!(lines.len(), 3, "{message}");
    assert!(
        lines[0].starts_with(&prefix(2, "ingest.max_body")),
        "{message}"
    );
    assert!(
        lines[1].starts_with(&prefix(7, "signing_secret")),
        "{message}"
    );
    assert!(
        lines[2].starts_with(&prefix(12, "sinks[0].colour")),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn config_example_and_schema_describe_this_build() {
    let example = rollcall().args(["config", "example"]).output().unwrap();
    assert!(example.status.success());
    let text = String::from_utf8(example.stdout).unwrap();
    for connector in ["freshservice", "zendesk", "highlevel", "vcclive"] {
        assert!(
            text.contains(&format!("connector = \"{connector}\"")),
            "{connector}"
        );
    }
    let schema = rollcall().args(["config", "schema"]).output().unwrap();
    let schema: Value = serde_json::from_slice(&schema.stdout).unwrap();
    let connectors = &schema["properties"]["sources"]["items"]["properties"]["connector"]["enum"];
    assert!(connectors
        .as_array()
        .unwrap()
        .contains(&Value::from("zendesk")));
}

/// `rollcall config check --config FILE`, with `ROLLCALL_TEST_UNSET_VARIABLE` unset.
fn config_check_with_the_variable_unset(file: &std::path::Path) -> std::process::Output {
    rollcall()
        .args(["config", "check", "--config"])
        .arg(file)
        .env_remove("ROLLCALL_TEST_UNSET_VARIABLE")
        .output()
        .unwrap()
}
