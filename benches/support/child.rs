//! A benchmark phase run in a child process (this benchmark's own executable again), so that
//! nothing the parent did inflates its memory figures. The child prints its report as usual and
//! ends with one line of `name=value` pairs after a prefix; the parent passes the report through
//! and reads the figures from that line.

use std::ffi::OsStr;

use anyhow::{bail, Context};

/// The `name=value` pairs a child reported.
pub struct ChildResult {
    fields: String,
    what: &'static str,
}

/// Runs this executable with `args`, echoes the child's output but the line after `prefix`, and
/// returns that line. `what` names the phase in errors.
pub fn run<I, S>(args: I, prefix: &str, what: &'static str) -> anyhow::Result<ChildResult>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let exe = std::env::current_exe().context("cannot find the benchmark's own executable")?;
    let output = std::process::Command::new(exe)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {what} in a child process"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut fields = None;
    for line in stdout.lines() {
        match line.strip_prefix(prefix) {
            Some(found) => fields = Some(found.to_string()),
            None => println!("{line}"),
        }
    }
    if !output.status.success() {
        bail!("{what} failed: {}", output.status);
    }
    let fields = fields.with_context(|| format!("{what} printed no result"))?;
    Ok(ChildResult { fields, what })
}

impl ChildResult {
    pub fn field<T: std::str::FromStr>(&self, name: &str) -> anyhow::Result<T> {
        self.fields
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .and_then(|value| value.parse().ok())
            .with_context(|| format!("no {name} in the result of {} {:?}", self.what, self.fields))
    }
}
