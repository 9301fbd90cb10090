//! Latency histograms and counters.
//!
//! Latencies are recorded in microseconds into an hdrhistogram covering
//! 1 us to [`LATENCY_US_MAX`] at three significant digits; a value above
//! the range is recorded at the top (and shows as the max). Reports carry a
//! [`LatencySummary`] (count, mean, p50, p90, p99, p99.9, max), never raw
//! samples.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;

/// The largest latency a histogram distinguishes: one minute.
pub const LATENCY_US_MAX: u64 = 60_000_000;
/// Significant decimal digits kept by every histogram.
pub const SIGFIG: u8 = 3;

/// Latencies a [`Samples`] buffer holds before it folds them into its
/// histogram.
pub const SAMPLES_MAX: usize = 1 << 16;

/// Latencies in microseconds kept as a plain list and folded into a
/// [`Latency`] only when the list is full or read. A full histogram is
/// about 130 KiB; one per subscriber for a thousand subscribers would make
/// every record a cache miss, and the measuring client would spend its CPU
/// on that instead of reading its sockets.
#[derive(Debug, Default)]
pub struct Samples {
    list: Vec<u32>,
    folded: Option<Latency>,
}

impl Samples {
    pub fn record_us(&mut self, us: u64) {
        if self.list.len() == SAMPLES_MAX {
            self.fold();
        }
        self.list.push(u32::try_from(us).unwrap_or(u32::MAX));
    }

    fn fold(&mut self) {
        let h = self.folded.get_or_insert_with(Latency::new);
        for us in self.list.drain(..) {
            h.record_us(u64::from(us));
        }
    }

    /// Everything recorded, as a histogram.
    pub fn into_latency(mut self) -> Latency {
        self.fold();
        self.folded.unwrap_or_default()
    }
}

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    pub fn new() -> Latency {
        Latency(
            Histogram::new_with_bounds(1, LATENCY_US_MAX, SIGFIG)
                .expect("constant histogram bounds are valid"),
        )
    }

    /// Records one latency; 0 is recorded as 1 us (the lowest bucket).
    pub fn record_us(&mut self, us: u64) {
        self.0.saturating_record(us.max(1));
    }

    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        self.0
            .add(&other.0)
            .expect("histograms with equal bounds add");
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn summary(&self) -> LatencySummary {
        let h = &self.0;
        let q = |p: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(p)
            }
        };
        LatencySummary {
            count: h.len(),
            mean_us: if h.is_empty() { 0.0 } else { h.mean() },
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if h.is_empty() { 0 } else { h.max() },
        }
    }
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    /// `p50=.. p90=.. p99=.. p99.9=.. max=..` with units.
    pub fn line(&self) -> String {
        format!(
            "n={} p50={} p90={} p99={} p99.9={} max={}",
            self.count,
            fmt_us(self.p50_us),
            fmt_us(self.p90_us),
            fmt_us(self.p99_us),
            fmt_us(self.p999_us),
            fmt_us(self.max_us)
        )
    }
}

/// A duration in microseconds written with a readable unit.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

/// Counts by name (rejects by error code, answers by status).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Counts(pub BTreeMap<String, u64>);

impl Counts {
    pub fn add(&mut self, key: &str, n: u64) {
        if let Some(v) = self.0.get_mut(key) {
            *v += n;
        } else {
            self.0.insert(key.to_owned(), n);
        }
    }

    pub fn merge(&mut self, other: &Counts) {
        for (k, v) in &other.0 {
            self.add(k, *v);
        }
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// `a=1 b=2`, or `none`.
    pub fn line(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_what_was_recorded() {
        let mut h = Latency::new();
        for us in 1..=1000 {
            h.record_us(us);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert!((495..=505).contains(&s.p50_us), "{s:?}");
        assert!((985..=995).contains(&s.p99_us), "{s:?}");
        assert_eq!(s.max_us, 1000);
        let mut other = Latency::new();
        other.record_us(LATENCY_US_MAX * 10);
        h.merge(&other);
        assert_eq!(h.count(), 1001);
        assert!(h.summary().max_us >= LATENCY_US_MAX);
    }

    #[test]
    fn empty_histograms_summarise_to_zero() {
        assert_eq!(Latency::new().summary(), LatencySummary::default());
    }

    #[test]
    fn counts_merge_by_key() {
        let mut a = Counts::default();
        a.add("price_band", 2);
        let mut b = Counts::default();
        b.add("price_band", 1);
        b.add("unknown_order", 5);
        a.merge(&b);
        assert_eq!(a.line(), "price_band=3 unknown_order=5");
        assert_eq!(a.total(), 8);
    }
}
