//! `file`: JSON lines appended to a file.
//!
//! * The file (and its parent directories) is created on the first event, not when the
//!   sink is built: `rollcall config check` builds sinks and must not touch the disk.
//! * Each event is one line. A batch ([`Sink::send_batch`]; `send` is a batch of one) is
//!   its lines in one buffer written with one `write_all` while a mutex is held, in one
//!   trip to the blocking pool, so concurrent sends never interleave. A write that fails
//!   half-way is cut back off the file to its length before the batch, so none of the
//!   batch's lines is half there and the retry starts on a clean line; the batch reports
//!   0 delivered.
//! * The file's length is kept with the open handle (read once at the open, then counted
//!   per write) instead of an `fstat` per write: rollcall assumes it is the file's only
//!   writer while it has it open (an outside append would be cut off by a failed write's
//!   cut-back). A file truncated under it (copy-and-truncate rotation) is noticed on a
//!   failed write: the fragment is then left and ended with a newline on the reopen.
//! * [`Sink::flush`] calls `sync_data`: the host flushes before it advances its cursor, so
//!   a line is on disk before rollcall forgets the event.
//! * A file that ends in a partial line when it is opened (a torn write before a power
//!   loss, or a file someone else wrote) gets a newline first, so every line rollcall
//!   writes stays whole and parseable.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rollcall_core::{
    BatchOutcome, ConfigError, OutboundEvent, Sink, SinkError, SinkOptions, SinkRegistration,
};
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
    file: Mutex<Option<OpenFile>>,
    /// Test hook: the next write puts this many bytes of its buffer down, then fails.
    #[cfg(test)]
    tear_next_write_at: Mutex<Option<usize>>,
    /// Test hook: how many `write_all` calls went to the file.
    #[cfg(test)]
    writes: std::sync::atomic::AtomicUsize,
}

/// The open file and its length, so a failed write can be cut back without asking the
/// file system where the end was.
#[derive(Debug)]
struct OpenFile {
    file: File,
    len: u64,
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
            lines: Arc::new(LineFile::new(path)),
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
        self.send_batch(std::slice::from_ref(event))
            .await
            .into_result()
    }

    /// One trip to the blocking pool and one write for the whole batch: all of it is
    /// delivered, or none of it (0 delivered, the file cut back to where it was).
    async fn send_batch(&self, events: &[OutboundEvent]) -> BatchOutcome {
        let Some(first) = events.first() else {
            return BatchOutcome::all(0);
        };
        let buffer = crate::json_lines(events);
        let lines = Arc::clone(&self.lines);
        match crate::run_blocking("file writer", move || lines.append(&buffer)).await {
            Ok(()) => BatchOutcome::all(events.len()),
            Err(error) => {
                tracing::debug!(sink = %self.sink_id, event_id = %first.event_id, events = events.len(), %error, "file sink send failed");
                BatchOutcome::failed(0, error)
            }
        }
    }

    async fn flush(&self) -> Result<(), SinkError> {
        let lines = Arc::clone(&self.lines);
        crate::run_blocking("file writer", move || lines.sync()).await
    }
}

impl LineFile {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: Mutex::new(None),
            #[cfg(test)]
            tear_next_write_at: Mutex::new(None),
            #[cfg(test)]
            writes: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Writes whole lines (one or several, each ending in a newline) in one `write_all`,
    /// opening the file first if needed. On failure the file is as it was before.
    fn append(&self, lines: &[u8]) -> Result<(), String> {
        let mut guard = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let open = match &mut *guard {
            Some(open) => open,
            closed => closed.insert(self.open().map_err(|error| self.failed("open", &error))?),
        };
        if let Err(error) = self.write(&mut open.file, lines) {
            let message = self.failed("append to", &error);
            // Cut the partial lines back off. The one `fstat` of the failure path checks
            // that the file did not shrink under us (a log rotator's copy-and-truncate):
            // then the kept length is stale and cutting back to it would pad the file
            // with zeros. In that case, or if the cut-back fails, drop the handle: the
            // next open reads the length afresh and ends the fragment with a newline
            // before writing again.
            let shrunk = open
                .file
                .metadata()
                .map_or(true, |metadata| metadata.len() < open.len);
            if shrunk || open.file.set_len(open.len).is_err() {
                *guard = None;
                return Err(format!(
                    "{message} (a partial line is left, ended on reopen)"
                ));
            }
            return Err(message);
        }
        // A usize fits in a u64 on every platform Rust supports.
        open.len = open
            .len
            .saturating_add(u64::try_from(lines.len()).unwrap_or(u64::MAX));
        Ok(())
    }

    #[cfg(not(test))]
    fn write(&self, file: &mut File, buffer: &[u8]) -> io::Result<()> {
        file.write_all(buffer)
    }

    /// `write_all`, or a torn write when a test asked for one.
    #[cfg(test)]
    fn write(&self, file: &mut File, buffer: &[u8]) -> io::Result<()> {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tear = self
            .tear_next_write_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match tear {
            Some(at) => {
                file.write_all(&buffer[..at.min(buffer.len())])?;
                Err(io::Error::other("simulated torn write"))
            }
            None => file.write_all(buffer),
        }
    }

    /// `sync_data` on the open file; nothing to do before the first line.
    fn sync(&self) -> Result<(), String> {
        let guard = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        match guard.as_ref() {
            Some(open) => open
                .file
                .sync_data()
                .map_err(|error| self.failed("sync", &error)),
            None => Ok(()),
        }
    }

    /// Opens (or creates) the file and reads its length once.
    fn open(&self) -> io::Result<OpenFile> {
        let file = self.open_file()?;
        let len = file.metadata()?.len();
        Ok(OpenFile { file, len })
    }

    fn open_file(&self) -> io::Result<File> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::atomic::Ordering;

    use rollcall_core::{EventType, Timestamp};
    use serde_json::json;

    use super::*;

    fn sink_at(path: &Path) -> FileSink {
        FileSink::from_options(&SinkOptions::new("test-file", json!({ "path": path }))).unwrap()
    }

    fn body(n: usize) -> String {
        format!(r#"{{"id":"evt-{n}","type":"user.created"}}"#)
    }

    fn events(range: std::ops::Range<usize>) -> Vec<OutboundEvent> {
        range
            .map(|n| OutboundEvent {
                event_id: format!("evt-{n}"),
                event_type: EventType::Created,
                source: "s".into(),
                received_at: Timestamp::from_unix_seconds(1_800_000_000).unwrap(),
                content_type: "application/json",
                body: body(n).into(),
            })
            .collect()
    }

    fn lines(range: std::ops::Range<usize>) -> String {
        range.map(|n| format!("{}\n", body(n))).collect()
    }

    fn writes(sink: &FileSink) -> usize {
        sink.lines.writes.load(Ordering::SeqCst)
    }

    /// The next write puts `at` bytes down and fails.
    fn tear_next_write(sink: &FileSink, at: usize) {
        *sink.lines.tear_next_write_at.lock().unwrap() = Some(at);
    }

    #[tokio::test]
    async fn a_batch_is_written_as_whole_lines_in_order_in_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let sink = sink_at(&path);

        assert_eq!(sink.send_batch(&events(0..5)).await, BatchOutcome::all(5));
        assert_eq!(writes(&sink), 1, "one write for the whole batch");
        assert_eq!(sink.send_batch(&events(5..7)).await, BatchOutcome::all(2));
        assert_eq!(writes(&sink), 2);
        // An empty batch touches nothing.
        assert_eq!(sink.send_batch(&[]).await, BatchOutcome::all(0));
        assert_eq!(writes(&sink), 2);

        assert_eq!(std::fs::read_to_string(&path).unwrap(), lines(0..7));
    }

    #[tokio::test]
    async fn a_batch_whose_write_fails_leaves_the_file_as_before_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let sink = sink_at(&path);
        sink.send(&events(0..1)[0]).await.unwrap();

        // Torn in the middle of the batch's second line: its first line is whole on disk
        // before the cut-back, and must go too.
        tear_next_write(&sink, body(1).len() + 1 + 5);
        let outcome = sink.send_batch(&events(1..4)).await;
        assert_eq!(outcome.delivered, 0);
        match outcome.failure {
            Some(SinkError::Transient { message, .. }) => {
                assert!(message.contains("simulated torn write"), "{message}")
            }
            other => panic!("expected a transient failure, got {other:?}"),
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), lines(0..1));

        // The retry lands on a clean line, right after what was there.
        assert_eq!(sink.send_batch(&events(1..4)).await, BatchOutcome::all(3));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), lines(0..4));
    }

    #[tokio::test]
    async fn the_length_kept_without_fstat_survives_a_reopen_with_a_partial_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "{\"id\":\"evt-x\",\"ty").unwrap();
        let partial = "{\"id\":\"evt-x\",\"ty\n";

        let sink = sink_at(&path);
        sink.send_batch(&events(0..2)).await.into_result().unwrap();
        // The length counts the newline that ended the fragment and the batch: a torn
        // write is cut back to exactly here.
        tear_next_write(&sink, 3);
        assert_eq!(sink.send_batch(&events(2..4)).await.delivered, 0);
        let before = format!("{partial}{}", lines(0..2));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
        drop(sink);

        // A restarted rollcall reads the length afresh when it opens the file.
        let sink = sink_at(&path);
        tear_next_write(&sink, 7);
        assert_eq!(sink.send_batch(&events(2..4)).await.delivered, 0);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
        sink.send_batch(&events(2..4)).await.into_result().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{partial}{}", lines(0..4))
        );
    }

    #[tokio::test]
    async fn a_file_truncated_under_the_sink_is_not_padded_by_a_failed_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let sink = sink_at(&path);
        sink.send_batch(&events(0..3)).await.into_result().unwrap();
        // A log rotator copies the file and truncates it.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();

        tear_next_write(&sink, 5);
        assert_eq!(sink.send_batch(&events(3..4)).await.delivered, 0);
        let fragment = &body(3)[..5];
        assert_eq!(std::fs::read_to_string(&path).unwrap(), fragment);
        // The next write reopens the file, ends the fragment and appends whole lines.
        sink.send_batch(&events(3..5)).await.into_result().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{fragment}\n{}", lines(3..5))
        );
    }
}
