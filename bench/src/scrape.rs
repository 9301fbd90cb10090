//! The server's own view of a latency, read from its Prometheus text
//! (`GET /metrics` beside the WebSocket): a histogram scraped before and
//! after a run, and the bucket bounds its quantiles fall under. A run on one
//! machine then shows how much of what the client measured was the server's.

use anyhow::{anyhow, Context};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest `/metrics` answer read.
pub const METRICS_BYTES_MAX: usize = 8 << 20;

/// `GET /metrics` of the server whose WebSocket is at `ws_url` (`ws://HOST:PORT/ws`).
pub async fn metrics_text(ws_url: &str) -> anyhow::Result<String> {
    let host = ws_url
        .strip_prefix("ws://")
        .and_then(|r| r.split('/').next())
        .ok_or_else(|| anyhow!("not a ws:// URL: {ws_url}"))?;
    let mut s = TcpStream::connect(host).await.with_context(|| format!("connect {host}"))?;
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes()).await?;
    let mut body = Vec::new();
    (&mut s).take(METRICS_BYTES_MAX as u64).read_to_end(&mut body).await?;
    let text = String::from_utf8(body)?;
    let (_, body) = text.split_once("\r\n\r\n").ok_or_else(|| anyhow!("no HTTP body"))?;
    Ok(body.to_string())
}

/// A histogram's cumulative buckets, (upper bound, count) ascending, and
/// the sum of what it recorded (in its unit) when the server exports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    pub bounds: Vec<(f64, u64)>,
    pub sum: Option<f64>,
}

impl Buckets {
    /// The unlabelled histogram `name` in Prometheus text.
    pub fn parse(text: &str, name: &str) -> Option<Buckets> {
        Buckets::parse_labelled(text, name, "")
    }

    /// The series of histogram `name` with exactly the labels `labels`
    /// (`stage="fanout"`; empty for none), written as the server writes
    /// them: the labels, then `le`.
    pub fn parse_labelled(text: &str, name: &str, labels: &str) -> Option<Buckets> {
        let prefix = if labels.is_empty() { format!("{name}_bucket{{le=\"") } else { format!("{name}_bucket{{{labels},le=\"") };
        let sum_series = if labels.is_empty() { format!("{name}_sum ") } else { format!("{name}_sum{{{labels}}} ") };
        let mut out = Vec::new();
        let mut sum = None;
        for line in text.lines() {
            if let Some(v) = line.strip_prefix(&sum_series) {
                sum = v.trim().parse::<f64>().ok();
                continue;
            }
            let Some(rest) = line.strip_prefix(&prefix) else { continue };
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            out.push((le, count.trim().parse::<f64>().ok()? as u64));
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        (!out.is_empty()).then_some(Buckets { bounds: out, sum })
    }

    /// What was recorded between `earlier` and this scrape.
    pub fn since(&self, earlier: Option<&Buckets>) -> Buckets {
        let before = |le: f64| earlier.and_then(|e| e.bounds.iter().find(|b| b.0 == le)).map_or(0, |b| b.1);
        let sum = match (self.sum, earlier.map(|e| e.sum)) {
            (Some(now), Some(Some(then))) => Some(now - then),
            (Some(now), None) => Some(now),
            _ => None,
        };
        Buckets { bounds: self.bounds.iter().map(|&(le, n)| (le, n.saturating_sub(before(le)))).collect(), sum }
    }

    pub fn count(&self) -> u64 {
        self.bounds.last().map_or(0, |b| b.1)
    }

    /// The mean of what was recorded, in microseconds for a histogram in
    /// seconds (exact, unlike the quantiles' bucket bounds).
    pub fn mean_us(&self) -> Option<f64> {
        let n = self.count();
        self.sum.filter(|_| n > 0).map(|s| s * 1e6 / n as f64)
    }

    /// The upper bound of the bucket the `q` quantile falls in.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = (q * n as f64).ceil() as u64;
        self.bounds.iter().find(|b| b.1 >= rank).map(|b| b.0)
    }

    /// Quantile bounds in microseconds, for a histogram in seconds.
    pub fn summary_us(&self) -> BucketSummary {
        let us = |q| self.quantile_bound(q).map(|s| if s.is_finite() { (s * 1e6).round() as u64 } else { u64::MAX });
        BucketSummary { count: self.count(), mean_us: self.mean_us().map(|m| m.round() as u64), p50_le_us: us(0.5), p90_le_us: us(0.9), p99_le_us: us(0.99) }
    }
}

/// The value of counter `name` with exactly the labels `labels` (empty for
/// none), if the server exports it.
pub fn counter(text: &str, name: &str, labels: &str) -> Option<u64> {
    let series = if labels.is_empty() { format!("{name} ") } else { format!("{name}{{{labels}}} ") };
    text.lines().find_map(|l| l.strip_prefix(&series)).and_then(|v| v.trim().parse::<f64>().ok()).map(|v| v as u64)
}

/// Where a server histogram's quantiles fall: each is the upper bound of its
/// bucket (the value is at most this).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BucketSummary {
    pub count: u64,
    /// The exact mean, when the server exports the histogram's sum.
    pub mean_us: Option<u64>,
    pub p50_le_us: Option<u64>,
    pub p90_le_us: Option<u64>,
    pub p99_le_us: Option<u64>,
}

impl BucketSummary {
    pub fn line(&self) -> String {
        let f = |v: Option<u64>| match v {
            None => "-".to_string(),
            Some(u64::MAX) => "+Inf".to_string(),
            Some(us) if us >= 1000 => format!("{}ms", us as f64 / 1000.0),
            Some(us) => format!("{us}us"),
        };
        format!("n={} mean={} p50<={} p90<={} p99<={}", self.count, f(self.mean_us), f(self.p50_le_us), f(self.p90_le_us), f(self.p99_le_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE x_seconds histogram\n\
        x_seconds_bucket{le=\"0.001\"} 50\n\
        x_seconds_bucket{le=\"0.005\"} 90\n\
        x_seconds_bucket{le=\"0.01\"} 99\n\
        x_seconds_bucket{le=\"+Inf\"} 100\n\
        x_seconds_sum 0.2\nx_seconds_count 100\n\
        y_seconds_bucket{le=\"0.001\"} 7\n\
        s_seconds_bucket{stage=\"a\",le=\"0.001\"} 3\n\
        s_seconds_bucket{stage=\"a\",le=\"+Inf\"} 4\n\
        s_seconds_sum{stage=\"a\"} 0.5\n\
        s_seconds_bucket{stage=\"ab\",le=\"0.001\"} 9\n\
        s_seconds_bucket{stage=\"ab\",le=\"+Inf\"} 9\n";

    #[test]
    fn quantiles_fall_in_buckets() {
        let b = Buckets::parse(TEXT, "x_seconds").unwrap();
        assert_eq!(b.count(), 100);
        let s = b.summary_us();
        assert_eq!((s.p50_le_us, s.p90_le_us, s.p99_le_us), (Some(1000), Some(5000), Some(10_000)));
        assert_eq!(Buckets::parse(TEXT, "z_seconds"), None);
    }

    #[test]
    fn a_counter_is_read_by_its_labels() {
        let text = "c_total{action=\"gap\"} 2\nc_total{action=\"conflate\"} 17\nd_total 5\n";
        assert_eq!(counter(text, "c_total", "action=\"conflate\""), Some(17));
        assert_eq!(counter(text, "d_total", ""), Some(5));
        assert_eq!(counter(text, "c_total", "action=\"disconnect\""), None);
    }

    #[test]
    fn a_labelled_series_is_read_alone() {
        let a = Buckets::parse_labelled(TEXT, "s_seconds", "stage=\"a\"").unwrap();
        assert_eq!(a, Buckets { bounds: vec![(0.001, 3), (f64::INFINITY, 4)], sum: Some(0.5) });
        assert_eq!(Buckets::parse_labelled(TEXT, "s_seconds", "stage=\"ab\"").unwrap().sum, None);
        assert_eq!(Buckets::parse(TEXT, "s_seconds"), None, "no unlabelled series");
    }

    #[test]
    fn a_run_is_the_difference_of_two_scrapes() {
        let before = Buckets { bounds: vec![(0.001, 40), (0.005, 40), (f64::INFINITY, 40)], sum: Some(0.08) };
        let after = Buckets::parse(TEXT, "x_seconds").unwrap();
        assert_eq!(after.sum, Some(0.2));
        let run = after.since(Some(&before));
        assert_eq!(run.count(), 60);
        // 10 of the run's 60 are under 1 ms: the median is in the 5 ms bucket.
        assert_eq!(run.summary_us().p50_le_us, Some(5000));
        // 0.12 s over 60: a mean of 2 ms.
        assert_eq!(run.summary_us().mean_us, Some(2000));
        assert!(run.summary_us().line().contains("mean=2ms"), "{}", run.summary_us().line());
    }
}
