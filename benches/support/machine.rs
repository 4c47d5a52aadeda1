//! What the benchmarks print about the machine and how they format figures. Included by each
//! bench with `#[path]` (a bench is its own crate).

use std::time::Duration;

use anyhow::Context;

pub fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

/// The first three fields of `/proc/loadavg`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// What the figures were measured on.
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory: String,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let field = |text: &str, name: &str| -> Option<String> {
            text.lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.split_once(':'))
                .map(|(_, value)| value.trim().to_string())
        };
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown CPU".into()),
            memory: field(&meminfo, "MemTotal")
                .and_then(|kb| kb.trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or("unknown memory".into(), |kib| {
                    format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0))
                }),
        }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} cores, {}, {}", self.cores, self.cpu, self.memory)
    }
}

/// A `kB` field (`VmRSS:`, `VmHWM:`, ...) of `/proc/<process>/status`; `process` is a pid or
/// `self`.
pub fn proc_status_kib(process: impl std::fmt::Display, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{process}/status");
    let status = std::fs::read_to_string(&path)
        .with_context(|| format!("memory figures need {path} (Linux)"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} line in {path}"))
}
