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

/// `GET {base}{path}` from a plain HTTP server (`base` is `http://host:port`): the body.
async fn http_get(base: &str, path: &str) -> anyhow::Result<String> {
    let host = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or_else(|| anyhow::anyhow!("no HTTP body from {path}"))?;
    Ok(body.to_owned())
}

/// Read the forwarding counters from `GET {http_base}/healthz`.
pub async fn forwarded(http_base: &str) -> anyhow::Result<Forwarded> {
    let body = http_get(http_base, "/healthz").await?;
    let json: serde_json::Value = serde_json::from_str(body.trim())?;
    let counter = |name: &str| json["counters"][name].as_u64();
    Ok(Forwarded {
        packets: counter("rtp_forwarded")
            .ok_or_else(|| anyhow::anyhow!("/healthz has no rtp_forwarded"))?,
        bytes: counter("rtp_forwarded_bytes").unwrap_or(0),
    })
}

/// The server's histogram of forwarding latency inside it (`sfu_forwarding_seconds`):
/// cumulative sample counts by bucket upper bound in seconds, the last one infinite.
pub type LatencyBuckets = Vec<(f64, u64)>;

/// Read `sfu_forwarding_seconds` from the server's Prometheus endpoint
/// (`http://host:port/path`).
pub async fn forwarding_latency(metrics_url: &str) -> anyhow::Result<LatencyBuckets> {
    let rest = metrics_url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("the metrics URL must start with http://"))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/metrics" } else { path };
    let body = http_get(&format!("http://{host}"), path).await?;
    let buckets = parse_buckets(&body, "sfu_forwarding_seconds");
    if buckets.is_empty() {
        anyhow::bail!("{metrics_url} has no sfu_forwarding_seconds histogram");
    }
    Ok(buckets)
}

/// The buckets of histogram `name` in Prometheus text: `name_bucket{le="0.001"} 42`.
fn parse_buckets(text: &str, name: &str) -> LatencyBuckets {
    let prefix = format!("{name}_bucket{{");
    let mut buckets: LatencyBuckets = text
        .lines()
        .filter_map(|line| {
            let labels = line.strip_prefix(&prefix)?;
            let le = labels.split("le=\"").nth(1)?.split('"').next()?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count = line.rsplit(' ').next()?.parse().ok()?;
            Some((bound, count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// Forwarding latency inside the server over the measured window, from its histogram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ForwardingLatency {
    /// Incoming packets forwarded in the window (one sample each).
    pub samples: u64,
    /// Upper bound of the bucket holding the median, ms (`None`: above the last bound).
    pub p50_ms_at_most: Option<f64>,
    /// Upper bound of the bucket holding the 99th percentile, ms.
    pub p99_ms_at_most: Option<f64>,
}

/// The latency of the samples recorded between readings `a` and `b` of the histogram.
pub fn latency_between(a: &LatencyBuckets, b: &LatencyBuckets) -> Option<ForwardingLatency> {
    let before = |bound: f64| a.iter().find(|(x, _)| *x == bound).map_or(0, |(_, c)| *c);
    let window: LatencyBuckets = b
        .iter()
        .map(|(bound, count)| (*bound, count.saturating_sub(before(*bound))))
        .collect();
    let samples = window.last()?.1;
    if samples == 0 {
        return None;
    }
    let at_most = |q: f64| {
        let rank = (q * samples as f64).ceil() as u64;
        window
            .iter()
            .find(|(_, cumulative)| *cumulative >= rank)
            .and_then(|(bound, _)| bound.is_finite().then_some(bound * 1e3))
    };
    Some(ForwardingLatency {
        samples,
        p50_ms_at_most: at_most(0.5),
        p99_ms_at_most: at_most(0.99),
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
    fn forwarding_latency_comes_from_the_window_of_the_histogram() {
        // Requirement: the in-SFU latency covers only the packets of the measured window,
        // as the upper bounds of the buckets holding its median and 99th percentile.
        let text = |counts: [u64; 4]| {
            format!(
                "# TYPE sfu_forwarding_seconds histogram\n\
                 sfu_forwarding_seconds_bucket{{le=\"0.0001\"}} {}\n\
                 sfu_forwarding_seconds_bucket{{le=\"0.001\"}} {}\n\
                 sfu_forwarding_seconds_bucket{{le=\"0.01\"}} {}\n\
                 sfu_forwarding_seconds_bucket{{le=\"+Inf\"}} {}\n\
                 sfu_forwarding_seconds_sum 1.5\n\
                 sfu_join_seconds_bucket{{le=\"0.1\"}} 7\n",
                counts[0], counts[1], counts[2], counts[3]
            )
        };
        let a = parse_buckets(&text([900, 1000, 1000, 1000]), "sfu_forwarding_seconds");
        assert_eq!(a.len(), 4);
        assert_eq!(a[3], (f64::INFINITY, 1000));
        // 1,000 more: 950 under 0.1 ms, 40 under 1 ms, 10 under 10 ms.
        let b = parse_buckets(&text([1850, 1990, 2000, 2000]), "sfu_forwarding_seconds");
        assert_eq!(
            latency_between(&a, &b),
            Some(ForwardingLatency {
                samples: 1000,
                p50_ms_at_most: Some(0.1),
                p99_ms_at_most: Some(1.0),
            })
        );
        let slow = parse_buckets(&text([900, 1000, 1000, 2000]), "sfu_forwarding_seconds");
        let over = latency_between(&a, &slow).expect("samples");
        assert_eq!((over.p50_ms_at_most, over.p99_ms_at_most), (None, None));
        assert_eq!(latency_between(&a, &a), None, "no packet in the window");
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
