//! The machine a run is on and what a process costs: cores and CPU model
//! (from `/proc/cpuinfo`), memory, kernel, the UTC date, a process's CPU
//! time (`/proc/PID/stat`) and resident memory (`VmRSS` of
//! `/proc/PID/status`). Every run prints [`Machine::line`] so a figure is
//! never separated from the hardware it was measured on.

use serde::Serialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Clock ticks per second of `/proc/PID/stat` times (`USER_HZ`, 100 on
/// every Linux architecture the bench runs on).
pub const USER_HZ: u64 = 100;

/// The hardware and system of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub mem_total_mib: u64,
    pub kernel: String,
    /// UTC, `YYYY-MM-DD HH:MM:SS`.
    pub date: String,
    /// The 1-minute load average when the run started: other work on a
    /// shared machine shows here.
    pub loadavg_1m: String,
}

impl Machine {
    /// Reads the machine from `/proc`; unknown fields are `"unknown"` or 0.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cores_listed = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let cores = if cores_listed > 0 {
            cores_listed
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        };
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_total_mib = kib_field(&meminfo, "MemTotal:").unwrap_or(0) / 1024;
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
        Machine {
            cores,
            cpu_model,
            mem_total_mib,
            kernel,
            date: utc_date(SystemTime::now()),
            loadavg_1m: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|l| l.split_whitespace().next().map(str::to_owned))
                .unwrap_or_else(|| "unknown".into()),
        }
    }

    /// The one-line summary every run prints.
    pub fn line(&self) -> String {
        format!(
            "machine: cores={} cpu=\"{}\" mem={}MiB kernel={} date=\"{} UTC\" load1={}",
            self.cores, self.cpu_model, self.mem_total_mib, self.kernel, self.date, self.loadavg_1m
        )
    }
}

/// A `Key:   123 kB` field of `/proc/meminfo` or `/proc/PID/status`, in KiB.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Resident memory of process `pid` in KiB (`VmRSS`), if it can be read.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&status, "VmRSS:")
}

/// User plus system CPU time of process `pid` so far (all its threads).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count fields
    // after the last ')'. utime and stime are fields 14 and 15 (1-based),
    // so the 12th and 13th after the name.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// Busy CPU time of the whole machine so far (every core; idle and
/// I/O wait left out), from the first line of `/proc/stat`.
pub fn machine_busy_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: u64 = v
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    Some(Duration::from_millis(busy * 1000 / USER_HZ))
}

/// What a [`CpuMeter`] measures.
#[derive(Debug, Clone, Copy)]
enum CpuSource {
    Process(u32),
    Machine,
}

impl CpuSource {
    fn read(self) -> Option<Duration> {
        match self {
            CpuSource::Process(pid) => cpu_time(pid),
            CpuSource::Machine => machine_busy_time(),
        }
    }
}

/// CPU use of a process, or of the whole machine, over an interval, as a
/// share of one core.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    source: CpuSource,
    start_cpu: Option<Duration>,
    start: std::time::Instant,
}

impl CpuMeter {
    /// Measures process `pid`.
    pub fn start(pid: u32) -> CpuMeter {
        CpuMeter::from(CpuSource::Process(pid))
    }

    /// Measures the whole machine: the server, the bench and anything else.
    pub fn machine() -> CpuMeter {
        CpuMeter::from(CpuSource::Machine)
    }

    fn from(source: CpuSource) -> CpuMeter {
        CpuMeter {
            source,
            start_cpu: source.read(),
            start: std::time::Instant::now(),
        }
    }

    /// Percent of one core used since the start (200 = two cores busy);
    /// `None` when it could not be read.
    pub fn percent(&self) -> Option<f64> {
        let used = self.source.read()?.checked_sub(self.start_cpu?)?;
        let wall = self.start.elapsed().as_secs_f64();
        (wall > 0.0).then(|| 100.0 * used.as_secs_f64() / wall)
    }
}

/// CPU time of every thread of a process so far, by thread id, with the
/// thread's name (`/proc/PID/task/TID/{comm,stat}`).
fn thread_times(pid: u32) -> Vec<(u32, String, Duration)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            let base = format!("/proc/{pid}/task/{tid}");
            let name = std::fs::read_to_string(format!("{base}/comm")).ok()?;
            let stat = std::fs::read_to_string(format!("{base}/stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 1..];
            let mut f = rest.split_whitespace().skip(11);
            let u: u64 = f.next()?.parse().ok()?;
            let s: u64 = f.next()?.parse().ok()?;
            Some((
                tid,
                name.trim().to_owned(),
                Duration::from_millis((u + s) * 1000 / USER_HZ),
            ))
        })
        .collect()
}

/// The threads of a process that used the most CPU over an interval: where
/// a single-threaded stage saturates, its thread sits near 100%.
#[derive(Debug, Clone)]
pub struct ThreadMeter {
    pid: u32,
    start_times: Vec<(u32, String, Duration)>,
    start: std::time::Instant,
}

/// One thread's share of a core over an interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThreadCpu {
    pub name: String,
    pub tid: u32,
    pub cpu_pct: f64,
}

/// The busiest threads reported.
pub const THREADS_REPORTED_MAX: usize = 6;

impl ThreadMeter {
    pub fn start(pid: u32) -> ThreadMeter {
        ThreadMeter {
            pid,
            start_times: thread_times(pid),
            start: std::time::Instant::now(),
        }
    }

    /// The busiest threads since the start, busiest first.
    pub fn top(&self) -> Vec<ThreadCpu> {
        let wall = self.start.elapsed().as_secs_f64();
        if wall <= 0.0 {
            return Vec::new();
        }
        let mut v: Vec<ThreadCpu> = thread_times(self.pid)
            .into_iter()
            .map(|(tid, name, t)| {
                let before = self
                    .start_times
                    .iter()
                    .find(|(id, _, _)| *id == tid)
                    .map_or(Duration::ZERO, |(_, _, b)| *b);
                ThreadCpu {
                    name,
                    tid,
                    cpu_pct: 100.0 * t.saturating_sub(before).as_secs_f64() / wall,
                }
            })
            .filter(|t| t.cpu_pct > 0.0)
            .collect();
        v.sort_by(|a, b| b.cpu_pct.total_cmp(&a.cpu_pct));
        v.truncate(THREADS_REPORTED_MAX);
        v
    }
}

/// `name 93%, name 12%`.
pub fn threads_line(t: &[ThreadCpu]) -> String {
    if t.is_empty() {
        return "?".into();
    }
    t.iter()
        .map(|t| format!("{} {:.0}%", t.name, t.cpu_pct))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Formats a time as `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn utc_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// Microseconds since the Unix epoch, the unit of every `ts` on the wire.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The soft limit on open files of this process (`/proc/self/limits`).
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(utc_date(UNIX_EPOCH), "1970-01-01 00:00:00");
        let t = UNIX_EPOCH + Duration::from_secs(1_732_051_200 + 3_723);
        assert_eq!(utc_date(t), "2024-11-19 22:22:03");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc_date(leap), "2000-02-29 00:00:00");
    }

    #[test]
    fn this_process_is_measurable() {
        let pid = std::process::id();
        assert!(rss_kib(pid).is_some_and(|k| k > 0));
        assert!(cpu_time(pid).is_some());
        let busy = std::thread::spawn(|| {
            let t = std::time::Instant::now();
            let mut x = 0u64;
            while t.elapsed() < Duration::from_millis(600) {
                x = x.wrapping_add(1);
            }
            x
        });
        let m = ThreadMeter::start(pid);
        std::thread::sleep(Duration::from_millis(300));
        let top = m.top();
        busy.join().unwrap();
        assert!(
            top.iter().any(|t| t.cpu_pct > 5.0),
            "a busy thread shows: {top:?}"
        );
        let m = Machine::detect();
        assert!(m.cores >= 1);
        assert!(m.line().starts_with("machine: cores="));
    }
}
