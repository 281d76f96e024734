//! `file`: JSON lines appended to a file.
//!
//! * The file (and its parent directories) is created on the first event, not when the
//!   sink is built: `rollcall config check` builds sinks and must not touch the disk.
//! * Each event is one line written with one `write_all` while a mutex is held, so
//!   concurrent sends never interleave. A write that fails half-way is cut back off the
//!   file, so the retry starts on a clean line.
//! * [`Sink::flush`] calls `sync_data`: the host flushes before it advances its cursor, so
//!   a line is on disk before rollcall forgets the event.
//! * A file that ends in a partial line when it is opened (a torn write before a power
//!   loss, or a file someone else wrote) gets a newline first, so every line rollcall
//!   writes stays whole and parseable.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rollcall_core::{ConfigError, OutboundEvent, Sink, SinkError, SinkOptions, SinkRegistration};
use serde::Deserialize;

/// The `type` of a `[[sinks]]` table.
pub const KIND: &str = "file";

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct FileOptions {
    /// Where the JSON lines go; relative paths are relative to the working directory.
    /// Optional only so that its absence is reported under its own key.
    #[serde(default)]
    path: Option<PathBuf>,
}

/// Appends each event as a JSON line to a file.
#[derive(Debug, Clone)]
pub struct FileSink {
    sink_id: String,
    lines: Arc<LineFile>,
}

/// The path and, once the first line is written, the open handle.
#[derive(Debug)]
struct LineFile {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl FileSink {
    /// Reads `{path}`. Nothing is created until the first event.
    pub fn from_options(options: &SinkOptions) -> Result<Self, ConfigError> {
        let FileOptions { path } = options.parse()?;
        let path = path.ok_or_else(|| {
            ConfigError::new("path", "required: the file to append JSON lines to")
        })?;
        if path.as_os_str().is_empty() {
            return Err(ConfigError::new("path", "must not be empty"));
        }
        if path.file_name().is_none() {
            return Err(ConfigError::new(
                "path",
                "must name a file, not a directory",
            ));
        }
        if path.is_dir() {
            return Err(ConfigError::new(
                "path",
                format!("{} is a directory; name a file in it", path.display()),
            ));
        }
        Ok(Self {
            sink_id: options.sink_id.clone(),
            lines: Arc::new(LineFile {
                path,
                file: Mutex::new(None),
            }),
        })
    }

    /// The file the lines go to.
    pub fn path(&self) -> &Path {
        &self.lines.path
    }
}

#[async_trait::async_trait]
impl Sink for FileSink {
    async fn send(&self, event: &OutboundEvent) -> Result<(), SinkError> {
        let line = crate::json_line(event);
        let lines = Arc::clone(&self.lines);
        let result = crate::run_blocking("file writer", move || lines.append(&line)).await;
        if let Err(error) = &result {
            tracing::debug!(sink = %self.sink_id, event_id = %event.event_id, %error, "file sink send failed");
        }
        result
    }

    async fn flush(&self) -> Result<(), SinkError> {
        let lines = Arc::clone(&self.lines);
        crate::run_blocking("file writer", move || lines.sync()).await
    }
}

impl LineFile {
    /// Writes one whole line, opening the file first if needed.
    fn append(&self, line: &[u8]) -> Result<(), String> {
        let mut guard = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let file = match &mut *guard {
            Some(file) => file,
            closed => closed.insert(self.open().map_err(|error| self.failed("open", &error))?),
        };
        let length_before = file
            .metadata()
            .map_err(|error| self.failed("inspect", &error))?
            .len();
        if let Err(error) = file.write_all(line) {
            let message = self.failed("append to", &error);
            // Cut the partial line back off. If even that fails, drop the handle: the
            // next open ends the fragment with a newline before writing again.
            if file.set_len(length_before).is_err() {
                *guard = None;
                return Err(format!(
                    "{message} (a partial line is left, ended on reopen)"
                ));
            }
            return Err(message);
        }
        Ok(())
    }

    /// `sync_data` on the open file; nothing to do before the first line.
    fn sync(&self) -> Result<(), String> {
        let guard = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        match guard.as_ref() {
            Some(file) => file
                .sync_data()
                .map_err(|error| self.failed("sync", &error)),
            None => Ok(()),
        }
    }

    fn open(&self) -> io::Result<File> {
        let parent = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        create_private_dirs(parent)?;
        let created =
            private(OpenOptions::new().read(true).append(true).create_new(true)).open(&self.path);
        match created {
            Ok(file) => {
                // Owner only, whatever the umask: the lines hold users' personal data.
                restrict_to_owner(&file)?;
                // The new directory entry must survive a crash as much as the lines do.
                sync_directory(parent)?;
                Ok(file)
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                let mut file =
                    private(OpenOptions::new().read(true).append(true)).open(&self.path)?;
                end_partial_line(&mut file)?;
                Ok(file)
            }
            Err(error) => Err(error),
        }
    }

    fn failed(&self, action: &str, error: &io::Error) -> String {
        format!("cannot {action} {}: {error}", self.path.display())
    }
}

/// Opening options that never follow a symbolic link at the path itself (`O_NOFOLLOW`: a
/// link planted there makes the open fail instead of appending users' data to its target)
/// and create the file owner-only.
#[cfg(unix)]
fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(0o600).custom_flags(libc::O_NOFOLLOW)
}

#[cfg(not(unix))]
fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    options
}

#[cfg(unix)]
fn restrict_to_owner(file: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_to_owner(_file: &File) -> io::Result<()> {
    Ok(())
}

/// Creates the missing directories of `path` owner-only (0700); existing ones are left as
/// they are (an operator's `/var/log` keeps its mode).
#[cfg(unix)]
fn create_private_dirs(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

#[cfg(not(unix))]
fn create_private_dirs(path: &Path) -> io::Result<()> {
    std::fs::create_dir_all(path)
}

/// Appends a newline when the file's last byte is not one.
fn end_partial_line(file: &mut File) -> io::Result<()> {
    if file.metadata()?.len() == 0 {
        return Ok(());
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    if last[0] != b'\n' {
        // Append mode: the write lands at the end whatever the read position.
        file.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(unix)]
fn sync_directory(directory: &Path) -> io::Result<()> {
    File::open(directory)?.sync_all()
}

#[cfg(not(unix))]
fn sync_directory(_directory: &Path) -> io::Result<()> {
    Ok(())
}

fn build(options: &SinkOptions) -> Result<Box<dyn Sink>, ConfigError> {
    Ok(Box::new(FileSink::from_options(options)?))
}

const EXAMPLE_CONFIG: &str = r#"[[sinks]]
id = "archive"
type = "file"
# JSON lines, appended. The parent directories and the file are created on the first event.
path = "/var/lib/rollcall/events.jsonl"
"#;

rollcall_core::inventory::submit! {
    SinkRegistration {
        kind: KIND,
        description: "JSON lines appended to a file, synced to disk on flush",
        build,
        example_config: EXAMPLE_CONFIG,
        options_schema: Some(rollcall_core::options_schema::<FileOptions>),
    }
}
