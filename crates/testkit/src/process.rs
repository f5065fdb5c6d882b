//! Child processes for tests that need real programs (a private D-Bus daemon, BlueZoo, the binaries under test):
//! their output is collected line by line as it comes, waits are for events (a line, the end of the output)
//! with a deadline, and every process is killed and reaped when its handle is dropped, also when a test panics.

use std::fmt;
use std::io::{BufRead as _, BufReader, Read};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Which output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

#[derive(Default)]
struct Output {
    stdout: Vec<String>,
    stderr: Vec<String>,
    /// Streams that reached end of file.
    closed: u8,
}

#[derive(Default)]
struct Shared {
    output: Mutex<Output>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Output> {
        self.output.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running child process. Dropping it kills the process (if it still runs) and waits for it.
pub struct Process {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    shared: Arc<Shared>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Process {
    /// Starts `command` with stdin, stdout and stderr piped. `name` labels it in messages. Panics (failing the
    /// test) when the program cannot be started.
    pub fn spawn(name: &str, mut command: Command) -> Self {
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child =
            command.spawn().unwrap_or_else(|e| panic!("cannot start {name} ({:?}): {e}", command.get_program()));
        let shared = Arc::new(Shared::default());
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(reader(out, Stream::Stdout, shared.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(reader(err, Stream::Stderr, shared.clone()));
        }
        let stdin = child.stdin.take();
        Self { name: name.to_owned(), child, stdin, shared, readers, status: None }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Closes the process's stdin (a signal to stop, for programs that watch it).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits until a line of `stream` satisfies `wanted` and returns it, or `None` when the stream ends or the
    /// deadline passes first. Lines already received count.
    pub fn wait_for_line(&self, stream: Stream, timeout: Duration, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut output = self.shared.lock();
        loop {
            let lines = match stream {
                Stream::Stdout => &output.stdout,
                Stream::Stderr => &output.stderr,
            };
            if let Some(line) = lines.iter().find(|l| wanted(l)) {
                return Some(line.clone());
            }
            if output.closed == 2 {
                return None;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            output = self.shared.changed.wait_timeout(output, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Waits for the process to exit (its output to end), at most `timeout`; `None` if it is still running.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.status.is_some() {
            return self.status;
        }
        let deadline = Instant::now() + timeout;
        {
            let mut output = self.shared.lock();
            while output.closed < 2 {
                let left = deadline.checked_duration_since(Instant::now())?;
                output = self.shared.changed.wait_timeout(output, left).unwrap_or_else(PoisonError::into_inner).0;
            }
        }
        // Both streams ended: the process has exited, or closed them and is about to (then this returns
        // promptly). A grandchild holding them open would keep them open; the programs run here have none.
        let status = self.child.wait().unwrap_or_else(|e| panic!("cannot wait for {}: {e}", self.name));
        self.reap_readers();
        self.status = Some(status);
        self.status
    }

    /// Kills the process (if it still runs) and waits for it.
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        self.stdin = None;
        // It may have exited meanwhile; `wait` reaps it either way.
        let _ = self.child.kill();
        let status = self.child.wait().unwrap_or_else(|e| panic!("cannot wait for {}: {e}", self.name));
        self.reap_readers();
        self.status = Some(status);
        status
    }

    /// Everything the process wrote to `stream` so far.
    pub fn output(&self, stream: Stream) -> String {
        let output = self.shared.lock();
        let lines = match stream {
            Stream::Stdout => &output.stdout,
            Stream::Stderr => &output.stderr,
        };
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    fn reap_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

impl fmt::Display for Process {
    /// The name, the exit status if known, and all output: for failure messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.status.map_or_else(|| "running".to_owned(), |s| s.to_string());
        writeln!(f, "--- {} (pid {}, {status}) stdout:", self.name, self.child.id())?;
        f.write_str(&self.output(Stream::Stdout))?;
        writeln!(f, "--- {} stderr:", self.name)?;
        f.write_str(&self.output(Stream::Stderr))
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process").field("name", &self.name).field("pid", &self.child.id()).finish_non_exhaustive()
    }
}

fn reader(stream: impl Read + Send + 'static, which: Stream, shared: Arc<Shared>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stream);
        let mut line = Vec::new();
        // Bytes, not `lines()`: output that is not UTF-8 must not end the collection early.
        while matches!(lines.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_owned();
            line.clear();
            let mut output = shared.lock();
            match which {
                Stream::Stdout => output.stdout.push(text),
                Stream::Stderr => output.stderr.push(text),
            }
            shared.changed.notify_all();
        }
        shared.lock().closed += 1;
        shared.changed.notify_all();
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn lines_are_awaited_and_exit_is_reaped() {
        let mut p = Process::spawn("sh", sh("echo one; echo two >&2; read _; echo three"));
        assert_eq!(p.wait_for_line(Stream::Stdout, Duration::from_secs(10), |l| l == "one").as_deref(), Some("one"));
        assert!(p.wait_for_line(Stream::Stderr, Duration::from_secs(10), |l| l == "two").is_some());
        assert_eq!(p.wait(Duration::from_millis(50)), None, "still waiting for stdin");
        p.close_stdin();
        assert!(p.wait(Duration::from_secs(10)).unwrap().success());
        assert_eq!(p.output(Stream::Stdout), "one\nthree\n");
        assert_eq!(p.wait_for_line(Stream::Stdout, Duration::from_secs(10), |l| l == "four"), None, "ended");
    }

    #[test]
    fn dropping_kills_and_reaps() {
        let p = Process::spawn("sleeper", sh("exec sleep 600"));
        let pid = p.id();
        drop(p);
        // Reaped: the pid no longer names a process (a zombie would still have a /proc entry).
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
}
