//! `cargo xtask new-connector NAME --vendor "Display Name"`: a new connector crate that
//! compiles, registers itself and passes its own tests, wired into the workspace and the host.
//!
//! The generator writes `connectors/NAME/` (crate, payload types, mapping, signature module,
//! one example fixture with its expected outcome, golden, property and signature tests) and
//! `docs/connectors/NAME.md`, then adds NAME to the few lists that name every connector: the
//! workspace members and dependencies, the host's features, dependencies and two `cfg` lines,
//! and the `CONNECTOR_FEATURES` list `cargo xtask ci` builds one by one.
//!
//! Every edit is computed before anything is written, so a name that is invalid or taken
//! leaves the workspace untouched. The templates are in `xtask/templates/connector/`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The longest name accepted: crate names, types and environment variables stay readable.
const MAX_NAME_LEN: usize = 32;

/// Host features that are not connectors.
const RESERVED_NAMES: &[&str] = &["default", "all-connectors"];

/// A validated connector name and the identifiers derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorName {
    /// `acme-hr`: the registry name, the folder, the cargo feature.
    pub name: String,
    /// `rollcall-connector-acme-hr`.
    pub crate_name: String,
    /// `rollcall_connector_acme_hr`: what Rust code `use`s.
    pub crate_ident: String,
    /// `AcmeHr`: the connector's type name.
    pub type_name: String,
    /// `ACME_HR`: the prefix of its environment variables in the example configuration.
    pub env_prefix: String,
}

impl ConnectorName {
    /// Lowercase ASCII letters and digits, words joined by single `-` or `_`, starting with
    /// a letter.
    pub fn parse(name: &str) -> Result<Self> {
        let valid_chars = name.bytes().all(|byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'_'
        });
        let words: Vec<&str> = name.split(['-', '_']).collect();
        if name.is_empty()
            || !valid_chars
            || !name.starts_with(|c: char| c.is_ascii_lowercase())
            || words.iter().any(|word| word.is_empty())
        {
            bail!(
                "invalid connector name {name:?}: use lowercase ASCII letters and digits, \
                 starting with a letter, words joined by single `-` or `_` (e.g. `acme-hr`)"
            );
        }
        if name.len() > MAX_NAME_LEN {
            bail!("invalid connector name {name:?}: at most {MAX_NAME_LEN} characters");
        }
        if RESERVED_NAMES.contains(&name) {
            bail!("invalid connector name {name:?}: it is one of the host's own features");
        }
        let type_name = words
            .iter()
            .map(|word| {
                let mut chars = word.chars();
                chars
                    .next()
                    .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        Ok(Self {
            name: name.to_owned(),
            crate_name: format!("rollcall-connector-{name}"),
            crate_ident: format!("rollcall_connector_{}", name.replace('-', "_")),
            type_name,
            env_prefix: name.replace('-', "_").to_ascii_uppercase(),
        })
    }
}

impl fmt::Display for ConnectorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The vendor's display name: printable, one line, no quotes or backslashes (it is written
/// into Rust and TOML strings as is).
pub fn parse_vendor(vendor: &str) -> Result<String> {
    let vendor = vendor.trim();
    if vendor.is_empty() {
        bail!("--vendor must not be empty");
    }
    if vendor.chars().count() > 80 {
        bail!("--vendor {vendor:?} is longer than 80 characters");
    }
    if let Some(bad) = vendor
        .chars()
        .find(|c| c.is_control() || *c == '"' || *c == '\\')
    {
        bail!("--vendor {vendor:?} contains {bad:?}: use a plain display name");
    }
    Ok(vendor.to_owned())
}

/// Reads `NAME --vendor "Display Name"` (in either order).
pub fn parse_args(args: &[&str]) -> Result<(ConnectorName, String)> {
    let mut name = None;
    let mut vendor = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match *arg {
            "--vendor" => match rest.next() {
                Some(value) => vendor = Some(*value),
                None => bail!("--vendor needs a value: --vendor \"Display Name\""),
            },
            flag if flag.starts_with("--vendor=") => vendor = flag.strip_prefix("--vendor="),
            flag if flag.starts_with('-') => bail!("unknown option {flag}"),
            positional if name.is_none() => name = Some(positional),
            extra => bail!("unexpected argument {extra:?}"),
        }
    }
    let Some(name) = name else {
        bail!("usage: cargo xtask new-connector NAME --vendor \"Display Name\"");
    };
    let Some(vendor) = vendor else {
        bail!("--vendor \"Display Name\" is required (the vendor's name as users know it)");
    };
    Ok((ConnectorName::parse(name)?, parse_vendor(vendor)?))
}

/// What the generator did.
#[derive(Debug, Default)]
pub struct Report {
    pub created: Vec<PathBuf>,
    pub edited: Vec<PathBuf>,
}

/// One file's new content.
struct Write {
    path: PathBuf,
    content: String,
}

/// Generates connector `name` in the workspace at `root`. Nothing is written unless every
/// file can be created and every list edited.
pub fn new_connector(root: &Path, name: &ConnectorName, vendor: &str) -> Result<Report> {
    let folder = root.join("connectors").join(&name.name);
    if folder.exists() {
        bail!(
            "connector {name} already exists: {} is there (pick another name, or remove the folder)",
            folder.display()
        );
    }
    let doc = root.join("docs/connectors").join(format!("{name}.md"));
    if doc.exists() {
        bail!("connector {name} already has a doc page: {}", doc.display());
    }
    refuse_same_crate_ident(root, name)?;

    let mut edits = Vec::new();
    for (relative, edit) in [
        ("Cargo.toml", edit_workspace_manifest as EditFn),
        ("crates/rollcall/Cargo.toml", edit_host_manifest),
        ("crates/rollcall/src/lib.rs", edit_host_lib),
        ("xtask/src/main.rs", edit_xtask_features),
    ] {
        let path = root.join(relative);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let content = edit(&text, name).with_context(|| format!("editing {relative}"))?;
        edits.push(Write { path, content });
    }

    let files = render_files(name, vendor)?;
    let mut report = Report::default();
    for Write { path, content } in files {
        let path = root.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        report.created.push(path);
    }
    for Write { path, content } in edits {
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        report.edited.push(path);
    }
    Ok(report)
}

/// Records the new crate in `Cargo.lock` (so `--locked` builds pass) without touching any
/// other package: `cargo update --workspace --offline`.
pub fn record_in_lockfile(root: &Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["update", "--workspace", "--offline", "--quiet"])
        .current_dir(root)
        .output()
        .context("cannot run cargo update")?;
    if !output.status.success() {
        bail!(
            "cargo update --workspace --offline failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Two names that differ only in `-` and `_` would be one Rust crate name.
fn refuse_same_crate_ident(root: &Path, name: &ConnectorName) -> Result<()> {
    let connectors = root.join("connectors");
    let entries = std::fs::read_dir(&connectors)
        .with_context(|| format!("reading {}", connectors.display()))?;
    for entry in entries {
        let existing = entry?.file_name().to_string_lossy().into_owned();
        if existing.replace('-', "_") == name.name.replace('-', "_") {
            bail!(
                "connector {name} would share its crate name with connectors/{existing}: pick \
                 another name"
            );
        }
    }
    Ok(())
}

type EditFn = fn(&str, &ConnectorName) -> Result<String>;

// ---- The files of a new connector ------------------------------------------------------

macro_rules! templates {
    ($($output:literal => $template:literal),* $(,)?) => {
        &[$(($output, include_str!(concat!("../templates/connector/", $template)))),*]
    };
}

/// (path under the workspace, template). `NAME` in a path is the connector's name.
const TEMPLATES: &[(&str, &str)] = templates![
    "connectors/NAME/Cargo.toml" => "Cargo.toml.tmpl",
    "connectors/NAME/src/lib.rs" => "src/lib.rs.tmpl",
    "connectors/NAME/src/payload.rs" => "src/payload.rs.tmpl",
    "connectors/NAME/src/mapping.rs" => "src/mapping.rs.tmpl",
    "connectors/NAME/src/signature.rs" => "src/signature.rs.tmpl",
    "connectors/NAME/tests/golden.rs" => "tests/golden.rs.tmpl",
    "connectors/NAME/tests/properties.rs" => "tests/properties.rs.tmpl",
    "connectors/NAME/tests/signature.rs" => "tests/signature.rs.tmpl",
    "connectors/NAME/fixtures/example.json" => "fixtures/example.json.tmpl",
    "connectors/NAME/fixtures/example.expected.json" => "fixtures/example.expected.json.tmpl",
    "docs/connectors/NAME.md" => "doc.md.tmpl",
];

const EXAMPLE_CONFIG: &str = include_str!("../templates/connector/example-config.toml.tmpl");

fn render_files(name: &ConnectorName, vendor: &str) -> Result<Vec<Write>> {
    let mut values = vec![
        ("name", name.name.clone()),
        ("crate", name.crate_name.clone()),
        ("ident", name.crate_ident.clone()),
        ("type", name.type_name.clone()),
        ("env", name.env_prefix.clone()),
        ("vendor", vendor.to_owned()),
    ];
    let example_config = render(EXAMPLE_CONFIG, &values).context("example-config.toml.tmpl")?;
    values.push(("example_config", example_config));
    TEMPLATES
        .iter()
        .map(|(output, template)| {
            Ok(Write {
                path: PathBuf::from(output.replace("NAME", &name.name)),
                content: render(template, &values)
                    .with_context(|| format!("template of {output}"))?,
            })
        })
        .collect()
}

/// Replaces each `{{key}}` in `template` with its value, in one pass (values are never
/// scanned for placeholders); braces before a placeholder stay literal (`${{{env}}_KEY}`).
/// An unknown key is an error.
fn render(template: &str, values: &[(&str, String)]) -> Result<String> {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(mut start) = rest.find("{{") {
        // `${{{env}}_SECRET}`: a literal `{` right before a placeholder.
        while rest[start + 2..].starts_with('{') {
            start += 1;
        }
        let Some(length) = rest[start + 2..].find("}}") else {
            bail!("unclosed {{{{ in template");
        };
        let key = &rest[start + 2..start + 2 + length];
        let Some((_, value)) = values.iter().find(|(name, _)| *name == key) else {
            bail!("unknown template key {key:?}");
        };
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &rest[start + 2 + length + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

// ---- Edits of the lists that name every connector --------------------------------------

/// The root `Cargo.toml`: the member `connectors/NAME` and the dependency
/// `rollcall-connector-NAME = { path = "connectors/NAME" }`.
fn edit_workspace_manifest(text: &str, name: &ConnectorName) -> Result<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let member = format!("\"connectors/{name}\"");
    let members = block(&lines, "members = [", "]")
        .context("no `members = [` list in the root Cargo.toml")?;
    if lines[members.clone()]
        .iter()
        .any(|line| line.trim().trim_end_matches(',') == member)
    {
        bail!("connector {name} is already a workspace member");
    }
    let after = last_matching(&lines, members.clone(), |line| {
        line.trim_start().starts_with("\"connectors/")
    })
    .unwrap_or(members.start);
    lines.insert(after + 1, format!("    {member},"));

    let dependencies = section(&lines, "[workspace.dependencies]")
        .context("no [workspace.dependencies] section in the root Cargo.toml")?;
    let key = format!("{} ", name.crate_name);
    if lines[dependencies.clone()]
        .iter()
        .any(|line| line.starts_with(&key))
    {
        bail!("{} is already a workspace dependency", name.crate_name);
    }
    let after = last_matching(&lines, dependencies, |line| {
        line.starts_with("rollcall-connector-")
    })
    .context("no `rollcall-connector-*` entry in [workspace.dependencies] to add after")?;
    lines.insert(
        after + 1,
        format!("{} = {{ path = \"connectors/{name}\" }}", name.crate_name),
    );
    Ok(join_lines(&lines, text))
}

/// `crates/rollcall/Cargo.toml`: the feature `NAME = ["dep:rollcall-connector-NAME"]`, NAME
/// in `all-connectors`, and the optional dependency.
fn edit_host_manifest(text: &str, name: &ConnectorName) -> Result<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let features = section(&lines, "[features]").context("no [features] section")?;
    let feature_key = format!("{name} = ");
    if lines[features.clone()]
        .iter()
        .any(|line| line.starts_with(&feature_key))
    {
        bail!("the host already has a feature named {name}");
    }
    let all = features
        .clone()
        .find(|&index| lines[index].starts_with("all-connectors = ["))
        .context("no single-line `all-connectors = [...]` feature")?;
    let Some(list) = lines[all].trim_end().strip_suffix(']') else {
        bail!("`all-connectors = [...]` must be on one line");
    };
    let quoted = format!("\"{name}\"");
    if list.contains(&quoted) {
        bail!("{name} is already in all-connectors");
    }
    let separator = if list.trim_end().ends_with('[') {
        ""
    } else {
        ", "
    };
    lines[all] = format!("{list}{separator}{quoted}]");
    let after = last_matching(&lines, features, |line| {
        line.contains("= [\"dep:rollcall-connector-")
    })
    .context("no `NAME = [\"dep:rollcall-connector-NAME\"]` feature to add after")?;
    lines.insert(after + 1, format!("{name} = [\"dep:{}\"]", name.crate_name));

    let dependencies = section(&lines, "[dependencies]").context("no [dependencies] section")?;
    let after = last_matching(&lines, dependencies, |line| {
        line.starts_with("rollcall-connector-") && line.contains("optional = true")
    })
    .context("no optional `rollcall-connector-*` dependency to add after")?;
    lines.insert(
        after + 1,
        format!(
            "{} = {{ workspace = true, optional = true }}",
            name.crate_name
        ),
    );
    Ok(join_lines(&lines, text))
}

/// `crates/rollcall/src/lib.rs`: the `cfg`-gated `use` that links the connector, and its
/// line in the `enabled_features()` test helper. Both lists stay sorted (rustfmt sorts the
/// `use`s; the helper must match the registry, which is sorted by name).
fn edit_host_lib(text: &str, name: &ConnectorName) -> Result<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let cfg = format!("#[cfg(feature = \"{name}\")]");
    if lines.iter().any(|line| line.trim() == cfg) {
        bail!("crates/rollcall/src/lib.rs already links connector {name}");
    }

    // `#[cfg(feature = "x")]` directly followed by `use rollcall_connector_x as _;`.
    let uses: Vec<(usize, String)> = (0..lines.len().saturating_sub(1))
        .filter(|&index| lines[index].starts_with("#[cfg(feature = \""))
        .filter_map(|index| {
            let ident = lines[index + 1]
                .strip_prefix("use ")?
                .strip_suffix(" as _;")?;
            ident
                .starts_with("rollcall_connector_")
                .then(|| (index, ident.to_owned()))
        })
        .collect();
    let Some(&(last, _)) = uses.last() else {
        bail!("no `#[cfg(feature = ...)] use rollcall_connector_... as _;` lines to add to");
    };
    let at = uses
        .iter()
        .find(|(_, ident)| ident.as_str() > name.crate_ident.as_str())
        .map_or(last + 2, |(index, _)| *index);
    lines.insert(at, format!("use {} as _;", name.crate_ident));
    lines.insert(at, cfg);

    // `if cfg!(feature = "x") {` / `enabled.push("x");` / `}`.
    let blocks: Vec<(usize, String)> = (0..lines.len())
        .filter_map(|index| {
            let feature = lines[index]
                .trim_start()
                .strip_prefix("if cfg!(feature = \"")?
                .strip_suffix("\") {")?;
            Some((index, feature.to_owned()))
        })
        .collect();
    let Some(&(last, _)) = blocks.last() else {
        bail!("no `if cfg!(feature = ...)` lines in enabled_features() to add to");
    };
    let indent: String = lines[last]
        .chars()
        .take_while(|c| c.is_whitespace())
        .collect();
    let at = blocks
        .iter()
        .find(|(_, feature)| feature.as_str() > name.name.as_str())
        .map_or(last + 3, |(index, _)| *index);
    for line in [
        format!("{indent}}}"),
        format!("{indent}    enabled.push(\"{name}\");"),
        format!("{indent}if cfg!(feature = \"{name}\") {{"),
    ] {
        lines.insert(at, line);
    }
    Ok(join_lines(&lines, text))
}

/// `xtask/src/main.rs`: NAME in `CONNECTOR_FEATURES`, one entry per line.
fn edit_xtask_features(text: &str, name: &ConnectorName) -> Result<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let list = block(&lines, "const CONNECTOR_FEATURES: &[&str] = &[", "];")
        .context("no multi-line `const CONNECTOR_FEATURES: &[&str] = &[` list")?;
    let entry = format!("\"{name}\",");
    if lines[list.clone()].iter().any(|line| line.trim() == entry) {
        bail!("{name} is already in CONNECTOR_FEATURES");
    }
    lines.insert(list.end - 1, format!("    {entry}"));
    Ok(join_lines(&lines, text))
}

/// The lines from the one starting with `opening` through the next line that is exactly
/// `closing` (trimmed).
fn block(lines: &[String], opening: &str, closing: &str) -> Option<std::ops::Range<usize>> {
    let start = lines.iter().position(|line| line.starts_with(opening))?;
    let end = (start + 1..lines.len()).find(|&index| lines[index].trim() == closing)?;
    Some(start..end + 1)
}

/// The lines of a TOML section, header excluded, up to the next header.
fn section(lines: &[String], header: &str) -> Option<std::ops::Range<usize>> {
    let start = lines.iter().position(|line| line.trim() == header)? + 1;
    let end = (start..lines.len())
        .find(|&index| lines[index].starts_with('['))
        .unwrap_or(lines.len());
    Some(start..end)
}

fn last_matching(
    lines: &[String],
    range: std::ops::Range<usize>,
    matches: impl Fn(&str) -> bool,
) -> Option<usize> {
    range.rev().find(|&index| matches(&lines[index]))
}

/// Lines joined back, keeping the original's final newline.
fn join_lines(lines: &[String], original: &str) -> String {
    let mut text = lines.join("\n");
    if original.ends_with('\n') {
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests;
