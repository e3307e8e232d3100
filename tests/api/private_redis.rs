//! Redis for tests: [`redis_url`] (the shared server, `REDIS_URL` or
//! redis://127.0.0.1:6379) and [`PrivateRedis`], a `redis-server` of a test's own on
//! a free port for tests that stop, freeze or reconfigure it. When `redis-server`
//! is not installed those tests print a note and pass without running.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where the tests find the shared Redis.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port whose cluster bus port (+10000) is free too.
pub fn free_cluster_port() -> u16 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let start = 20_000 + (u64::from(std::process::id()) % 500) * 20;
    loop {
        let port = u16::try_from(start + NEXT.fetch_add(1, Ordering::Relaxed) % 10_000).unwrap();
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
        {
            return port;
        }
    }
}

/// Sends one inline command until the reply contains `expected`; panics after `limit`.
pub fn wait_for_reply(port: u16, command: &[u8], expected: &str, limit: Duration) {
    let started = Instant::now();
    loop {
        if let Ok(reply) = send_inline(port, command)
            && reply.contains(expected)
        {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "port {port}: no {expected:?} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One inline command and the start of its reply.
pub fn send_inline(port: u16, command: &[u8]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(command)?;
    let mut buffer = vec![0; 64 * 1024];
    let read = stream.read(&mut buffer)?;
    Ok(String::from_utf8_lossy(&buffer[..read]).into_owned())
}

/// A private `redis-server` on `port` in a scratch directory, bound to 127.0.0.1
/// and keeping nothing on disk; killed (and the directory removed) on drop.
pub struct PrivateRedis {
    /// Its port.
    pub port: u16,
    /// Its working directory (cluster `nodes.conf`, sentinel configuration).
    pub dir: PathBuf,
    configure: Box<dyn Fn(&mut Command) + Send>,
    child: Option<Child>,
}

impl PrivateRedis {
    /// A plain server on a free port; `None` (after a note) without `redis-server`.
    pub fn start_free() -> Option<Self> {
        Self::start(free_port(), &[])
    }

    /// A server on `port` with extra `args`; `None` (after a note) without
    /// `redis-server`.
    pub fn start(port: u16, args: &[&str]) -> Option<Self> {
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        Self::spawn_with(port, move |command| {
            command
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(&args);
        })
    }

    /// A server configured by `configure` (e.g. a sentinel); `None` (after a note)
    /// without `redis-server`.
    pub fn spawn_with(
        port: u16,
        configure: impl Fn(&mut Command) + Send + 'static,
    ) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("private-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            port,
            dir,
            configure: Box::new(configure),
            child: None,
        };
        if !server.spawn() {
            eprintln!("note: redis-server not found; test skipped");
            return None;
        }
        Some(server)
    }

    fn spawn(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        (self.configure)(&mut command);
        command
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let Ok(child) = command.spawn() else {
            return false;
        };
        self.child = Some(child);
        wait_for_reply(self.port, b"PING\r\n", "PONG", Duration::from_secs(5));
        true
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends a signal (`STOP`, `CONT`) to the server.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Kills the server.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts the server on the same port and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        assert!(self.spawn(), "redis-server vanished");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
