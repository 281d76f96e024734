//! The embedded defaults: what `rollcall serve` runs without a configuration file.
//!
//! One demo source per compiled-in connector (`<connector>-demo`), a stdout sink, SQLite
//! under `./rollcall-data/`. Each demo source's secrets derive from a random seed kept in
//! `rollcall-data/demo-sources.json` (mode 0600), so they stay the same across restarts and
//! `rollcall sign` can sign for them without a configuration file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::{Config, SinkConfig, SourceConfig};

pub const DATA_DIR: &str = "rollcall-data";
const SEEDS_FILE: &str = "demo-sources.json";

/// The default configuration, with demo sources whose seeds are loaded from (or created in)
/// `data_dir`.
pub fn default_config(data_dir: &Path) -> Result<Config> {
    let seeds = load_or_create_seeds(data_dir)?;
    let mut config = Config {
        ingest: Default::default(),
        admin: Default::default(),
        store: crate::config::StoreConfig::sqlite(data_dir.join("rollcall.db")),
        delivery: Default::default(),
        sources: Vec::new(),
        sinks: vec![SinkConfig {
            id: "stdout".to_owned(),
            kind: "stdout".to_owned(),
            sources: None,
            types: None,
            format: Default::default(),
            delivery: crate::config::SinkDelivery::for_kind("stdout"),
            options: serde_json::json!({}),
        }],
    };
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

/// What a new user needs to send a first request to each demo source.
pub fn describe(config: &Config) -> String {
    let mut text = String::from(
        "rollcall: running on embedded defaults (no --config): demo sources below, events to stdout.\n\
         rollcall: demo secrets (for trying rollcall locally; configure real sources with --config):\n",
    );
    for source in &config.sources {
        let mut secrets = describe_options(&source.options);
        if secrets.is_empty() {
            secrets = "(signed with a demo key: use rollcall sign)".to_owned();
        }
        text.push_str(&format!(
            "  {:<20} POST http://{}/hooks/{}   {secrets}\n",
            source.id, config.ingest.listen, source.id,
        ));
    }
    text.push_str(
        "rollcall: try one: rollcall sign --source zendesk-demo FILE   (prints the curl command)\n",
    );
    text
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
    let mut seeds: BTreeMap<String, String> = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not a demo seed file", path.display()))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
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
        let first = default_config(dir.path()).unwrap();
        let again = default_config(dir.path()).unwrap();
        assert_eq!(first.sources.len(), rollcall_core::registrations().len());
        for (a, b) in first.sources.iter().zip(&again.sources) {
            assert_eq!(a.options, b.options);
        }
        // Every demo source builds: the defaults must start.
        crate::daemon::build_sources(&first).unwrap();
    }

    #[test]
    fn hex_round_trips() {
        let seed = [7u8; 32];
        assert_eq!(hex_decode(&hex_encode(&seed)), Some(seed));
        assert_eq!(hex_decode("zz"), None);
    }
}
