//! The generator: names, templates, the list edits, and a generated connector compiled in a
//! copy of the workspace.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use super::*;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn name(text: &str) -> ConnectorName {
    ConnectorName::parse(text).unwrap()
}

fn error_of<T: std::fmt::Debug>(result: Result<T>) -> String {
    format!("{:#}", result.unwrap_err())
}

// ---- Names and arguments ---------------------------------------------------------------

#[test]
fn names_are_lowercase_words_joined_by_single_dashes_or_underscores() {
    for valid in ["okta", "acme-hr", "acme_hr", "hr2", "a-1-b"] {
        assert!(ConnectorName::parse(valid).is_ok(), "{valid}");
    }
    let too_long = "a".repeat(MAX_NAME_LEN + 1);
    for invalid in [
        "",
        "Okta",
        "2fa",
        "-okta",
        "okta-",
        "acme--hr",
        "acme_-hr",
        "acme hr",
        "acme.hr",
        "ökta",
        too_long.as_str(),
    ] {
        let error = error_of(ConnectorName::parse(invalid));
        assert!(
            error.contains("invalid connector name"),
            "{invalid:?}: {error}"
        );
    }
}

#[test]
fn the_host_feature_names_are_not_connector_names() {
    for reserved in ["default", "all-connectors"] {
        assert!(error_of(ConnectorName::parse(reserved)).contains("host's own features"));
    }
}

#[test]
fn the_crate_ident_type_and_environment_names_derive_from_the_name() {
    let derived = name("acme-hr_2x");
    assert_eq!(derived.crate_name, "rollcall-connector-acme-hr_2x");
    assert_eq!(derived.crate_ident, "rollcall_connector_acme_hr_2x");
    assert_eq!(derived.type_name, "AcmeHr2x");
    assert_eq!(derived.env_prefix, "ACME_HR_2X");
}

#[test]
fn the_vendor_is_a_plain_one_line_display_name() {
    assert_eq!(parse_vendor("  Acme HR  ").unwrap(), "Acme HR");
    assert!(parse_vendor("Okta, Inc. (Workforce Identity)").is_ok());
    for invalid in ["", "  ", "Acme \"HR\"", "Acme\\HR", "Acme\nHR"] {
        assert!(parse_vendor(invalid).is_err(), "{invalid:?}");
    }
}

#[test]
fn arguments_take_the_name_and_the_vendor_in_either_order() {
    let expected = (name("acme-hr"), "Acme HR".to_owned());
    assert_eq!(
        parse_args(&["acme-hr", "--vendor", "Acme HR"]).unwrap(),
        expected
    );
    assert_eq!(
        parse_args(&["--vendor", "Acme HR", "acme-hr"]).unwrap(),
        expected
    );
    assert_eq!(
        parse_args(&["acme-hr", "--vendor=Acme HR"]).unwrap(),
        expected
    );
    assert!(error_of(parse_args(&["acme-hr"])).contains("--vendor"));
    assert!(error_of(parse_args(&["--vendor", "Acme"])).contains("usage"));
    assert!(error_of(parse_args(&["acme-hr", "--vendor"])).contains("needs a value"));
    assert!(error_of(parse_args(&["a", "b", "--vendor", "V"])).contains("unexpected"));
    assert!(error_of(parse_args(&["a", "--force", "--vendor", "V"])).contains("unknown option"));
}

// ---- Templates -------------------------------------------------------------------------

#[test]
fn rendering_fills_each_placeholder_once_and_rejects_unknown_ones() {
    let values = [("name", "a{{name}}b".to_owned())];
    assert_eq!(
        render("x {{name}} y", &values).unwrap(),
        "x a{{name}}b y",
        "values are not scanned again"
    );
    assert_eq!(render("${{{name}}}", &values).unwrap(), "${a{{name}}b}");
    assert!(error_of(render("{{nope}}", &values)).contains("unknown template key"));
    assert!(error_of(render("{{name", &values)).contains("unclosed"));
}

#[test]
fn every_template_renders_and_names_the_connector() {
    let files = render_files(&name("acme-hr"), "Acme HR").unwrap();
    assert_eq!(files.len(), TEMPLATES.len());
    for file in &files {
        assert!(!file.content.contains("{{"), "{}", file.path.display());
        assert!(
            file.path.starts_with("connectors/acme-hr")
                || file.path == Path::new("docs/connectors/acme-hr.md"),
            "{}",
            file.path.display()
        );
    }
    let lib = files
        .iter()
        .find(|file| file.path.ends_with("src/lib.rs"))
        .unwrap();
    assert!(lib.content.contains("pub const NAME: &str = \"acme-hr\";"));
    assert!(lib.content.contains("pub struct AcmeHr {"));
    assert!(lib
        .content
        .contains("signing_secret = \"${ACME_HR_SIGNING_SECRET}\""));
    assert!(!lib.content.contains("todo!") && !lib.content.contains("unimplemented!"));
}

/// `rollcall_core::model::USER_FIELDS`, read from its source: xtask depends on nothing of
/// the workspace, and the list must not be copied here.
fn unified_fields() -> Vec<String> {
    let model = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/rollcall-core/src/model.rs"),
    )
    .unwrap();
    let start = model.find("pub const USER_FIELDS").unwrap();
    let body = &model[start..];
    let list = &body[body.find("= &[").unwrap()..body.find("];").unwrap()];
    let fields: Vec<String> = list
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(fields.len() > 10, "cannot read USER_FIELDS: {fields:?}");
    fields
}

#[test]
fn the_doc_page_has_a_row_for_every_unified_field() {
    let files = render_files(&name("acme-hr"), "Acme HR").unwrap();
    let doc = files
        .iter()
        .find(|file| file.path.ends_with("acme-hr.md"))
        .unwrap();
    for field in unified_fields()
        .iter()
        .map(String::as_str)
        .chain(["remote_data"])
    {
        assert!(doc.content.contains(&format!("\n| `{field}` |")), "{field}");
    }
}

// ---- Edits, on a small copy of the files the generator edits ---------------------------

/// A directory holding the files the generator edits, copied from this workspace, and the
/// existing connector folders (empty). Removed on drop.
struct MiniWorkspace(PathBuf);

impl MiniWorkspace {
    fn new(label: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "rollcall-xtask-{label}-{}-{nanos}",
            std::process::id()
        ));
        let real = workspace_root();
        for file in [
            "Cargo.toml",
            "crates/rollcall/Cargo.toml",
            "crates/rollcall/src/lib.rs",
            "xtask/src/main.rs",
        ] {
            let target = dir.join(file);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(real.join(file), target).unwrap();
        }
        for entry in std::fs::read_dir(real.join("connectors")).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                std::fs::create_dir_all(dir.join("connectors").join(entry.file_name())).unwrap();
            }
        }
        Self(dir)
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.0.join(file)).unwrap()
    }

    fn snapshot(&self) -> Vec<String> {
        [
            "Cargo.toml",
            "crates/rollcall/Cargo.toml",
            "crates/rollcall/src/lib.rs",
            "xtask/src/main.rs",
        ]
        .iter()
        .map(|file| self.read(file))
        .collect()
    }
}

impl Drop for MiniWorkspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_new_connector_is_added_to_every_list_that_names_the_connectors() {
    let workspace = MiniWorkspace::new("lists");
    let report = new_connector(&workspace.0, &name("acme-hr"), "Acme HR").unwrap();
    assert_eq!(report.created.len(), TEMPLATES.len());
    assert_eq!(report.edited.len(), 4);
    assert!(workspace.0.join("connectors/acme-hr/src/lib.rs").is_file());
    assert!(workspace.0.join("docs/connectors/acme-hr.md").is_file());

    let root = workspace.read("Cargo.toml");
    assert!(root.contains("\n    \"connectors/acme-hr\",\n"));
    assert!(root.contains("\nrollcall-connector-acme-hr = { path = \"connectors/acme-hr\" }\n"));

    let host = workspace.read("crates/rollcall/Cargo.toml");
    assert!(host.contains("\nacme-hr = [\"dep:rollcall-connector-acme-hr\"]\n"));
    assert!(host.contains("\nrollcall-connector-acme-hr = { workspace = true, optional = true }\n"));
    let all = host
        .lines()
        .find(|line| line.starts_with("all-connectors = ["))
        .unwrap();
    assert!(all.ends_with(", \"acme-hr\"]"), "{all}");

    let main = workspace.read("xtask/src/main.rs");
    assert!(
        main.contains("    \"acme-hr\",\n];"),
        "appended to CONNECTOR_FEATURES"
    );
}

#[test]
fn the_host_links_the_new_connector_in_sorted_order() {
    let workspace = MiniWorkspace::new("sorted");
    new_connector(&workspace.0, &name("acme-hr"), "Acme HR").unwrap();
    let lib = workspace.read("crates/rollcall/src/lib.rs");
    assert!(lib.contains("#[cfg(feature = \"acme-hr\")]\nuse rollcall_connector_acme_hr as _;\n"));
    assert!(lib.contains(
        "        if cfg!(feature = \"acme-hr\") {\n            enabled.push(\"acme-hr\");\n        }\n"
    ));
    let linked: Vec<&str> = lib
        .lines()
        .filter_map(|line| line.strip_prefix("use rollcall_connector_"))
        .collect();
    let mut sorted = linked.clone();
    sorted.sort_unstable();
    assert_eq!(linked, sorted);
    assert_eq!(
        linked.first(),
        Some(&"acme_hr as _;"),
        "acme-hr sorts first"
    );
    let enabled: Vec<&str> = lib
        .lines()
        .filter_map(|line| line.trim().strip_prefix("enabled.push(\""))
        .collect();
    let mut sorted = enabled.clone();
    sorted.sort_unstable();
    assert_eq!(enabled, sorted);
}

#[test]
fn an_existing_connector_name_is_refused_and_nothing_is_written() {
    let workspace = MiniWorkspace::new("existing");
    let before = workspace.snapshot();
    let error = error_of(new_connector(&workspace.0, &name("zendesk"), "Zendesk"));
    assert!(
        error.contains("connector zendesk already exists"),
        "{error}"
    );
    assert_eq!(workspace.snapshot(), before);
}

#[test]
fn a_name_already_in_the_lists_is_refused_even_without_its_folder() {
    let workspace = MiniWorkspace::new("listed");
    std::fs::remove_dir(workspace.0.join("connectors/vcclive")).unwrap();
    let before = workspace.snapshot();
    let error = error_of(new_connector(&workspace.0, &name("vcclive"), "VCC Live"));
    assert!(error.contains("already"), "{error}");
    assert_eq!(workspace.snapshot(), before);
    assert!(!workspace.0.join("connectors/vcclive").exists());
}

#[test]
fn a_name_that_differs_only_in_dashes_and_underscores_is_refused() {
    let workspace = MiniWorkspace::new("ident");
    std::fs::create_dir_all(workspace.0.join("connectors/acme_hr")).unwrap();
    let error = error_of(new_connector(&workspace.0, &name("acme-hr"), "Acme HR"));
    assert!(error.contains("share its crate name"), "{error}");
    assert!(!workspace.0.join("connectors/acme-hr").exists());
}

#[test]
fn running_the_generator_twice_refuses_the_second_time() {
    let workspace = MiniWorkspace::new("twice");
    new_connector(&workspace.0, &name("acme-hr"), "Acme HR").unwrap();
    let after_first = workspace.snapshot();
    let error = error_of(new_connector(&workspace.0, &name("acme-hr"), "Acme HR"));
    assert!(error.contains("already exists"), "{error}");
    assert_eq!(workspace.snapshot(), after_first);
}

/// rustfmt lays a line out differently when it gets longer, so the templates are checked
/// with the shortest and the longest names.
#[test]
fn generated_code_is_formatted_as_cargo_fmt_wants_whatever_the_name_length() {
    let longest = format!("long-{}", "x".repeat(MAX_NAME_LEN - 5));
    for connector in ["a", "mid-probe", longest.as_str()] {
        let workspace = MiniWorkspace::new("fmt");
        let vendor = "A Vendor With A Long Display Name, Inc.";
        new_connector(&workspace.0, &name(connector), vendor).unwrap();
        let crate_dir = workspace.0.join("connectors").join(connector);
        let tests = ["golden", "properties", "signature"]
            .map(|test| crate_dir.join("tests").join(format!("{test}.rs")));
        let output = Command::new("rustfmt")
            .args(["--check", "--edition", "2021"])
            .arg(crate_dir.join("src/lib.rs"))
            .args(tests)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{connector}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

// ---- A generated connector compiles -----------------------------------------------------

/// The real target directory: this test binary is `<target>/debug/deps/xtask-<hash>`.
fn real_target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Copies `from` into `to`, skipping build output and dependencies, keeping modification
/// times so cargo sees the copied crates as unchanged from one run to the next.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if matches!(name.to_str(), Some("target" | "node_modules" | ".git")) {
            continue;
        }
        let (source, destination) = (entry.path(), to.join(&name));
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&source, &destination);
        } else {
            copy_file(&source, &destination);
        }
    }
}

/// Copies one file, keeping its modification time.
fn copy_file(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
    let modified = std::fs::metadata(from).unwrap().modified().unwrap();
    std::fs::File::options()
        .write(true)
        .open(to)
        .unwrap()
        .set_modified(modified)
        .unwrap();
}

/// Serializes runs that share `target/scaffold-check/` (two `cargo test`s at once): a
/// directory created atomically, removed on drop, taken over when older than 30 minutes.
struct RunLock(PathBuf);

impl RunLock {
    fn acquire(path: PathBuf) -> Self {
        let started = SystemTime::now();
        loop {
            match std::fs::create_dir(&path) {
                Ok(()) => return Self(path),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(&path)
                        .and_then(|metadata| metadata.modified())
                        .ok()
                        .and_then(|modified| modified.elapsed().ok());
                    if age.is_some_and(|age| age > Duration::from_secs(30 * 60)) {
                        let _ = std::fs::remove_dir(&path);
                    }
                    assert!(
                        started.elapsed().unwrap_or_default() < Duration::from_secs(30 * 60),
                        "{} is held by another run",
                        path.display()
                    );
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(error) => panic!("cannot create {}: {error}", path.display()),
            }
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn cargo(dir: &Path, target_dir: &Path, args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The generated crate compiles (library and tests) and is recorded in `Cargo.lock`: checked
/// in a copy of the workspace with its own target directory under the real one, so repeated
/// runs only check the new crate again.
#[test]
fn a_generated_connector_compiles_in_a_copy_of_the_workspace() {
    let base = real_target_dir().join("scaffold-check");
    std::fs::create_dir_all(&base).unwrap();
    let _lock = RunLock::acquire(base.join("run.lock"));
    let copy = base.join("workspace");
    if copy.exists() {
        std::fs::remove_dir_all(&copy).unwrap();
    }
    let root = workspace_root();
    for file in ["Cargo.toml", "Cargo.lock"] {
        copy_file(&root.join(file), &copy.join(file));
    }
    // Every workspace member must be there for cargo to load the workspace (the baseline
    // crate only, not the fastify baseline's node_modules).
    for dir in [
        "crates",
        "connectors",
        "xtask",
        "tests",
        ".cargo",
        "benches/baselines/axum-sqlite",
    ] {
        copy_tree(&root.join(dir), &copy.join(dir));
    }

    let probe = name("scaffold-probe");
    new_connector(&copy, &probe, "Scaffold Probe Inc.").unwrap();
    record_in_lockfile(&copy).unwrap();
    let lock = std::fs::read_to_string(copy.join("Cargo.lock")).unwrap();
    assert!(lock.contains("name = \"rollcall-connector-scaffold-probe\""));

    let target_dir = base.join("target");
    cargo(
        &copy,
        &target_dir,
        &[
            "check",
            "-p",
            &probe.crate_name,
            "--all-targets",
            "--offline",
            "--locked",
            "--quiet",
        ],
    );
}
