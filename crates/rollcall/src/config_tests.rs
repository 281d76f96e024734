use super::*;

const ISSUE_EXAMPLE: &str = r#"
[ingest]
listen = "127.0.0.1:8080"
max_body_bytes = 1048576

[admin]
listen = "127.0.0.1:9090"
# token = "${ROLLCALL_ADMIN_TOKEN}"   # required when admin listens beyond loopback

[store]
type = "sqlite"
path = "rollcall-data/rollcall.db"

[[sources]]
id = "zendesk-acme"
connector = "zendesk"
signing_secret = "${ZENDESK_SIGNING_SECRET}"

[[sources]]
id = "freshservice-initech"
connector = "freshservice"
signing_secret = "whsec_c2VjcmV0LWZvci1mcmVzaHNlcnZpY2UtdGVzdHM="

[[sources]]
id = "highlevel-agency"
connector = "highlevel"
# ed25519_public_key / rsa_public_key default to HighLevel's published keys

[[sources]]
id = "vcclive-callco"
connector = "vcclive"
secret_key = "${VCC_SECRET_KEY}"
# cipher = "aes-256-ctr"; encryption_key = "..."

[[sinks]]
id = "archive"
type = "file"
path = "rollcall-data/events.jsonl"

[[sinks]]
id = "crm"
type = "http"
url = "http://127.0.0.1:9999/hooks/users"
signing_secret = "whsec_c2lnbmluZy1zZWNyZXQ="
# sources = ["zendesk-acme"]; types = ["user.deleted"]; format = "cloudevents"
"#;

/// The one problem `result` reports.
fn only_error(result: Result<Config, ConfigErrors>) -> ConfigError {
    let errors = result.unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    errors.first().clone()
}

fn env(name: &str) -> Option<String> {
    match name {
        "ZENDESK_SIGNING_SECRET" => Some("zd-secret".into()),
        "VCC_SECRET_KEY" => Some("vcc \"quoted\" key".into()),
        _ => None,
    }
}

#[test]
fn accepts_the_documented_example_as_written() {
    let config = Config::parse(ISSUE_EXAMPLE, env).unwrap();
    assert_eq!(config.sources.len(), 4);
    assert_eq!(config.sinks.len(), 2);
    assert_eq!(config.ingest.max_body_bytes, 1_048_576);
    assert_eq!(
        config.sources[3].options["secret_key"],
        serde_json::json!("vcc \"quoted\" key")
    );
}

#[test]
fn an_unset_variable_names_its_line_and_key() {
    // Both unset variables are reported; the first is the first in the file.
    let errors = Config::parse(ISSUE_EXAMPLE, |_| None).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors}");
    let error = errors.first();
    assert_eq!(error.line, Some(17));
    assert_eq!(error.key.as_deref(), Some("signing_secret"));
    assert!(error.message.contains("ZENDESK_SIGNING_SECRET"));
}

#[test]
fn variables_in_comments_are_ignored() {
    let text = "# ${NOT_SET}\n[ingest]\nlisten = \"127.0.0.1:1\" # ${ALSO_NOT_SET}\n";
    assert!(Config::parse(text, |_| None).is_ok());
}

#[test]
fn an_unknown_key_names_its_line() {
    let text = "[ingest]\nlisten = \"127.0.0.1:1\"\nmax_body = 5\n";
    let error = only_error(Config::parse(text, env));
    assert_eq!(error.line, Some(3));
    assert!(error.message.contains("max_body"), "{error}");
}

#[test]
fn an_unknown_key_in_the_store_table_names_its_own_line() {
    let text = "[ingest]\nlisten = \"127.0.0.1:1\"\n\n[store]\ntype = \"sqlite\"\npath = \"x.db\"\nretention = 5\n";
    let error = only_error(Config::parse(text, env));
    assert_eq!(error.line, Some(7), "{error}");
    assert_eq!(error.key.as_deref(), Some("store.retention"));
}

#[test]
fn an_unknown_connector_option_names_the_source_and_line() {
    let text = "[[sources]]\nid = \"a\"\nconnector = \"zendesk\"\nsigning_secret = \"s\"\nsigning_secert = \"typo\"\n";
    let error = only_error(Config::parse(text, env));
    assert_eq!(
        error.key.as_deref(),
        Some("sources[0].signing_secert"),
        "{error}"
    );
    assert_eq!(error.line, Some(5));
    assert!(error.message.contains("signing_secert"), "{error}");
}

#[test]
fn duplicate_ids_are_rejected() {
    let text = "[[sources]]\nid = \"a\"\nconnector = \"highlevel\"\n\n[[sources]]\nid = \"a\"\nconnector = \"highlevel\"\n";
    let error = only_error(Config::parse(text, env));
    assert_eq!(error.line, Some(6));
    assert_eq!(error.key.as_deref(), Some("sources[1].id"));
    assert!(error.message.contains("duplicate"));
}

#[test]
fn an_unknown_connector_lists_the_known_ones() {
    let text = "[[sources]]\nid = \"a\"\nconnector = \"salesforce\"\n";
    let error = only_error(Config::parse(text, env));
    assert_eq!(error.line, Some(3));
    assert!(error.message.contains("zendesk"), "{error}");
}

#[test]
fn a_sink_filter_must_name_a_configured_source() {
    let text = "[[sinks]]\nid = \"out\"\ntype = \"stdout\"\nsources = [\"ghost\"]\n";
    let error = only_error(Config::parse(text, env));
    assert_eq!(error.line, Some(4));
    assert!(error.message.contains("ghost"));
}

#[test]
fn admin_beyond_loopback_needs_a_token() {
    let text = "[admin]\nlisten = \"0.0.0.0:9090\"\n";
    let error = only_error(Config::parse(text, env));
    assert_eq!(error.key.as_deref(), Some("admin.token"));
    assert_eq!(error.line, Some(2));
    let text = "[admin]\nlisten = \"0.0.0.0:9090\"\ntoken = \"t\"\n";
    assert!(Config::parse(text, env).is_ok());
}

#[test]
fn an_empty_or_blank_admin_token_is_an_error_wherever_admin_listens() {
    for listen in ["127.0.0.1:9090", "0.0.0.0:9090"] {
        for token in ["\"\"", "\"   \"", "\"${EMPTY}\""] {
            let text = format!("[admin]\nlisten = \"{listen}\"\ntoken = {token}\n");
            let error = only_error(Config::parse(&text, |name| {
                (name == "EMPTY").then(String::new)
            }));
            assert_eq!(error.key.as_deref(), Some("admin.token"), "{text}");
            assert_eq!(error.line, Some(3), "{text}");
            assert!(error.message.contains("empty"), "{}", error.message);
        }
    }
}

#[test]
fn errors_print_file_line_and_key() {
    let error = ConfigError {
        file: Some("rollcall.toml".into()),
        line: Some(7),
        key: Some("sources[0].id".into()),
        message: "duplicate source id \"a\"".into(),
    };
    assert_eq!(
        error.to_string(),
        "rollcall.toml:7: sources[0].id: duplicate source id \"a\""
    );
}

#[test]
fn sink_filters_select_by_source_and_type() {
    let text = "[[sources]]\nid = \"zd\"\nconnector = \"highlevel\"\n\n[[sinks]]\nid = \"out\"\ntype = \"stdout\"\nsources = [\"zd\"]\ntypes = [\"user.deleted\"]\nformat = \"cloudevents\"\n";
    let config = Config::parse(text, env).unwrap();
    let sink = &config.sinks[0];
    assert!(sink.accepts("zd", "user.deleted"));
    assert!(!sink.accepts("zd", "user.created"));
    assert!(!sink.accepts("other", "user.deleted"));
    assert_eq!(sink.format, Format::Cloudevents);
}

#[test]
fn the_generated_example_is_a_valid_configuration() {
    let text = example();
    // Connectors' and sinks' examples reference secrets through variables; with every
    // variable set (to a value every secret format accepts) the example must validate.
    let config = Config::parse(&text, |_| Some("whsec_c2VjcmV0LXZhbHVl".to_owned()));
    assert!(config.is_ok(), "{}\n{text}", config.unwrap_err());
}

#[test]
fn retention_defaults_to_a_week_of_journal_and_thirty_days_of_dedup_keys() {
    let hours = |h: u64| Some(Duration::from_secs(h * 3600));
    let expected = Retention {
        journal: hours(168),
        dedup: hours(720),
        open_quarantine: hours(720),
        open_quarantine_max_bytes: Some(1024 * 1024 * 1024),
    };
    // No [store] at all, and a [store] without the keys.
    assert_eq!(Config::parse("", env).unwrap().store.retention(), expected);
    let config = Config::parse(ISSUE_EXAMPLE, env).unwrap();
    assert_eq!(config.store.retention(), expected);
    assert_eq!(
        config.store.path(),
        Some(Path::new("rollcall-data/rollcall.db"))
    );
}

#[test]
fn retention_keys_are_read_and_zero_disables_pruning() {
    let text = "[store]\ntype = \"sqlite\"\nretention_hours = 24\ndedup_retention_hours = 72\n";
    let retention = Config::parse(text, env).unwrap().store.retention();
    assert_eq!(retention.journal, Some(Duration::from_secs(24 * 3600)));
    assert_eq!(retention.dedup, Some(Duration::from_secs(72 * 3600)));
    assert!(!retention.is_disabled());

    let text = "[store]\ntype = \"sqlite\"\nretention_hours = 0\ndedup_retention_hours = 0\n\
                quarantine_retention_hours = 0\nquarantine_max_mib = 0\n";
    assert!(Config::parse(text, env)
        .unwrap()
        .store
        .retention()
        .is_disabled());

    // The journal kept forever; dedup keys still expire after their own window.
    let text = "[store]\ntype = \"sqlite\"\nretention_hours = 0\n";
    let retention = Config::parse(text, env).unwrap().store.retention();
    assert_eq!(retention.journal, None);
    assert_eq!(retention.dedup, Some(Duration::from_secs(720 * 3600)));

    // Dedup keys kept forever with any journal window.
    let text = "[store]\ntype = \"sqlite\"\nretention_hours = 48\ndedup_retention_hours = 0\n";
    let retention = Config::parse(text, env).unwrap().store.retention();
    assert_eq!(retention.dedup, None);

    // Open quarantine: its own window and cap.
    let text =
        "[store]\ntype = \"sqlite\"\nquarantine_retention_hours = 2\nquarantine_max_mib = 3\n";
    let retention = Config::parse(text, env).unwrap().store.retention();
    assert_eq!(
        retention.open_quarantine,
        Some(Duration::from_secs(2 * 3600))
    );
    assert_eq!(retention.open_quarantine_max_bytes, Some(3 * 1024 * 1024));
}

#[test]
fn dedup_keys_must_outlive_the_journal() {
    let text = "[store]\ntype = \"sqlite\"\nretention_hours = 720\ndedup_retention_hours = 168\n";
    let error = only_error(Config::parse(text, env));
    assert_eq!(error.key.as_deref(), Some("store.dedup_retention_hours"));
    assert_eq!(error.line, Some(4));
    assert!(error.message.contains("720"), "{error}");
    // Equal windows are fine.
    let text = "[store]\ntype = \"sqlite\"\nretention_hours = 720\ndedup_retention_hours = 720\n";
    assert!(Config::parse(text, env).is_ok());
}

#[test]
fn retention_keys_are_checked_like_every_other_key() {
    let text = "[store]\ntype = \"sqlite\"\nretention_days = 7\n";
    let error = only_error(Config::parse(text, env));
    assert!(error.message.contains("retention_days"), "{error}");
    let text = "[store]\ntype = \"sqlite\"\nretention_hours = -1\n";
    assert!(Config::parse(text, env).is_err());
    let text = "[store]\ntype = \"sqlite\"\nretention_hours = \"168\"\n";
    assert!(Config::parse(text, env).is_err());
}

#[test]
fn the_example_and_the_schema_carry_the_retention_keys() {
    let example = example();
    assert!(example.contains("retention_hours = 168"), "{example}");
    assert!(example.contains("dedup_retention_hours = 720"), "{example}");
    let schema = schema();
    let store = &default_alternative(&schema["properties"]["store"])["properties"];
    assert_eq!(store["retention_hours"]["default"], 168);
    assert_eq!(store["dedup_retention_hours"]["default"], 720);
    assert_eq!(store["retention_hours"]["minimum"], 0);
}

#[test]
fn a_zero_batch_size_is_refused() {
    let text = "[delivery]\nbatch_size = 0\n";
    let error = only_error(Config::parse(text, env));
    assert_eq!(error.key.as_deref(), Some("delivery.batch_size"));
    assert_eq!(error.line, Some(2));
}

#[test]
fn a_variable_cannot_break_out_of_any_string_form() {
    // Each value tries to close its string and add a key of its own.
    let hostile = "x' \n[admin]\ntoken = 'stolen\" \"\"\" ''' \\";
    for form in ["\"${V}\"", "'${V}'", "\"\"\"${V}\"\"\"", "'''${V}'''"] {
        let text = format!("[admin]\nlisten = \"127.0.0.1:9090\"\ntoken = {form}\n");
        let config = Config::parse(&text, |_| Some(hostile.to_owned())).unwrap();
        assert_eq!(
            config
                .admin
                .token
                .as_ref()
                .map(|token| token.expose().to_owned()),
            Some(hostile.to_owned()),
            "{form}"
        );
    }
}

#[test]
fn sink_delivery_keys_are_read_with_defaults_by_sink_type() {
    let text = "[[sinks]]\nid = \"crm\"\ntype = \"http\"\nurl = \"http://127.0.0.1:9/\"\n\
                concurrency = 4\nretry_horizon_hours = 1.5\nstart = \"now\"\n\
                rate_limit_per_second = 20\nbreaker_failures = 3\n\
                [[sinks]]\nid = \"out\"\ntype = \"stdout\"\n\
                [[sinks]]\nid = \"hook\"\ntype = \"http\"\nurl = \"http://127.0.0.1:9/\"\n";
    let config = Config::parse(text, env).unwrap();
    let crm = &config.sinks[0].delivery;
    assert_eq!(crm.concurrency, 4);
    assert_eq!(crm.retry_horizon, Duration::from_secs(5400));
    assert_eq!(crm.start, crate::config::StartAt::Now);
    assert_eq!(crm.rate_limit_per_second, Some(20.0));
    assert_eq!(crm.breaker_failures, 3);
    // The sink's own options do not see the delivery keys.
    assert!(config.sinks[0].options.get("concurrency").is_none());
    // Ordered streams keep journal order by default; others send 16 at a time.
    assert_eq!(config.sinks[1].delivery.concurrency, 1);
    let hook = &config.sinks[2].delivery;
    assert_eq!(hook.concurrency, 16);
    assert_eq!(hook.retry_horizon, Duration::from_secs(72 * 3600));
    assert_eq!(hook.start, crate::config::StartAt::Beginning);
    assert_eq!(hook.rate_limit_per_second, None);
}

#[test]
fn out_of_range_sink_delivery_keys_are_refused_with_their_name() {
    for (line, key) in [
        ("concurrency = 0", "concurrency"),
        ("retry_horizon_hours = 0", "retry_horizon_hours"),
        ("start = \"later\"", "start"),
        ("rate_limit_per_second = -1", "rate_limit_per_second"),
        ("breaker_failures = 0", "breaker_failures"),
    ] {
        let text = format!("[[sinks]]\nid = \"out\"\ntype = \"stdout\"\n{line}\n");
        let error = only_error(Config::parse(&text, env));
        assert_eq!(
            error.key.as_deref(),
            Some(format!("sinks[0].{key}").as_str()),
            "{text}: {error}"
        );
    }
}

const ZENDESK_WITH_API: &str = r#"
[[sources]]
id = "zd"
connector = "zendesk"
signing_secret = "s"
api_token = "t"
email = "agent@acme.example"
subdomain = "acme"
"#;

#[test]
fn sync_interval_takes_units_or_seconds_and_is_kept_from_the_connector_options() {
    for (written, seconds) in [
        ("\"90s\"", 90),
        ("\"15m\"", 900),
        ("\"6h\"", 21_600),
        ("\"1d\"", 86_400),
        ("3600", 3_600),
    ] {
        let text = format!("{ZENDESK_WITH_API}sync_interval = {written}\n");
        let config = Config::parse(&text, |_| None).unwrap();
        assert_eq!(
            config.sources[0].sync_interval,
            Some(Duration::from_secs(seconds)),
            "{written}"
        );
        assert!(config.sources[0].options.get("sync_interval").is_none());
    }
}

#[test]
fn sync_interval_rejects_bad_values_and_sources_that_cannot_list_users() {
    for bad in ["\"10s\"", "\"6 weeks\"", "\"h\"", "-5", "true"] {
        let text = format!("{ZENDESK_WITH_API}sync_interval = {bad}\n");
        let error = only_error(Config::parse(&text, |_| None));
        assert_eq!(
            error.key.as_deref(),
            Some("sources[0].sync_interval"),
            "{bad}: {error}"
        );
    }
    let without_api = "[[sources]]\nid = \"zd\"\nconnector = \"zendesk\"\nsigning_secret = \"s\"\nsync_interval = \"1h\"\n";
    let error = only_error(Config::parse(without_api, |_| None));
    assert_eq!(
        error.key.as_deref(),
        Some("sources[0].sync_interval"),
        "{error}"
    );
    assert!(error.message.contains("cannot list users"), "{error}");
}

#[test]
fn a_store_table_with_only_a_path_is_the_sqlite_store() {
    let config = Config::parse("[store]\npath = \"elsewhere/rollcall.db\"\n", env).unwrap();
    assert_eq!(
        config.store.path(),
        Some(Path::new("elsewhere/rollcall.db"))
    );
}

fn overrides(pairs: &[(&str, &str)]) -> Overrides {
    Overrides::from_variables(
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string())),
    )
}

#[test]
fn environment_overrides_set_any_key_of_the_tables_typed_by_the_schema() {
    let config = Config::parse_with(
        "[ingest]\nlisten = \"127.0.0.1:8080\"\nmax_body_bytes = 10\n",
        env,
        &overrides(&[
            ("ROLLCALL_INGEST_LISTEN", "0.0.0.0:18080"),
            ("ROLLCALL_INGEST_MAX_BODY_BYTES", "2048"),
            ("ROLLCALL_ADMIN_TOKEN", "12345"),
            ("ROLLCALL_ADMIN_ALLOWED_HOSTS", "[\"rollcall.internal\"]"),
            ("ROLLCALL_STORE_PATH", "/var/lib/rollcall/rollcall.db"),
            ("ROLLCALL_LOG_FORMAT", "json"),
            // Not a table of the file: not an override (a variable for ${...}, say).
            ("ROLLCALL_PG_PASSWORD", "x"),
            ("ROLLCALL_LOG", "debug"),
            ("OTHER_INGEST_LISTEN", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(config.ingest.listen.to_string(), "0.0.0.0:18080");
    assert_eq!(config.ingest.max_body_bytes, 2048);
    // A token of digits stays a string.
    assert_eq!(config.admin.token.unwrap().expose(), "12345");
    assert_eq!(config.admin.allowed_hosts, ["rollcall.internal"]);
    assert_eq!(
        config.store.path(),
        Some(Path::new("/var/lib/rollcall/rollcall.db"))
    );
    assert_eq!(config.log.format, LogFormat::Json);

    // A flag set after the environment wins.
    let mut both = overrides(&[("ROLLCALL_INGEST_LISTEN", "0.0.0.0:18080")]);
    both.set("--listen", "ingest", "listen", "127.0.0.1:0");
    let config = Config::parse_with("", env, &both).unwrap();
    assert_eq!(config.ingest.listen.to_string(), "127.0.0.1:0");
}

#[test]
fn a_wrong_override_names_its_variable() {
    let error = Config::parse_with("", env, &overrides(&[("ROLLCALL_INGEST_PORT", "1")]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "ingest.port: unknown key (set by ROLLCALL_INGEST_PORT)"
    );
    let error = Config::parse_with(
        "",
        env,
        &overrides(&[("ROLLCALL_DELIVERY_MAX_ATTEMPTS", "many")]),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        "delivery.max_attempts: \"many\" is not an integer (set by ROLLCALL_DELIVERY_MAX_ATTEMPTS)"
    );
}

#[test]
fn the_admin_table_loads_without_the_variables_of_other_tables() {
    let text = "[admin]\nlisten = \"127.0.0.1:9191\"\n\n[[sources]]\nid = \"zd\"\n\
                connector = \"zendesk\"\nsigning_secret = \"${ROLLCALL_TEST_UNSET_SECRET}\"\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("operator.toml");
    std::fs::write(&path, text).unwrap();
    let admin = AdminConfig::load(&path, &Overrides::default()).unwrap();
    assert_eq!(admin.listen.port(), 9191);
    assert!(Config::load_with(&path, &Overrides::default()).is_err());
}

#[cfg(not(feature = "otlp"))]
#[test]
fn a_traces_endpoint_needs_a_build_with_the_otlp_feature() {
    let error = only_error(Config::parse(
        "[traces]\notlp_endpoint = \"http://127.0.0.1:4318/v1/traces\"\n",
        env,
    ));
    assert_eq!(error.key.as_deref(), Some("traces.otlp_endpoint"));
    assert_eq!(error.line, Some(2));
    assert!(error.message.contains("--features otlp"), "{error}");
}

#[test]
fn admin_tokens_carry_scopes_and_a_read_token_alone_opens_a_remote_listener() {
    let config = Config::parse(
        "[admin]\nlisten = \"0.0.0.0:9090\"\ntokens = [{ token = \"r\", scope = \"read\" }, { token = \"o\", scope = \"operate\" }]\n",
        env,
    )
    .unwrap();
    let scopes: Vec<_> = config
        .admin
        .scoped_tokens()
        .into_iter()
        .map(|(token, scope)| (token.expose().to_owned(), scope))
        .collect();
    assert_eq!(
        scopes,
        [
            ("r".to_owned(), Scope::Read),
            ("o".to_owned(), Scope::Operate)
        ]
    );
    assert_eq!(config.admin.client_token().unwrap().expose(), "o");

    let error = only_error(Config::parse(
        "[admin]\ntokens = [{ token = \" \", scope = \"read\" }]\n",
        env,
    ));
    assert!(error.message.contains("must not be empty"), "{error}");
    let error = only_error(Config::parse(
        "[admin]\ntokens = [{ token = \"x\", scope = \"admin\" }]\n",
        env,
    ));
    assert!(error.message.contains("unknown variant `admin`"), "{error}");
}

#[test]
fn a_postgres_store_reads_its_keys_and_never_prints_the_url() {
    let text = "[store]\ntype = \"postgres\"\nurl = \"postgres://rollcall:${PG_PASSWORD}@db:5432/rollcall\"\n\
                pool_size = 8\nretention_hours = 24\n\n[delivery]\nlease_seconds = 10\n";
    let env = |name: &str| (name == "PG_PASSWORD").then(|| "hunter2".to_owned());
    let config = Config::parse(text, env).unwrap();
    let StoreConfig::Postgres {
        url,
        schema,
        pool_size,
        ..
    } = &config.store
    else {
        panic!("a postgres store: {:?}", config.store);
    };
    assert_eq!(url.expose(), "postgres://rollcall:hunter2@db:5432/rollcall");
    assert_eq!((schema.as_str(), *pool_size), ("rollcall", 8));
    assert_eq!(config.store.path(), None);
    assert_eq!(
        config.store.retention().journal,
        Some(Duration::from_secs(24 * 3600))
    );
    assert_eq!(config.delivery.lease_ttl(), Duration::from_secs(10));
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn a_postgres_schema_must_be_a_plain_name_and_the_pool_hold_two() {
    let error = only_error(Config::parse(
        "[store]\ntype = \"postgres\"\nurl = \"postgres://db/x\"\nschema = \"a; DROP\"\n",
        env,
    ));
    assert_eq!(error.key.as_deref(), Some("store.schema"));
    let error = only_error(Config::parse(
        "[store]\ntype = \"postgres\"\nurl = \"postgres://db/x\"\npool_size = 1\n",
        env,
    ));
    assert_eq!(error.key.as_deref(), Some("store.pool_size"));
    let error = only_error(Config::parse("[delivery]\nlease_seconds = 1\n", env));
    assert_eq!(error.key.as_deref(), Some("delivery.lease_seconds"));
}

/// Three mistakes in three tables: an unknown key, a source without its secret, a misspelt
/// sink option.
const THREE_MISTAKES: &str = r#"[ingest]
listen = "127.0.0.1:8080"
max_body = 5

[[sources]]
id = "zd"
connector = "zendesk"

[[sinks]]
id = "crm"
type = "http"
url = "http://127.0.0.1:9/"
signing_secert = "x"
"#;

/// Each error's line and key, in the order reported.
fn lines_and_keys(errors: &ConfigErrors) -> Vec<(Option<usize>, &str)> {
    errors
        .iter()
        .map(|error| (error.line, error.key.as_deref().unwrap_or("")))
        .collect()
}

#[test]
fn every_mistake_of_a_file_is_reported_at_once_each_at_its_line() {
    let errors = Config::parse(THREE_MISTAKES, env).unwrap_err();
    let found = lines_and_keys(&errors);
    assert_eq!(
        found,
        [
            (Some(3), "ingest.max_body"),
            // A missing key is shown at its table's header.
            (Some(5), "sources[0].signing_secret"),
            (Some(13), "sinks[0].signing_secert"),
        ],
        "{errors}"
    );
    // One problem per line, each `file:line: key: problem`.
    let printed = errors.in_file(Path::new("rollcall.toml")).to_string();
    let lines: Vec<_> = printed.lines().collect();
    assert_eq!(lines.len(), 3, "{printed}");
    assert!(
        lines[0].starts_with("rollcall.toml:3: ingest.max_body: unknown field `max_body`"),
        "{printed}"
    );
    assert_eq!(
        lines[1],
        "rollcall.toml:5: sources[0].signing_secret: is required"
    );
    assert!(
        lines[2].starts_with("rollcall.toml:13: sinks[0].signing_secert: unknown field"),
        "{printed}"
    );
}

#[test]
fn every_unknown_option_of_a_source_is_reported_at_its_own_line() {
    let text = "[[sources]]\nid = \"a\"\nconnector = \"highlevel\"\n\n[[sources]]\nid = \"b\"\n\
                connector = \"zendesk\"\nsigning_secret = \"s\"\napi_tokn = \"t\"\n\
                # signing_secert = \"in a comment\"\nsigning_secert = \"typo\"\n";
    let errors = Config::parse(text, env).unwrap_err();
    let found = lines_and_keys(&errors);
    assert_eq!(
        found,
        [
            (Some(9), "sources[1].api_tokn"),
            (Some(11), "sources[1].signing_secert"),
        ],
        "{errors}"
    );
}

#[test]
fn mistakes_in_one_table_and_unset_variables_are_all_reported() {
    let text = "[ingest]\nmax_body_bytes = \"big\"\nrequest_timeout_seconds = 10\n\
                body_timeout_seconds = 20\nlisten = \"${ROLLCALL_TEST_UNSET}\"\n\n\
                [admin]\ntoken = \"${ROLLCALL_TEST_ALSO_UNSET}\"\n\n[nonsense]\nx = 1\n";
    let errors = Config::parse(text, |_| None).unwrap_err();
    let found = lines_and_keys(&errors);
    // The unreplaced `${...}` of `listen` is reported as the variable it is, not also as a
    // bad address; the table with a mistake is not checked further (its timeouts).
    assert_eq!(
        found,
        [
            (Some(2), "ingest.max_body_bytes"),
            (Some(5), "listen"),
            (Some(8), "token"),
            (Some(10), "nonsense"),
        ],
        "{errors}"
    );
}

#[test]
fn the_example_shows_every_key_that_has_a_default_and_parses_to_the_defaults() {
    let text = example();
    let schema = schema();
    for table in TABLES {
        let alternative = default_alternative(&schema["properties"][*table]);
        let properties = alternative["properties"].as_object().unwrap();
        assert!(!properties.is_empty(), "{table}");
        for (key, property) in properties {
            if property
                .get("default")
                .is_some_and(|value| !value.is_null())
            {
                assert!(
                    text.lines()
                        .any(|line| line.starts_with(&format!("{key} = "))),
                    "[{table}] {key} is not in the example:\n{text}"
                );
            }
        }
    }
    let config = Config::parse(&text, |_| Some("whsec_c2VjcmV0LXZhbHVl".to_owned())).unwrap();
    let defaults = Config::default();
    assert_eq!(config.ingest, defaults.ingest);
    assert_eq!(config.admin, defaults.admin);
    assert_eq!(config.store, defaults.store);
    assert_eq!(config.delivery, defaults.delivery);
    assert_eq!(config.log, defaults.log);
    assert_eq!(config.traces, defaults.traces);
}

#[test]
fn the_schema_defaults_are_the_defaults_serde_applies() {
    let schema = schema();
    let ingest = &schema["properties"]["ingest"]["properties"];
    let defaults = IngestConfig::default();
    assert_eq!(ingest["listen"]["default"], defaults.listen.to_string());
    assert_eq!(ingest["max_body_bytes"]["default"], defaults.max_body_bytes);
    assert_eq!(ingest["max_body_bytes"]["minimum"], 1);
    let delivery = &schema["properties"]["delivery"]["properties"];
    assert_eq!(
        delivery["lease_seconds"]["default"],
        DeliveryConfig::default().lease_seconds
    );
    assert_eq!(delivery["lease_seconds"]["minimum"], 2);
    assert_eq!(
        schema["properties"]["ingest"]["additionalProperties"],
        false
    );
    assert_eq!(
        schema["properties"]["log"]["properties"]["format"]["enum"],
        serde_json::json!(["text", "json"])
    );
}

/// The alternative of `[[sources]]` or `[[sinks]]` for `name`.
fn alternative<'a>(
    schema: &'a serde_json::Value,
    list: &str,
    key: &str,
    name: &str,
) -> &'a serde_json::Value {
    schema["properties"][list]["items"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|alternative| alternative["properties"][key]["const"] == name)
        .unwrap_or_else(|| panic!("no {list} alternative for {name}"))
}

#[test]
fn the_schema_types_each_connectors_and_each_sinks_own_options() {
    let schema = schema();
    for registration in rollcall_core::registrations() {
        let options = (registration.options_schema.expect(registration.name))();
        let alternative = alternative(&schema, "sources", "connector", registration.name);
        let names = options["properties"].as_object().unwrap();
        assert!(!names.is_empty(), "{}", registration.name);
        for name in names.keys() {
            assert!(
                alternative["properties"].get(name).is_some(),
                "{}: {name}",
                registration.name
            );
        }
        assert_eq!(alternative["additionalProperties"], false);
    }
    let zendesk = alternative(&schema, "sources", "connector", "zendesk");
    for name in [
        "id",
        "connector",
        "sync_interval",
        "signing_secret",
        "api_token",
        "subdomain",
    ] {
        assert!(zendesk["properties"].get(name).is_some(), "{name}");
    }
    let vcclive = alternative(&schema, "sources", "connector", "vcclive");
    assert!(vcclive["properties"]["encryption_key"].is_object());
    assert!(vcclive["properties"]["cipher"]["enum"]
        .as_array()
        .unwrap()
        .contains(&"aes-256-ctr".into()));
    for registration in rollcall_core::sink_registrations() {
        let alternative = alternative(&schema, "sinks", "type", registration.kind);
        assert!(
            registration.options_schema.is_some(),
            "{}",
            registration.kind
        );
        assert_eq!(alternative["additionalProperties"], false);
        assert!(alternative["properties"]["retry_horizon_hours"].is_object());
    }
    let http = alternative(&schema, "sinks", "type", "http");
    assert!(http["properties"]["url"].is_object());
    assert_eq!(http["properties"]["concurrency"]["default"], 16);
    assert_eq!(
        alternative(&schema, "sinks", "type", "file")["properties"]["concurrency"]["default"],
        1
    );
}

#[test]
fn the_schema_refuses_an_unknown_option_of_a_source_or_sink_and_accepts_the_right_ones() {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let source = |options: serde_json::Value| {
        let mut table = serde_json::json!({"id": "zd", "connector": "zendesk"});
        table
            .as_object_mut()
            .unwrap()
            .extend(options.as_object().unwrap().clone());
        serde_json::json!({ "sources": [table] })
    };
    assert!(validator.is_valid(&source(serde_json::json!({"signing_secret": "s"}))));
    assert!(validator.is_valid(&source(
        serde_json::json!({"signing_secret": ["new", "old"], "sync_interval": "6h"})
    )));
    assert!(!validator.is_valid(&source(serde_json::json!({"signing_secert": "s"}))));
    assert!(!validator.is_valid(&source(serde_json::json!({"api_timeout_ms": "soon"}))));
    // Another connector's option is not this one's.
    assert!(!validator.is_valid(&source(serde_json::json!({"encryption_key": "k"}))));
    let sink = |table: serde_json::Value| serde_json::json!({ "sinks": [table] });
    assert!(validator.is_valid(&sink(serde_json::json!({"id": "out", "type": "http", "url": "http://127.0.0.1:9/", "concurrency": 4}))));
    assert!(!validator.is_valid(&sink(
        serde_json::json!({"id": "out", "type": "http", "uri": "http://127.0.0.1:9/"})
    )));
    assert!(!validator.is_valid(&sink(
        serde_json::json!({"id": "out", "type": "stdout", "path": "x"})
    )));
    // [store] without `type` is SQLite; a PostgreSQL store needs its url.
    assert!(validator.is_valid(&serde_json::json!({"store": {"path": "x.db"}})));
    assert!(!validator.is_valid(&serde_json::json!({"store": {"type": "postgres"}})));
    assert!(!validator
        .is_valid(&serde_json::json!({"store": {"path": "x.db", "url": "postgres://db/x"}})));
}

#[test]
fn environment_overrides_reach_the_keys_of_each_kind_of_store() {
    let config = Config::parse_with(
        "[store]\ntype = \"postgres\"\nurl = \"postgres://db/x\"\n",
        env,
        &overrides(&[
            ("ROLLCALL_STORE_POOL_SIZE", "8"),
            ("ROLLCALL_STORE_SCHEMA", "tenant_a"),
        ]),
    )
    .unwrap();
    let StoreConfig::Postgres {
        pool_size, schema, ..
    } = &config.store
    else {
        panic!("{:?}", config.store);
    };
    assert_eq!((*pool_size, schema.as_str()), (8, "tenant_a"));
    let error = only_error(Config::parse_with(
        "",
        env,
        &overrides(&[("ROLLCALL_STORE_POOL_SIZE", "eight")]),
    ));
    assert_eq!(
        error.to_string(),
        "store.pool_size: \"eight\" is not an integer (set by ROLLCALL_STORE_POOL_SIZE)"
    );
}
