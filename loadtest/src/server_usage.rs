//! The server's cost, read from outside: CPU time and peak RSS of a local process from
//! `/proc`, and forwarded packets and bytes from its `/healthz` counters.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// CPU time used so far by every thread of process `pid`, from `/proc/<pid>/task/*/schedstat`.
pub fn cpu_time(pid: u32) -> std::io::Result<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // The thread ended meanwhile.
        };
        total += parse_schedstat(&text).unwrap_or(0);
    }
    Ok(Duration::from_nanos(total))
}

/// Nanoseconds on CPU: the first field of a `schedstat` line.
fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// Peak resident set size of `pid` in bytes (`VmHWM`).
pub fn peak_rss(pid: u32) -> std::io::Result<u64> {
    let text = std::fs::read_to_string(Path::new(&format!("/proc/{pid}/status")))?;
    parse_vm_hwm(&text).ok_or_else(|| std::io::Error::other("no VmHWM line"))
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The server's forwarding counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Forwarded {
    /// RTP packets forwarded to subscribers.
    pub packets: u64,
    /// RTP payload bytes forwarded.
    pub bytes: u64,
}

/// Read the forwarding counters from `GET {http_base}/healthz`.
pub async fn forwarded(http_base: &str) -> anyhow::Result<Forwarded> {
    let host = http_base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).await?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or_else(|| anyhow::anyhow!("no HTTP body from /healthz"))?;
    let json: serde_json::Value = serde_json::from_str(body.trim())?;
    let counter = |name: &str| json["counters"][name].as_u64();
    Ok(Forwarded {
        packets: counter("rtp_forwarded")
            .ok_or_else(|| anyhow::anyhow!("/healthz has no rtp_forwarded"))?,
        bytes: counter("rtp_forwarded_bytes").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_formats() {
        // Requirement: CPU and memory figures come from the kernel's own accounting.
        assert_eq!(parse_schedstat("123456789 2000 15\n"), Some(123_456_789));
        assert_eq!(parse_schedstat(""), None);
        let status =
            "Name:\tsfu-server\nVmPeak:\t  100 kB\nVmHWM:\t   13700 kB\nVmRSS:\t 12000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(13_700 * 1024));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
    }

    #[test]
    fn measures_this_process() {
        // Requirement: the readers work on a live process (this test's own).
        let pid = std::process::id();
        std::hint::black_box((0..2_000_000u64).fold(0u64, |a, b| a ^ b.wrapping_mul(31)));
        assert!(cpu_time(pid).expect("own schedstat") > Duration::ZERO);
        assert!(peak_rss(pid).expect("own status") > 1024 * 1024);
    }
}
