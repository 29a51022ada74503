//! The report: rows of figures, each beside the floor it is compared with, printed as one
//! aligned table or as JSON.

use serde_json::{json, Value};

/// The groups of the table, in print order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Section {
    Floors,
    Warm,
    Cold,
    Async,
    Control,
    Memory,
}

impl Section {
    fn key(self) -> &'static str {
        match self {
            Section::Floors => "floors",
            Section::Warm => "warm",
            Section::Cold => "cold",
            Section::Async => "async",
            Section::Control => "control",
            Section::Memory => "memory",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Section::Floors => "Floors (what the machine does without lamina)",
            Section::Warm => "Warm invoke (sync, keep-alive, one connection per client)",
            Section::Cold => "Cold start (new environment each time; invoke to response)",
            Section::Async => "Async (Event) invoke",
            Section::Control => "Control plane",
            Section::Memory => "Memory",
        }
    }
}

/// What a value measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Seconds (printed as µs, ms or s).
    Secs,
    /// Per second.
    PerSec,
    /// Bytes (printed as KiB or MiB).
    Bytes,
}

impl Unit {
    fn key(self) -> &'static str {
        match self {
            Unit::Secs => "s",
            Unit::PerSec => "1/s",
            Unit::Bytes => "bytes",
        }
    }
}

/// A floor measured in this run, by the id it has in the table (`F1`, `F2`, ...).
#[derive(Debug, Clone)]
pub(crate) struct Floor {
    pub(crate) id: String,
    pub(crate) value: f64,
}

/// One figure.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    section: Section,
    /// Set when the row is itself a floor.
    floor_id: Option<String>,
    subject: String,
    stat: String,
    isolation: Option<String>,
    n: Option<usize>,
    value: f64,
    unit: Unit,
    vs: Option<Floor>,
}

impl Row {
    pub(crate) fn new(
        section: Section,
        subject: impl Into<String>,
        stat: impl Into<String>,
        value: f64,
        unit: Unit,
    ) -> Row {
        Row {
            section,
            floor_id: None,
            subject: subject.into(),
            stat: stat.into(),
            isolation: None,
            n: None,
            value,
            unit,
            vs: None,
        }
    }

    /// How many samples the figure comes from.
    pub(crate) fn n(mut self, n: usize) -> Row {
        self.n = Some(n);
        self
    }

    /// The floor this figure is compared with.
    pub(crate) fn vs(mut self, floor: &Floor) -> Row {
        self.vs = Some(floor.clone());
        self
    }

    /// The isolation level the function ran at.
    pub(crate) fn iso(mut self, level: &str) -> Row {
        self.isolation = Some(level.to_string());
        self
    }

    fn ratio(&self) -> Option<f64> {
        self.vs
            .as_ref()
            .filter(|f| f.value != 0.0)
            .map(|f| self.value / f.value)
    }

    fn minus_floor(&self) -> Option<f64> {
        match (self.unit, &self.vs) {
            (Unit::Secs | Unit::Bytes, Some(f)) => Some(self.value - f.value),
            _ => None,
        }
    }
}

/// Everything one run measured.
#[derive(Debug, Default)]
pub(crate) struct Report {
    rows: Vec<Row>,
    floors: usize,
    notes: Vec<String>,
}

impl Report {
    /// Add a floor row (usually in [`Section::Floors`]); returns the handle other rows compare
    /// with.
    pub(crate) fn floor(&mut self, mut row: Row) -> Floor {
        self.floors += 1;
        let id = format!("F{}", self.floors);
        row.floor_id = Some(id.clone());
        let floor = Floor {
            id,
            value: row.value,
        };
        self.rows.push(row);
        floor
    }

    pub(crate) fn add(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// A line printed under the table.
    pub(crate) fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        if !self.notes.contains(&text) {
            self.notes.push(text);
        }
    }

    fn sorted(&self) -> Vec<&Row> {
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        rows.sort_by_key(|r| r.section);
        rows
    }

    pub(crate) fn to_json(&self, header: Value) -> Value {
        let rows: Vec<Value> = self
            .sorted()
            .into_iter()
            .map(|r| {
                json!({
                    "section": r.section.key(),
                    "floor_id": r.floor_id,
                    "subject": r.subject,
                    "stat": r.stat,
                    "isolation": r.isolation,
                    "n": r.n,
                    "value": r.value,
                    "unit": r.unit.key(),
                    "floor": r.vs.as_ref().map(|f| json!({"id": f.id, "value": f.value})),
                    "ratio": r.ratio(),
                    "minus_floor": r.minus_floor(),
                })
            })
            .collect();
        let mut out = header;
        out["rows"] = Value::Array(rows);
        out["notes"] = json!(self.notes);
        out
    }

    /// The aligned table.
    pub(crate) fn to_table(&self) -> String {
        const HEAD: [&str; 8] = [
            "", "stat", "iso", "n", "value", "floor", "ratio", "overhead",
        ];
        let mut cells: Vec<Option<[String; 8]>> = Vec::new();
        let mut titles = Vec::new();
        let mut last = None;
        for r in self.sorted() {
            if last != Some(r.section) {
                last = Some(r.section);
                titles.push((cells.len(), r.section.title()));
                cells.push(None);
            }
            let subject = match &r.floor_id {
                Some(id) => format!("  {id:<4}{}", r.subject),
                None => format!("      {}", r.subject),
            };
            cells.push(Some([
                subject,
                r.stat.clone(),
                r.isolation.clone().unwrap_or_default(),
                r.n.map(thousands).unwrap_or_default(),
                fmt(r.value, r.unit),
                r.vs.as_ref()
                    .map(|f| format!("{} {}", fmt(f.value, r.unit), f.id))
                    .unwrap_or_default(),
                r.ratio().map(fmt_ratio).unwrap_or_default(),
                r.minus_floor()
                    .map(|d| {
                        let sign = if d < 0.0 { "-" } else { "+" };
                        format!("{sign}{}", fmt(d.abs(), r.unit))
                    })
                    .unwrap_or_default(),
            ]));
        }
        let mut width = HEAD.map(str::len);
        for c in cells.iter().flatten() {
            for (w, s) in width.iter_mut().zip(c) {
                *w = (*w).max(s.chars().count());
            }
        }
        let line = |c: &[String; 8]| {
            let mut s = String::new();
            for (i, (cell, w)) in c.iter().zip(width).enumerate() {
                let pad = w - cell.chars().count();
                // Text columns left-aligned, numbers right-aligned.
                if i < 3 {
                    s.push_str(cell);
                    s.push_str(&" ".repeat(pad));
                } else {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(cell);
                }
                s.push_str("  ");
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = line(&HEAD.map(String::from));
        let mut title_iter = titles.into_iter().peekable();
        for (i, c) in cells.iter().enumerate() {
            match c {
                Some(c) => out.push_str(&line(c)),
                None => {
                    if let Some((_, t)) = title_iter.next_if(|(at, _)| *at == i) {
                        out.push_str(t);
                        out.push('\n');
                    }
                }
            }
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                out.push_str("- ");
                out.push_str(n);
                out.push('\n');
            }
        }
        out
    }
}

/// `12345` → `12,345`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let groups: Vec<&str> = s
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| std::str::from_utf8(g).unwrap_or_default())
        .collect();
    groups.join(",")
}

/// Three significant digits.
fn sig3(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

pub(crate) fn fmt(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Secs => {
            let a = v.abs();
            let sign = if v < 0.0 { "-" } else { "" };
            if a < 1e-3 {
                format!("{sign}{} µs", sig3(a * 1e6))
            } else if a < 1.0 {
                format!("{sign}{} ms", sig3(a * 1e3))
            } else {
                format!("{sign}{} s", sig3(a))
            }
        }
        Unit::PerSec if v >= 100.0 => format!("{}/s", thousands(v.round() as usize)),
        Unit::PerSec => format!("{}/s", sig3(v)),
        Unit::Bytes if v.abs() >= 1024.0 * 1024.0 => format!("{} MiB", sig3(v / 1048576.0)),
        Unit::Bytes => format!("{} KiB", sig3(v / 1024.0)),
    }
}

fn fmt_ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}x")
    } else {
        format!("{r:.2}x")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(fmt(0.0000281, Unit::Secs), "28.1 µs");
        assert_eq!(fmt(0.0153, Unit::Secs), "15.3 ms");
        assert_eq!(fmt(2.5, Unit::Secs), "2.50 s");
        assert_eq!(fmt(12345.4, Unit::PerSec), "12,345/s");
        assert_eq!(fmt(3.0 * 1048576.0, Unit::Bytes), "3.00 MiB");
    }

    #[test]
    fn table_has_sections_floors_and_ratios() {
        let mut r = Report::default();
        let f = r.floor(Row::new(Section::Floors, "rtt", "p50", 20e-6, Unit::Secs).n(10));
        r.add(
            Row::new(Section::Warm, "rust", "p50", 60e-6, Unit::Secs)
                .vs(&f)
                .iso("process"),
        );
        let t = r.to_table();
        assert!(t.contains("F1"), "{t}");
        assert!(t.contains("3.00x"), "{t}");
        assert!(t.contains("+40.0 µs"), "{t}");
        assert!(t.find("Floors").unwrap() < t.find("Warm").unwrap(), "{t}");
        let j = r.to_json(json!({}));
        assert_eq!(j["rows"][1]["floor"]["id"], "F1");
    }
}
