//! The summary table the ingest and rebuild benchmarks end with: one row per figure, against its
//! target, printed aligned for the terminal and again as Markdown for docs/benchmarks.md.
//! Included by each bench with `#[path]` (a bench is its own crate).

/// One line of the summary: a name, a value, and a target it meets or misses.
pub struct Row {
    pub name: String,
    pub value: String,
    pub target: String,
    pub verdict: &'static str,
}

impl Row {
    pub fn new(name: impl Into<String>, value: String, target: &str, met: Option<bool>) -> Row {
        Row {
            name: name.into(),
            value,
            target: target.into(),
            verdict: match met {
                Some(true) => "PASS",
                Some(false) => "MISS",
                None => "—",
            },
        }
    }
}

/// The rows aligned for the terminal; `notes` go under them, before the Markdown table headed
/// `Markdown (label):`.
pub fn print(rows: &[Row], notes: &[&str], label: &str) {
    let width = |field: fn(&Row) -> &str| {
        rows.iter()
            .map(|row| field(row).chars().count())
            .max()
            .unwrap_or(0)
    };
    let (names, values, targets) = (
        width(|r| &r.name),
        width(|r| &r.value),
        width(|r| &r.target),
    );
    for row in rows {
        println!(
            "{:<names$}  {:>values$}  target {:<targets$}  {}",
            row.name, row.value, row.target, row.verdict
        );
    }
    for note in notes {
        println!("note: {note}");
    }
    println!();
    println!("Markdown ({label}):");
    println!();
    println!("| figure | value | target | result |");
    println!("|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {} | {} |",
            row.name, row.value, row.target, row.verdict
        );
    }
}
