//! Plain-text tables for the summaries, and number formatting.

use std::fmt;

/// A table with a header row, printed with aligned columns (text left, numbers right).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<S: ToString>(header: &[S]) -> Self {
        Table {
            header: header.iter().map(ToString::to_string).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (one cell per column).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(cell.chars().count());
                }
            }
        }
        widths
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let widths = self.widths();
        let line = |f: &mut fmt::Formatter<'_>, cells: &[String]| -> fmt::Result {
            let mut text = String::from(" ");
            for (i, cell) in cells.iter().enumerate() {
                let width = widths.get(i).copied().unwrap_or(0);
                // The first column names the row; the others hold numbers.
                if i == 0 {
                    text.push_str(&format!(" {cell:<width$}"));
                } else {
                    text.push_str(&format!("  {cell:>width$}"));
                }
            }
            writeln!(f, "{}", text.trim_end())
        };
        line(f, &self.header)?;
        let total: usize = widths.iter().sum::<usize>() + 2 * widths.len();
        writeln!(f, "  {}", "-".repeat(total.saturating_sub(1)))?;
        for row in &self.rows {
            line(f, row)?;
        }
        Ok(())
    }
}

/// A fixed-point number with `decimals` decimals, or "-" when it is missing or not finite.
pub fn number(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "-".to_string(),
    }
}

/// A number in scientific notation with three significant digits (for values spanning
/// decades, such as per-layer standard deviations).
pub fn scientific(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.2e}")
    } else {
        format!("{value}")
    }
}

/// A fraction as a percentage with one decimal.
pub fn percent(fraction: f64) -> String {
    format!("{:.1}%", 100.0 * fraction)
}

/// An epoch count, or "never" when a threshold was not reached.
pub fn epoch(epoch: Option<usize>) -> String {
    epoch.map_or_else(|| "never".to_string(), |e| e.to_string())
}

/// About ten epochs spread over `0..=epochs` (every `epochs / 10`-th, the first and the last),
/// plus the `extra` ones of interest, sorted: the rows a long training table shows.
pub fn epochs_to_show(epochs: usize, extra: &[usize]) -> Vec<usize> {
    let step = epochs.div_ceil(10).max(1);
    let mut shown: Vec<usize> = (0..=epochs)
        .filter(|e| *e <= 1 || e % step == 0 || *e == epochs)
        .chain(extra.iter().copied())
        .collect();
    shown.sort_unstable();
    shown.dedup();
    shown
}
