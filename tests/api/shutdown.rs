//! Issue 17 point 8 (SPEC 7 "SIGTERM"): the real binary exits 0 at once on SIGTERM when
//! nothing is in flight, an idle keep-alive connection included, and still finishes a
//! request that is in flight.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::temp_file;

/// The binary on a free port (memory store, a provider nobody needs); killed on drop.
struct Service {
    child: Child,
    port: u16,
}

impl Service {
    fn start() -> Self {
        let port = crate::private_redis::free_port();
        let config = temp_file(
            "toml",
            &format!(
                "[server]\nbind = \"127.0.0.1:{port}\"\n[[providers]]\nid = \"local\"\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"identity\"\nclient_secret = \"secret\"\n"
            ),
        );
        let mut command = Command::new(env!("CARGO_BIN_EXE_identity-service"));
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("IDENTITY__")) {
            command.env_remove(name);
        }
        let child = command
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let service = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
                stream
                    .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .unwrap();
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 200") {
                    return service;
                }
            }
            assert!(Instant::now() < deadline, "the service did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        stream
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The exit status, waiting at most `limit`; `None` if it still runs.
    fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one response with a `Content-Length` body from a kept-alive connection.
fn read_response(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        let read = stream.read(&mut buffer).unwrap();
        assert!(read > 0, "connection closed: {answer:?}");
        answer.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[test]
fn sigterm_with_an_idle_keep_alive_connection_exits_at_once() {
    let mut service = Service::start();
    // A client that keeps its connection open after its answer (as a load balancer does).
    let mut idle = service.connect();
    idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(read_response(&mut idle).starts_with("HTTP/1.1 200"));
    let stopped_at = Instant::now();
    service.terminate();
    let status = service
        .exit_within(Duration::from_secs(1))
        .unwrap_or_else(|| panic!("still running 1 s after SIGTERM"));
    assert_eq!(status.code(), Some(0));
    eprintln!("exited {:?} after SIGTERM", stopped_at.elapsed());
}

#[test]
fn sigterm_lets_a_request_in_flight_finish() {
    let mut service = Service::start();
    let body = b"logout_token=not-a-token";
    let mut in_flight = service.connect();
    write!(
        in_flight,
        "POST /backchannel-logout HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    // Half the body now, the rest after SIGTERM.
    in_flight.write_all(&body[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    service.terminate();
    assert!(
        service.exit_within(Duration::from_millis(1500)).is_none(),
        "exited with a request in flight"
    );
    in_flight.write_all(&body[10..]).unwrap();
    let answer = read_response(&mut in_flight);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("INVALID_LOGOUT_TOKEN"), "{answer}");
    let status = service
        .exit_within(Duration::from_secs(2))
        .unwrap_or_else(|| panic!("still running after its last request"));
    assert_eq!(status.code(), Some(0));
}
