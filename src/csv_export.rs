//! CSV for the spreadsheets managers and IT open exports in: RFC 4180 by
//! the `csv` crate (quoting, CRLF line ends), plus one guard of our own: a
//! cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, a tab or a
//! carriage return first) gets an apostrophe in front, so a reason typed
//! as `=HYPERLINK(...)` stays text (CSV injection).

/// One CSV line (with its CRLF) of these cells.
pub fn line<I, S>(cells: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(256));
    let guarded: Vec<String> = cells.into_iter().map(|c| guard(c.as_ref())).collect();
    // Writing to a Vec cannot fail; a failure would only lose this line.
    if let Err(e) = writer.write_record(&guarded) {
        tracing::error!(error = %e, "cannot encode a CSV line");
        return String::new();
    }
    match writer.into_inner() {
        Ok(bytes) => String::from_utf8(bytes).unwrap_or_default(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a CSV line");
            String::new()
        }
    }
}

/// The cell as text a spreadsheet will not evaluate.
fn guard(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_as_needed_and_formulas_disarmed() {
        assert_eq!(line(["1", "Millom", ""]), "1,Millom,\r\n");
        assert_eq!(
            line(["a,b", "say \"hi\"", "two\nlines"]),
            "\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n"
        );
        assert_eq!(
            line(["=HYPERLINK(\"x\")", "+1", "-2", "@SUM(A1)", "ok"]),
            "\"'=HYPERLINK(\"\"x\"\")\",'+1,'-2,'@SUM(A1),ok\r\n"
        );
    }
}
