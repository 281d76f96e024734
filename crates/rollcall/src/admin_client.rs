//! The operator commands that talk to a running daemon's admin API.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::config::{AdminConfig, Overrides};
use crate::daemon::VERSION_HEADER;

/// Where the admin API is and how to authenticate.
#[derive(Debug, Clone)]
pub struct AdminTarget {
    pub base: Option<String>,
    pub config: Option<std::path::PathBuf>,
}

impl From<crate::cli::AdminArgs> for AdminTarget {
    fn from(args: crate::cli::AdminArgs) -> Self {
        Self {
            base: args.admin,
            config: args.config,
        }
    }
}

struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl AdminClient {
    fn new(target: AdminTarget) -> Result<Self> {
        let overrides = Overrides::from_env();
        // Only the [admin] table: operator commands need no source secret.
        let admin = match target.config.as_deref() {
            Some(path) => AdminConfig::load(path, &overrides)?,
            None => AdminConfig::from_overrides(&overrides)?,
        };
        let base = match target.base {
            Some(base) => base,
            None => format!("http://{}", crate::cli::connect_address(admin.listen)),
        };
        let token = admin.client_token().map(|token| token.expose().to_owned());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the admin API at {}", self.base))?;
        if !response.headers().contains_key(VERSION_HEADER) {
            bail!(
                "{} answered {} without a {VERSION_HEADER} header: it is not a rollcall admin \
                 API (pass --admin URL or --config FILE)",
                self.base,
                response.status()
            );
        }
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if status != StatusCode::OK {
            let code = value["error"]["code"].as_str().unwrap_or("unknown");
            let message = value["error"]["message"].as_str().unwrap_or("");
            bail!("admin API answered {status}: {code}: {message}");
        }
        Ok(value)
    }
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

pub async fn events_tail(target: AdminTarget, mut after: i64, follow: bool) -> Result<ExitCode> {
    let client = AdminClient::new(target)?;
    loop {
        let page = client
            .call(
                Method::GET,
                &format!("/v1/events?after={after}&limit=500"),
                None,
            )
            .await?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        for item in &events {
            // The sequence number with each event, so `--after` can resume where this ended.
            println!("{}", json!({"seq": item["seq"], "event": item["event"]}));
        }
        after = page["next_after"].as_i64().unwrap_or(after);
        if events.is_empty() {
            if !follow {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

pub async fn dead_letters_list(
    target: AdminTarget,
    sink: Option<String>,
    state: Option<String>,
) -> Result<ExitCode> {
    let client = AdminClient::new(target)?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(sink) = &sink {
        query.append_pair("sink", sink);
    }
    if let Some(state) = &state {
        query.append_pair("state", state);
    }
    let value = client
        .call(
            Method::GET,
            &format!("/v1/dead-letters?{}", query.finish()),
            None,
        )
        .await?;
    print_json(&value);
    Ok(ExitCode::SUCCESS)
}

/// `request`: `sink`, `ids`, `all`, `dry_run`, `force` as `/v1/dead-letters/replay` takes them.
pub async fn dead_letters_replay(target: AdminTarget, request: Value) -> Result<ExitCode> {
    let client = AdminClient::new(target)?;
    let value = client
        .call(Method::POST, "/v1/dead-letters/replay", Some(request))
        .await?;
    print_json(&value);
    Ok(ExitCode::SUCCESS)
}

pub async fn sinks_list(target: AdminTarget) -> Result<ExitCode> {
    let client = AdminClient::new(target)?;
    print_json(&client.call(Method::GET, "/v1/sinks", None).await?);
    Ok(ExitCode::SUCCESS)
}

pub async fn sink_pause(target: AdminTarget, sink: String, paused: bool) -> Result<ExitCode> {
    let client = AdminClient::new(target)?;
    let action = if paused { "pause" } else { "resume" };
    let path = format!("/v1/sinks/{}/{action}", path_segment(&sink));
    print_json(&client.call(Method::POST, &path, None).await?);
    Ok(ExitCode::SUCCESS)
}

pub async fn quarantine_list(target: AdminTarget, state: Option<String>) -> Result<ExitCode> {
    let client = AdminClient::new(target)?;
    let path = match state {
        Some(state) => format!(
            "/v1/quarantine?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("state", &state)
                .finish()
        ),
        None => "/v1/quarantine".to_owned(),
    };
    print_json(&client.call(Method::GET, &path, None).await?);
    Ok(ExitCode::SUCCESS)
}

pub async fn quarantine_show(target: AdminTarget, id: i64) -> Result<ExitCode> {
    let client = AdminClient::new(target)?;
    print_json(
        &client
            .call(Method::GET, &format!("/v1/quarantine/{id}"), None)
            .await?,
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn quarantine_replay(target: AdminTarget, id: i64) -> Result<ExitCode> {
    let client = AdminClient::new(target)?;
    print_json(
        &client
            .call(Method::POST, &format!("/v1/quarantine/{id}/replay"), None)
            .await?,
    );
    Ok(ExitCode::SUCCESS)
}

/// `request`: `sink`, `all`, `since`, `dry_run` as `/v1/replay` takes them.
pub async fn replay(target: AdminTarget, request: Value) -> Result<ExitCode> {
    let client = AdminClient::new(target)?;
    print_json(
        &client
            .call(Method::POST, "/v1/replay", Some(request))
            .await?,
    );
    Ok(ExitCode::SUCCESS)
}

/// `rollcall sync --admin`: the daemon runs the sync and answers its report (a backfill may
/// take long: no overall timeout). Exits 1 when the listing stopped short.
pub async fn sync(target: AdminTarget, source: String) -> Result<ExitCode> {
    let mut client = AdminClient::new(target)?;
    client.http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .build()?;
    let report = client
        .call(Method::POST, &format!("/v1/sources/{source}/sync"), None)
        .await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(if report["complete"] == Value::Bool(true) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The filters and page of `rollcall users list`.
#[derive(Debug, Clone, Default)]
pub struct UsersFilter {
    pub source: Option<String>,
    pub status: Option<String>,
    pub user_name: Option<String>,
    pub include_deleted: bool,
    pub offset: u32,
    pub limit: u32,
}

pub async fn users_list(target: AdminTarget, filter: UsersFilter) -> Result<ExitCode> {
    let client = AdminClient::new(target)?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("source", &filter.source),
        ("status", &filter.status),
        ("user_name", &filter.user_name),
    ] {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    if filter.include_deleted {
        query.append_pair("include_deleted", "true");
    }
    query.append_pair("offset", &filter.offset.to_string());
    query.append_pair("limit", &filter.limit.to_string());
    let value = client
        .call(Method::GET, &format!("/v1/users?{}", query.finish()), None)
        .await?;
    print_json(&value);
    Ok(ExitCode::SUCCESS)
}

pub async fn users_get(target: AdminTarget, source: String, id: String) -> Result<ExitCode> {
    let client = AdminClient::new(target)?;
    let path = format!("/v1/users/{}/{}", path_segment(&source), path_segment(&id));
    print_json(&client.call(Method::GET, &path, None).await?);
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes one URL path segment (a user id may hold `/`, spaces, `?`...).
fn path_segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
