//! The embedded defaults: what `rollcall serve` runs without a configuration file.
//!
//! One demo source per compiled-in connector (`<connector>-demo`), a stdout sink, SQLite
//! under `./rollcall-data/`. Each demo source's secrets derive from a random seed kept in
//! `rollcall-data/demo-sources.json` (mode 0600), so they stay the same across restarts and
//! `rollcall sign` can sign for them without a configuration file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::{Config, Overrides, SinkConfig, SourceConfig};

pub const DATA_DIR: &str = "rollcall-data";
const SEEDS_FILE: &str = "demo-sources.json";

/// Whether the demo seeds may be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seeds {
    /// `rollcall serve`: create them on first start, reuse them after.
    CreateIfMissing,
    /// `rollcall sign`: only the ones a daemon created; signing with new secrets would only
    /// produce requests the running daemon rejects.
    Existing,
}

/// The default configuration (with `overrides` applied), with demo sources whose seeds are
/// loaded from (or, with [`Seeds::CreateIfMissing`], created in) `data_dir`.
pub fn default_config(data_dir: &Path, overrides: &Overrides, seeds: Seeds) -> Result<Config> {
    let seeds = match seeds {
        Seeds::CreateIfMissing => load_or_create_seeds(data_dir)?,
        Seeds::Existing => load_existing_seeds(data_dir)?,
    };
    // The embedded defaults are an empty file: every default comes from the configuration's
    // own definitions, and the overrides apply exactly as over a file.
    let store_path = toml::Value::String(data_dir.join("rollcall.db").display().to_string());
    let mut config = Config::parse_with(
        &format!("[store]\npath = {store_path}\n"),
        |_| None,
        overrides,
    )
    .map_err(|error| anyhow::anyhow!("{error}"))?;
    config.sinks.push(SinkConfig {
        id: "stdout".to_owned(),
        kind: "stdout".to_owned(),
        sources: None,
        types: None,
        format: Default::default(),
        delivery: crate::config::SinkDelivery::for_kind("stdout"),
        options: serde_json::json!({}),
    });
    for registration in rollcall_core::registrations() {
        let Some(seed) = seeds.get(registration.name) else {
            continue;
        };
        config.sources.push(SourceConfig {
            id: format!("{}-demo", registration.name),
            connector: registration.name.to_owned(),
            sync_interval: None,
            options: (registration.demo_options)(seed),
        });
    }
    Ok(config)
}

/// The seeds a daemon on embedded defaults created in `data_dir`; an error saying where
/// they were looked for when there are none.
fn load_existing_seeds(data_dir: &Path) -> Result<BTreeMap<String, [u8; 32]>> {
    let path = data_dir.join(SEEDS_FILE);
    if !path.exists() {
        anyhow::bail!(
            "no demo secrets at {}: `rollcall serve` without --config creates them in \
             ./{DATA_DIR}/ of the directory it runs in. Run `rollcall sign` in that directory \
             (or pass --data-dir), start `rollcall serve` first, or pass --config for \
             configured sources. rollcall sign never creates secrets: a request signed with \
             new ones would be rejected by the running daemon (401 signature_invalid).",
            path.display()
        );
    }
    read_seeds(&path)
}

/// What a new user needs to send a first request to each demo source, line by line.
pub fn describe(config: &Config) -> Vec<String> {
    let mut lines = vec![
        "running on embedded defaults (no --config): demo sources below, events to stdout."
            .to_owned(),
        "demo secrets (for trying rollcall locally; configure real sources with --config):"
            .to_owned(),
    ];
    let address = crate::cli::connect_address(config.ingest.listen);
    for source in &config.sources {
        let mut secrets = describe_options(&source.options);
        if secrets.is_empty() {
            secrets = "(signed with a demo key: use rollcall sign)".to_owned();
        }
        lines.push(format!(
            "  {:<20} POST http://{address}/hooks/{}   {secrets}",
            source.id, source.id,
        ));
    }
    lines.push(
        "try one: rollcall sign --source zendesk-demo FILE   (prints the curl command)".to_owned(),
    );
    lines
}

fn describe_options(options: &serde_json::Value) -> String {
    let Some(table) = options.as_object() else {
        return String::new();
    };
    table
        .iter()
        // Keys (public, or the demo-only private one) are long and not typed by hand:
        // `rollcall sign` uses them.
        .filter(|(key, _)| !key.ends_with("public_key") && *key != "signing_key")
        .map(|(key, value)| match value {
            serde_json::Value::String(text) => format!("{key}={text}"),
            other => format!("{key}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn load_or_create_seeds(data_dir: &Path) -> Result<BTreeMap<String, [u8; 32]>> {
    let path: PathBuf = data_dir.join(SEEDS_FILE);
    let mut seeds = read_seed_text(&path)?;
    let mut changed = false;
    for registration in rollcall_core::registrations() {
        seeds
            .entry(registration.name.to_owned())
            .or_insert_with(|| {
                changed = true;
                hex_encode(&rand::random::<[u8; 32]>())
            });
    }
    if changed {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        write_private(&path, &serde_json::to_string_pretty(&seeds)?)?;
    }
    decode_seeds(&path, seeds)
}

fn read_seeds(path: &Path) -> Result<BTreeMap<String, [u8; 32]>> {
    decode_seeds(path, read_seed_text(path)?)
}

fn read_seed_text(path: &Path) -> Result<BTreeMap<String, String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not a demo seed file", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

fn decode_seeds(
    path: &Path,
    seeds: BTreeMap<String, String>,
) -> Result<BTreeMap<String, [u8; 32]>> {
    let mut decoded = BTreeMap::new();
    for (name, text) in seeds {
        let bytes = hex_decode(&text)
            .with_context(|| format!("{}: seed for {name} is not 64 hex digits", path.display()))?;
        decoded.insert(name, bytes);
    }
    Ok(decoded)
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (index, chunk) in text.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(chunk).ok()?;
        out[index] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_sources_are_valid_and_stable_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let first =
            default_config(dir.path(), &Overrides::default(), Seeds::CreateIfMissing).unwrap();
        let again = default_config(dir.path(), &Overrides::default(), Seeds::Existing).unwrap();
        assert_eq!(first.sources.len(), rollcall_core::registrations().len());
        for (a, b) in first.sources.iter().zip(&again.sources) {
            assert_eq!(a.options, b.options);
        }
        // Every demo source builds: the defaults must start.
        crate::daemon::build_sources(&first, &crate::metrics::Metrics::default()).unwrap();
    }

    #[test]
    fn signing_without_seeds_creates_nothing_and_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join(DATA_DIR);
        let error = default_config(&data, &Overrides::default(), Seeds::Existing)
            .unwrap_err()
            .to_string();
        assert!(error.contains("demo-sources.json"), "{error}");
        assert!(error.contains("never creates secrets"), "{error}");
        assert!(!data.exists());
    }

    #[test]
    fn the_embedded_defaults_take_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let overrides = Overrides::from_variables([(
            "ROLLCALL_INGEST_LISTEN".to_owned(),
            "127.0.0.1:18080".to_owned(),
        )]);
        let config = default_config(dir.path(), &overrides, Seeds::CreateIfMissing).unwrap();
        assert_eq!(config.ingest.listen.port(), 18080);
        assert_eq!(config.admin.listen.port(), 9090);
        assert_eq!(
            config.store.path(),
            Some(dir.path().join("rollcall.db").as_path())
        );
        assert_eq!(config.sources.len(), rollcall_core::registrations().len());
    }

    #[test]
    fn hex_round_trips() {
        let seed = [7u8; 32];
        assert_eq!(hex_decode(&hex_encode(&seed)), Some(seed));
        assert_eq!(hex_decode("zz"), None);
    }
}
