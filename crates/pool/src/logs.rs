//! One environment's log stream: everything the process writes to stdout and stderr, plus the
//! platform's `START` / `END` / `REPORT` lines, appended to the stream's file.
//!
//! The process's output arrives on one pipe. A background task copies it as it comes; before the
//! platform writes `END`, the invoker drains the pipe itself ([`LogStream::drain`]) so that
//! everything the function printed before answering lands before `END`. Both paths read under
//! the same lock, so output is never reordered. While an invocation runs, its lines are also kept
//! in memory for `X-Amz-Log-Result` (the last 4 KB).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lamina_sandbox::LogPipe;

/// Invocation log kept in memory at most (the tail needs only the last 4 KB).
const CAPTURE_LIMIT: usize = 64 * 1024;

#[derive(Debug)]
struct Inner {
    pipe: Option<Arc<LogPipe>>,
    file: Option<BufWriter<File>>,
    capture: Option<Vec<u8>>,
    /// The read buffer, kept between drains (zeroing a fresh 16 KB one on every drain was a
    /// tenth of the platform's instructions per warm invoke).
    buf: Vec<u8>,
    /// When the file was last flushed (`None`: never).
    flushed: Option<Instant>,
    /// Where a platform line is formatted, kept between lines.
    line: String,
}

/// The file is written at most this often under steady load (and by the pool's idle sweep
/// within about as long once the environment is idle): a write per warm invoke was a few per
/// cent of the platform's CPU. The first invocation's lines are written at once.
pub(crate) const FLUSH_PERIOD: Duration = Duration::from_millis(50);

/// The log stream of one environment.
#[derive(Debug, Clone)]
pub(crate) struct LogStream {
    inner: Arc<Mutex<Inner>>,
}

impl LogStream {
    /// Open (create) the stream file and start copying `pipe` into it. Capture is on from the
    /// start, so a cold start's first invocation log includes the init output.
    pub(crate) fn start(path: &Path, pipe: LogPipe) -> LogStream {
        let file = open(path);
        let pipe = Arc::new(pipe);
        let stream = LogStream {
            inner: Arc::new(Mutex::new(Inner {
                pipe: Some(pipe.clone()),
                file,
                capture: Some(Vec::new()),
                buf: vec![0u8; 16 * 1024],
                flushed: None,
                line: String::new(),
            })),
        };
        let copier = stream.clone();
        tokio::spawn(async move {
            loop {
                if pipe.readable().await.is_err() {
                    break;
                }
                if !copier.drain() {
                    break;
                }
            }
        });
        stream
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Read whatever the pipe holds now, without waiting. Returns false once the pipe is closed.
    pub(crate) fn drain(&self) -> bool {
        let mut inner = self.lock();
        let Some(pipe) = inner.pipe.clone() else {
            return false;
        };
        let mut buf = std::mem::take(&mut inner.buf);
        if buf.is_empty() {
            buf = vec![0u8; 16 * 1024];
        }
        let open = loop {
            match pipe.try_read(&mut buf) {
                Ok(0) => {
                    inner.pipe = None;
                    break false;
                }
                Ok(n) => inner.append(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    inner.pipe = None;
                    break false;
                }
            }
        };
        inner.buf = buf;
        open
    }

    /// Wait (bounded) until every process holding the pipe has gone, copying what remains.
    pub(crate) async fn drain_to_end(&self, within: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if !self.drain() {
                return;
            }
            let pipe = self.lock().pipe.clone();
            let Some(pipe) = pipe else { return };
            if tokio::time::timeout_at(deadline, pipe.readable())
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// Append a platform line (`START ...`) to the stream and the capture.
    pub(crate) fn platform_line(&self, line: &str) {
        let mut inner = self.lock();
        inner.append(line.as_bytes());
        inner.append(b"\n");
    }

    /// Append a platform line formatted in place (`format_args!`), without a `String` of its
    /// own: `START`, `END` and `REPORT` are written on every invoke.
    pub(crate) fn platform_fmt(&self, args: std::fmt::Arguments<'_>) {
        use std::fmt::Write;
        let mut inner = self.lock();
        let mut line = std::mem::take(&mut inner.line);
        line.clear();
        let _ = line.write_fmt(args);
        line.push('\n');
        inner.append(line.as_bytes());
        inner.line = line;
    }

    /// Start capturing a new invocation's log (a warm invocation; cold ones capture from start).
    pub(crate) fn begin_capture(&self) {
        let mut inner = self.lock();
        if inner.capture.is_none() {
            // Room for START, END and REPORT without growing.
            inner.capture = Some(Vec::with_capacity(512));
        }
    }

    /// Stop capturing and return the last `tail` bytes of the capture. The file is flushed if
    /// it was not for [`FLUSH_PERIOD`].
    pub(crate) fn end_capture(&self, tail: usize) -> Vec<u8> {
        let mut inner = self.lock();
        if inner.flushed.is_none_or(|t| t.elapsed() >= FLUSH_PERIOD) {
            inner.flush();
        }
        let mut captured = inner.capture.take().unwrap_or_default();
        let start = captured.len().saturating_sub(tail);
        captured.drain(..start);
        captured
    }

    /// Write whatever is buffered to the file (the pool's idle sweep).
    pub(crate) fn flush(&self) {
        let mut inner = self.lock();
        if inner.file.as_ref().is_some_and(|f| !f.buffer().is_empty()) {
            inner.flush();
        }
    }
}

impl Inner {
    fn flush(&mut self) {
        if let Some(f) = self.file.as_mut() {
            let _ = f.flush();
        }
        self.flushed = Some(Instant::now());
    }

    fn append(&mut self, bytes: &[u8]) {
        if let Some(f) = self.file.as_mut() {
            if f.write_all(bytes).is_err() {
                self.file = None;
            }
        }
        if let Some(c) = self.capture.as_mut() {
            c.extend_from_slice(bytes);
            if c.len() > CAPTURE_LIMIT {
                let cut = c.len() - CAPTURE_LIMIT / 2;
                c.drain(..cut);
            }
        }
    }
}

fn open(path: &Path) -> Option<BufWriter<File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok()?;
    }
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(f) => Some(BufWriter::new(f)),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot open log stream file");
            None
        }
    }
}

/// Where a log stream's file lives: `{logs}/{account}/{region}/{group}/{stream}` (the group's
/// and the stream's `/` become directories).
pub fn stream_path(
    logs_dir: &Path,
    account: &str,
    region: &str,
    group: &str,
    stream: &str,
) -> PathBuf {
    let mut p = logs_dir.join(account).join(region);
    for part in group.split('/').chain(stream.split('/')) {
        if !part.is_empty() && part != "." && part != ".." {
            p.push(part);
        }
    }
    p
}
