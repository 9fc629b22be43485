//! End to end: the loadtest binary against a real sfu-server process on loopback.
//!
//! Needs `target/debug/sfu-server` (built by `./test.sh` before the tests, or
//! `cargo build -p sfu-server`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

/// A running sfu-server, killed on drop.
struct Server {
    child: Child,
    ws_url: String,
    /// Its Prometheus endpoint.
    metrics_url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/sfu-server");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p sfu-server` first",
        path.display()
    );
    path
}

fn start_server() -> Server {
    start_server_with(&[])
}

fn start_server_with(extra: &[&str]) -> Server {
    let mut child = Command::new(server_binary())
        .args([
            "--http",
            "127.0.0.1:0",
            "--udp",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sfu-server");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = loop {
        let line = lines
            .next()
            .expect("server printed its listening line")
            .expect("readable stdout");
        if line.contains("http=") {
            break line;
        }
    };
    let address = |key: &str| {
        line.split(key)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {key} in {line}"))
            .to_owned()
    };
    std::thread::spawn(move || lines.for_each(drop));
    Server {
        child,
        ws_url: format!("ws://{}/ws", address("http=")),
        metrics_url: format!("http://{}/metrics", address("metrics=")),
    }
}

fn loadtest(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(args)
        .output()
        .expect("run loadtest")
}

fn temp_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("loadtest-{}-{name}", std::process::id()))
}

#[test]
fn small_calls_deliver_every_track_and_report_the_server_cost() {
    // Requirement: in 2 rooms of 2 publishers and 1 subscriber, every receiver gets every track
    // it should, intact and from the right publisher, with under 1% loss; the report gives
    // latency, join time, the server's CPU per forwarded packet and its forwarding latency
    // inside it; --json writes it for machines.
    let server = start_server();
    let json = temp_file("report.json");
    let pid = server.child.id().to_string();
    let out = loadtest(&[
        "--url",
        &server.ws_url,
        "--rooms",
        "2",
        "--publishers",
        "2",
        "--subscribers",
        "1",
        "--duration",
        "10s",
        "--data-per-sec",
        "5",
        "--server-pid",
        &pid,
        "--metrics-url",
        &server.metrics_url,
        "--max-loss",
        "1%",
        "--json",
        json.to_str().expect("utf-8 path"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loadtest failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("PASS every expected track delivered media (16/16)"),
        "{stdout}"
    );
    assert!(stdout.contains("PASS frame loss"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json report"))
            .expect("valid JSON");
    let total = &report["total"];
    assert_eq!(
        total["tracks_expected"], 16,
        "per room, 3 receivers get the other publishers' audio+video"
    );
    assert_eq!(total["tracks_received"], 16);
    assert!(total["loss"].as_f64().expect("loss") < 0.01, "{total}");
    assert_eq!(total["rtp_gaps"], 0, "{total}");
    assert!(
        total["packets"].as_u64().expect("packets") > total["frames"].as_u64().expect("frames")
    );
    assert!(
        total["packet_loss"].as_f64().expect("packet loss") < 0.01,
        "{total}"
    );
    assert_eq!(total["errors"], 0, "{report}");
    assert!(total["frames"].as_u64().expect("frames") > 100, "{total}");
    assert!(total["latency_ms"]["p50"].as_f64().expect("latency") > 0.0);
    assert!(total["join_ms"]["p95"].as_f64().expect("join time") > 0.0);
    assert!(
        total["data_received"].as_u64().expect("data") > 0,
        "data messages relayed"
    );
    let server_cost = &report["server"];
    assert!(
        server_cost["forwarded_packets"].as_u64().expect("packets") > 0,
        "{server_cost}"
    );
    assert!(server_cost["cpu_us_per_packet"].as_f64().expect("cost") > 0.0);
    assert!(
        server_cost["delivered_packets"]
            .as_u64()
            .expect("delivered")
            > 0,
        "{server_cost}"
    );
    assert!(
        server_cost["cpu_us_per_delivered_packet"]
            .as_f64()
            .expect("cost per delivered packet")
            > 0.0
    );
    assert!(server_cost["peak_rss_mib"].as_f64().expect("rss") > 1.0);
    let latency = &server_cost["forwarding_latency"];
    assert!(
        latency["samples"].as_u64().expect("latency samples") > 100,
        "{server_cost}"
    );
    assert!(
        latency["p99_ms_at_most"]
            .as_f64()
            .expect("p99 within the buckets")
            > 0.0,
        "{server_cost}"
    );
    assert!(
        stdout.contains("forwarding latency inside the server"),
        "{stdout}"
    );
    let _ = std::fs::remove_file(json);
}

#[test]
fn a_missed_threshold_fails_the_run() {
    // Requirement: the exit code is non-zero when a threshold given by flags is not met.
    let server = start_server();
    let out = loadtest(&[
        "--url",
        &server.ws_url,
        "--publishers",
        "2",
        "--duration",
        "3s",
        "--simulcast",
        "off",
        "--max-p99-latency",
        "0ms",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL p99 latency"), "{stdout}");
}

#[test]
fn a_scenario_file_runs_like_the_flags() {
    // Requirement: a TOML scenario describes a run; flags still override it.
    let server = start_server();
    let file = temp_file("scenario.toml");
    std::fs::write(
        &file,
        format!("url = \"{}\"\nrooms = 2\npublishers = 1\nsubscribers = 1\nduration = \"3s\"\nvideo = false\n", server.ws_url),
    )
    .expect("write scenario");
    let out = loadtest(&[
        "--scenario",
        file.to_str().expect("utf-8 path"),
        "--rooms",
        "1",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("(1/1)"),
        "one room: the subscriber gets the publisher's audio: {stdout}"
    );
    let _ = std::fs::remove_file(file);
}

#[test]
fn bad_input_is_refused_with_a_message() {
    // Requirement: a bad scenario or an unreachable server ends with a clear error, not a hang.
    let out = loadtest(&["--rooms", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rooms must be at least 1"));
    let out = loadtest(&[
        "--url",
        "ws://127.0.0.1:1/ws",
        "--publishers",
        "1",
        "--duration",
        "2s",
    ]);
    assert_eq!(out.status.code(), Some(1), "nothing delivered");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("error: participant 0"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_server_that_dies_mid_run_fails_the_run_quickly() {
    // Requirement: when the server goes away the loadtest reports it and exits non-zero, without
    // waiting out (or hanging past) the planned duration.
    let mut server = start_server();
    let started = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "--url",
            &server.ws_url,
            "--publishers",
            "2",
            "--simulcast",
            "off",
            "--duration",
            "60s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run loadtest");
    std::thread::sleep(std::time::Duration::from_secs(4));
    server.child.kill().expect("kill the server");
    let status = loop {
        if let Some(status) = child.try_wait().expect("loadtest status") {
            break status;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "loadtest still running 26 s after the server died"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut stdout)
        .expect("read stdout");
    assert_eq!(status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL every participant stayed until the end (0/2)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("closed the signaling connection")
            || stdout.contains("signaling connection failed"),
        "{stdout}"
    );
}

#[test]
fn join_tokens_are_signed_when_the_server_needs_them() {
    // Requirement: against a server with an auth secret, --token-secret lets every participant
    // in; without it every join is refused and the run fails.
    let secret = "loadtest-secret-0123456789abcdef";
    let server = start_server_with(&["--auth-secret", secret]);
    let out = loadtest(&[
        "--url",
        &server.ws_url,
        "--publishers",
        "1",
        "--subscribers",
        "1",
        "--duration",
        "3s",
        "--simulcast",
        "off",
        "--token-secret",
        secret,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("(2/2)"), "{stdout}");
    let refused = loadtest(&[
        "--url",
        &server.ws_url,
        "--publishers",
        "1",
        "--duration",
        "2s",
    ]);
    let stdout = String::from_utf8_lossy(&refused.stdout);
    assert_eq!(refused.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("unauthorized") || stdout.contains("Unauthorized"),
        "{stdout}"
    );
}

/// The server's `/healthz` counters, read over a plain HTTP/1.0 request.
fn health_counters(server: &Server) -> serde_json::Value {
    use std::io::{Read, Write};
    let host = server
        .ws_url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws");
    let mut stream = std::net::TcpStream::connect(host).expect("connect to the server");
    write!(stream, "GET /healthz HTTP/1.0\r\nHost: {host}\r\n\r\n").expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let body = response.split("\r\n\r\n").nth(1).expect("a response body");
    serde_json::from_str::<serde_json::Value>(body).expect("JSON health")["counters"].clone()
}

#[test]
fn hostile_datagrams_from_participants_do_not_disturb_the_call() {
    // Requirement: malformed and forged STUN/DTLS/RTP/RTCP datagrams, sent by every
    // participant from its own media address in the middle of a call, are dropped and
    // counted, and every track keeps flowing without loss.
    let server = start_server();
    let out = loadtest(&[
        "--url",
        &server.ws_url,
        "--rooms",
        "1",
        "--publishers",
        "2",
        "--subscribers",
        "1",
        "--duration",
        "8s",
        "--garbage-per-sec",
        "300",
        "--max-loss",
        "1%",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loadtest failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("hostile input: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the report says how many bad datagrams were sent");
    assert!(sent > 3000, "{sent} bad datagrams sent");
    let counters = health_counters(&server);
    let malformed = counters["udp_malformed"].as_u64().expect("udp_malformed");
    let dropped = counters["udp_dropped"].as_u64().expect("udp_dropped");
    // 8 of the 14 kinds are malformed (plus some of the random noise); 1 is STUN for
    // an unknown user, dropped without a route.
    assert!(
        malformed >= sent * 8 / 14 * 9 / 10,
        "{malformed} of {sent} counted as malformed"
    );
    assert!(dropped >= sent / 14 * 9 / 10, "{dropped} of {sent} dropped");
}
