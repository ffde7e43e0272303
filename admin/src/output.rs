//! How every command prints what it found: one JSON array with `--json`
//! (every field, whole), otherwise a table a person reads — aligned columns
//! under a header, long cells shortened, times in UTC.

use std::io::Write;

use kefu_bridge::clock::utc_parts;
use serde::Serialize;

/// One line of a list, both ways it can be printed.
pub trait Row: Serialize {
    /// The table's column titles.
    const HEADER: &'static [&'static str];
    /// This row's cells, in the header's order.
    fn cells(&self) -> Vec<String>;
}

/// Prints `rows` as one JSON array (`json`) or as a table; `empty` is the
/// table's line when there are none.
pub fn print_rows<R: Row>(
    out: &mut dyn Write,
    json: bool,
    rows: &[R],
    empty: &str,
) -> std::io::Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, rows)?;
        writeln!(out)
    } else {
        let cells: Vec<Vec<String>> = rows.iter().map(Row::cells).collect();
        out.write_all(render(R::HEADER, &cells, empty).as_bytes())
    }
}

/// A cell is cut to this many characters in the table.
const MAX_CELL_CHARS: usize = 60;

/// Epoch seconds as RFC 3339 UTC (`2026-11-29T21:23:18Z`); empty for 0
/// (never set).
pub fn utc(epoch_secs: i64) -> String {
    if epoch_secs <= 0 {
        return String::new();
    }
    let (year, month, day, hour, minute, second) = utc_parts(epoch_secs);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// `rows` under `header`, columns padded to their widest cell, two spaces
/// apart; a line saying so when there are no rows.
pub fn render(header: &[&str], rows: &[Vec<String>], empty: &str) -> String {
    if rows.is_empty() {
        return format!("{empty}\n");
    }
    let cells: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| h.to_string()).collect())
        .chain(
            rows.iter()
                .map(|row| row.iter().map(|cell| shortened(cell)).collect()),
        )
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            cells
                .iter()
                .map(|row| row.get(column).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// One line, at most [`MAX_CELL_CHARS`] characters (an ellipsis marks a cut).
fn shortened(cell: &str) -> String {
    let one_line: String = cell
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= MAX_CELL_CHARS {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(MAX_CELL_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(0), "");
    }

    #[test]
    fn columns_line_up_and_long_cells_are_cut() {
        let long = "x".repeat(100);
        let table = render(
            &["ID", "REASON"],
            &[
                vec!["a".into(), "short".into()],
                vec!["bbb".into(), long.clone()],
            ],
            "none",
        );
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "ID   REASON");
        assert_eq!(lines[1], "a    short");
        assert!(lines[2].starts_with("bbb  xxx"));
        assert_eq!(lines[2].chars().count(), 5 + MAX_CELL_CHARS);
        assert!(lines[2].ends_with('…'));
        assert_eq!(
            render(&["ID"], &[], "No dead letters."),
            "No dead letters.\n"
        );
    }

    #[test]
    fn a_cell_never_breaks_the_line() {
        let table = render(&["A"], &[vec!["one\ntwo".into()]], "");
        assert_eq!(table.lines().count(), 2);
    }
}
