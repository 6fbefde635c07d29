//! Aligned text columns, the way kubectl prints them: left-aligned cells, each
//! column as wide as its widest cell, three spaces between columns, no trailing
//! spaces.

const GAP: usize = 3;

pub(crate) struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: Vec<&'static str>) -> Self {
        Self {
            header,
            rows: Vec::new(),
        }
    }

    /// Adds a row; it must have one cell per header column.
    pub(crate) fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.header.len(), "row width");
        self.rows.push(row);
    }

    pub(crate) fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let mut out = String::new();
        let header = self.header.iter().copied();
        write_line(&mut out, header, &widths);
        for row in &self.rows {
            write_line(&mut out, row.iter().map(String::as_str), &widths);
        }
        out
    }
}

fn write_line<'a>(out: &mut String, cells: impl Iterator<Item = &'a str>, widths: &[usize]) {
    let mut line = String::new();
    for (cell, w) in cells.zip(widths) {
        line.push_str(cell);
        let pad = w - width(cell) + GAP;
        line.extend(std::iter::repeat_n(' ', pad));
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// Display width, counting characters (cells are ASCII but node names need not be).
fn width(s: &str) -> usize {
    s.chars().count()
}

/// Character offsets at which columns start in `line`: the first character, and
/// every character that follows a run of two or more spaces. Cells hold at most
/// single spaces ("DISK READ"), so this finds column starts without knowing them.
#[cfg(test)]
pub(crate) fn column_starts(line: &str) -> Vec<usize> {
    let chars: Vec<char> = line.chars().collect();
    let mut starts = Vec::new();
    for (i, c) in chars.iter().enumerate() {
        if *c == ' ' {
            continue;
        }
        if i == 0 || (i >= 2 && chars[i - 1] == ' ' && chars[i - 2] == ' ') {
            starts.push(i);
        }
    }
    starts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_start_at_the_same_offset_in_every_row() {
        let mut t = Table::new(vec!["NAME", "DISK READ", "AGE"]);
        t.push(vec!["a".into(), "12.3MB/s".into(), "3s".into()]);
        t.push(vec![
            "a-much-longer-name".into(),
            "0B/s".into(),
            "<unknown>".into(),
        ]);
        t.push(vec!["nöde".into(), "<unknown>".into(), "2m".into()]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0], "NAME                 DISK READ   AGE",
            "header padded to the widest cell plus three spaces"
        );
        for line in &lines {
            assert_eq!(column_starts(line), vec![0, 21, 33], "line {line:?}");
            assert_eq!(line.trim_end(), *line, "no trailing spaces");
        }
        assert_eq!(lines[3], "nöde                 <unknown>   2m");
    }

    #[test]
    fn a_table_without_rows_is_its_header() {
        let t = Table::new(vec!["NAME", "STATUS"]);
        assert_eq!(t.render(), "NAME   STATUS\n");
    }
}
