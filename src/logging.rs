//! Logging: tracing to stderr, human or JSON, through a batching writer.
//!
//! Every finished write logs one line, so a line must cost the serving thread as little as
//! possible. [`Batched`] appends the formatted line to a shared buffer under a lock: no
//! syscall, and no thread to wake while lines keep coming. A `dtc-log` thread writes the buffer
//! out at most every [`FLUSH_EVERY`] (sooner once [`HIGH_WATER`] bytes wait). Nothing is dropped:
//! past [`MAX_BUFFER`] bytes a logger waits for the thread, as it would wait on stderr itself.
//! [`LogGuard`] writes out what is left when dropped, at exit.
//!
//! Why not tracing-appender's non-blocking writer: it hands every line to its thread through a
//! channel and writes whenever that channel is empty, so at a few thousand lines a second it
//! woke and wrote per line (7 % of dtc's samples under replicated POSTs, docs/performance.md).

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;

/// Longest a line waits in the buffer before it is written.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Buffered bytes that make the thread write out at once.
pub(crate) const HIGH_WATER: usize = 64 << 10;
/// Buffered bytes past which loggers wait for the thread.
pub(crate) const MAX_BUFFER: usize = 1 << 20;

/// How log lines are formatted (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable lines (coloured only when stderr is a terminal).
    Human,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber (`RUST_LOG`, default `info`) writing to stderr. Keep the guard
/// until exit: dropping it writes out the lines still buffered.
pub(crate) fn init(format: Format) -> LogGuard {
    use tracing_subscriber::EnvFilter;
    let (writer, guard) = Batched::spawn(std::io::stderr());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, not in files or a collector's pipe.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let _ = match format {
        Format::Human => builder.try_init(),
        Format::Json => builder.json().try_init(),
    };
    guard
}

/// A `MakeWriter` whose lines go to a buffer that the `dtc-log` thread writes out. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Batched {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// The thread waits here: for the first line, or for the buffer to reach the high water.
    wake: Condvar,
    /// Loggers wait here while the buffer is over its maximum.
    drained: Condvar,
}

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    closed: bool,
}

/// Writes out the buffered lines and stops the thread when dropped.
pub(crate) struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Batched {
    /// A writer into `out`, and the guard of its thread. If the thread cannot be started, lines
    /// are written to `out` on the logging thread instead (the guard then does nothing).
    pub(crate) fn spawn<W: Write + Send + 'static>(out: W) -> (Batched, LogGuard) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            drained: Condvar::new(),
        });
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("dtc-log".to_owned())
            .spawn(move || run(&for_thread, out))
            .ok();
        if thread.is_none() {
            lock(&shared).closed = true;
        }
        let guard = LogGuard {
            shared: shared.clone(),
            thread,
        };
        (Batched { shared }, guard)
    }

    fn append(&self, line: &[u8]) {
        let mut st = lock(&self.shared);
        if st.closed {
            // No thread (never started, or gone at exit): write it ourselves.
            drop(st);
            let _ = std::io::stderr().write_all(line);
            return;
        }
        while st.buf.len() > MAX_BUFFER && !st.closed {
            st = self
                .shared
                .drained
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
        }
        let was_empty = st.buf.is_empty();
        st.buf.extend_from_slice(line);
        if was_empty || st.buf.len() >= HIGH_WATER {
            self.shared.wake.notify_one();
        }
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `dtc-log` thread: waits for a first line, lets more gather for up to `FLUSH_EVERY`, and
/// writes them all at once.
fn run<W: Write>(shared: &Shared, mut out: W) {
    loop {
        let mut st = lock(shared);
        while st.buf.is_empty() && !st.closed {
            st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        if st.buf.len() < HIGH_WATER && !st.closed {
            st = shared
                .wake
                .wait_timeout(st, FLUSH_EVERY)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        let batch = std::mem::take(&mut st.buf);
        let closed = st.closed;
        drop(st);
        shared.drained.notify_all();
        if !batch.is_empty() {
            let _ = out.write_all(&batch);
            let _ = out.flush();
        }
        if closed && lock(shared).buf.is_empty() {
            return;
        }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        lock(&self.shared).closed = true;
        self.shared.wake.notify_one();
        self.shared.drained.notify_all();
        let _ = thread.join();
    }
}

/// One formatted event; tracing-subscriber writes each event with one `write_all`.
pub(crate) struct Line<'a>(&'a Batched);

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` whose bytes and write calls the test can see.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut s = self.0.lock().unwrap();
            s.0.extend_from_slice(buf);
            s.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_and_the_guard_flushes_the_rest() {
        let sink = Sink::default();
        let (writer, guard) = Batched::spawn(sink.clone());
        let expected: Vec<u8> = (0..1000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        for i in 0..1000 {
            writer
                .make_writer()
                .write_all(format!("line {i}\n").as_bytes())
                .unwrap();
        }
        drop(guard);
        let (bytes, writes) = sink.0.lock().unwrap().clone();
        assert_eq!(bytes, expected);
        assert!(
            writes < 1000,
            "lines written in batches, not one by one ({writes} writes)"
        );
    }

    #[test]
    #[expect(
        clippy::disallowed_types,
        reason = "the writer is a plain thread: no tokio clock here"
    )]
    fn a_line_reaches_the_output_without_more_lines_behind_it() {
        let sink = Sink::default();
        let (writer, _guard) = Batched::spawn(sink.clone());
        writer.make_writer().write_all(b"alone\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.0.lock().unwrap().0.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the line was not written"
            );
            std::thread::yield_now();
        }
        assert_eq!(sink.0.lock().unwrap().0, b"alone\n");
    }

    #[test]
    fn many_threads_lose_no_line_even_past_the_buffer_limit() {
        let sink = Sink::default();
        let (writer, guard) = Batched::spawn(sink.clone());
        // 8 threads x 2000 lines of ~100 bytes: 1.6 MB, past MAX_BUFFER, so some wait.
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        let line = format!("{t:02} {i:05} {}\n", "x".repeat(88));
                        w.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let bytes = sink.0.lock().unwrap().0.clone();
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 16_000);
        for t in 0..8 {
            let mine: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with(&format!("{t:02} ")))
                .collect();
            assert_eq!(mine.len(), 2000);
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "thread {t}'s lines in order"
            );
        }
    }
}
