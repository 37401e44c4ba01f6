//! A streaming validator for Data Cloud batches: UTF-8, RFC 4180 CSV, a bounded size.
//!
//! [`BatchCheck`] checks every byte of an upload as it passes on its way to the store, holding
//! nothing but a few counters, the bytes of one unfinished UTF-8 character and (for upsert
//! batches) the header row. A fault is an [`io::Error`] carrying a [`BatchFault`]; the upload
//! refuses the batch on it and keeps nothing.
//!
//! What is checked: every byte sequence is UTF-8 (a leading byte-order mark is allowed);
//! records end with CRLF or LF (a CR alone is refused); a field is either unquoted and free of
//! `"` and line breaks, or quoted, with `""` for a quote, and followed by a comma, a line end
//! or the end of the batch; every record has as many fields as the first; an upsert batch's
//! first record is its header (non-empty, distinct names); a delete batch has no header and a
//! non-empty first field (the primary key) in every record; a batch holds at least one record.
//!
//! What is not: field names against a schema, values against types — the worker's business.
//!
//! Lines are physical lines, counted from 1: a line break inside a quoted field starts a new
//! line, so an editor shows the line a fault names.

use std::fmt;
use std::io;

use crate::data::UploadCheck;

/// The longest header row kept for checking its names.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Why a batch was refused while it streamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchFault {
    /// The content is not UTF-8 RFC 4180 CSV (or breaks a rule of its operation).
    Csv {
        /// The physical line (1-based) the fault is on.
        line: u64,
        /// What is wrong, in a sentence without a final period.
        reason: String,
    },
    /// The batch grew past the dialect's size limit.
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
}

impl fmt::Display for BatchFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchFault::Csv { line, reason } => write!(f, "line {line}: {reason}"),
            BatchFault::TooLarge { limit } => {
                write!(f, "the batch exceeds the limit of {limit} bytes")
            }
        }
    }
}

impl std::error::Error for BatchFault {}

impl BatchFault {
    /// The fault an `io::Error` carries, if it is one of ours.
    pub fn of(err: &io::Error) -> Option<&BatchFault> {
        err.get_ref()
            .and_then(|inner| inner.downcast_ref::<BatchFault>())
    }

    fn into_io(self) -> io::Error {
        let kind = match self {
            BatchFault::Csv { .. } => io::ErrorKind::InvalidData,
            BatchFault::TooLarge { .. } => io::ErrorKind::FileTooLarge,
        };
        io::Error::new(kind, self)
    }
}

/// Whether the batch's first record is a header row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Upsert: a header row, then records.
    Header,
    /// Delete: records only, the primary key first.
    KeysFirst,
}

/// Where the scanner is within a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// At the start of a field (after a comma, a line end, or at the start of the batch).
    FieldStart,
    /// Inside an unquoted field.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// A `"` inside a quoted field: an escaped quote if another follows, else the end.
    QuoteInQuoted,
    /// A CR outside quotes: a LF must follow.
    AfterCr,
}

/// The streaming CSV and UTF-8 checker, fed slices of any size.
#[derive(Debug)]
pub struct CsvCheck {
    layout: Layout,
    scan: Scan,
    /// The physical line being read.
    line: u64,
    /// The line the current record started on.
    record_line: u64,
    /// The line the current quoted field opened on.
    quote_line: u64,
    /// Whether any byte of the current record was seen.
    in_record: bool,
    /// Fields finished in the current record.
    fields: u64,
    /// Content bytes of the current field.
    field_bytes: u64,
    /// Records finished.
    records: u64,
    /// The field count of the first record.
    expected: Option<u64>,
    /// The header's field names (upsert, first record only).
    header: Vec<String>,
    /// The current header field's bytes.
    header_field: Vec<u8>,
    header_bytes: usize,
    /// The start of a UTF-8 character cut by the end of the previous slice.
    pending: Vec<u8>,
    /// Whether the next byte is the first of the batch (a byte-order mark may come).
    at_start: bool,
}

impl CsvCheck {
    /// A checker for a batch of the given layout.
    pub fn new(layout: Layout) -> CsvCheck {
        CsvCheck {
            layout,
            scan: Scan::FieldStart,
            line: 1,
            record_line: 1,
            quote_line: 1,
            in_record: false,
            fields: 0,
            field_bytes: 0,
            records: 0,
            expected: None,
            header: Vec::new(),
            header_field: Vec::new(),
            header_bytes: 0,
            pending: Vec::with_capacity(4),
            at_start: true,
        }
    }

    fn fault(&self, line: u64, reason: impl Into<String>) -> BatchFault {
        BatchFault::Csv {
            line,
            reason: reason.into(),
        }
    }

    /// Checks the next bytes of the batch.
    ///
    /// # Errors
    /// The first fault found.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), BatchFault> {
        if self.at_start && !bytes.is_empty() {
            // A byte-order mark may open the batch (it may also arrive cut in pieces).
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            let seen = self.pending.len();
            let take = (BOM.len() - seen).min(bytes.len());
            if BOM[seen..seen + take] == bytes[..take] {
                if seen + take == BOM.len() {
                    self.pending.clear();
                    self.at_start = false;
                } else {
                    self.pending.extend_from_slice(&bytes[..take]);
                }
                bytes = &bytes[take..];
                if bytes.is_empty() {
                    return Ok(());
                }
            }
            self.at_start = false;
        }
        if !self.pending.is_empty() {
            let want = utf8_width(self.pending[0]);
            let take = want.saturating_sub(self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.pending.len() < want {
                return Ok(());
            }
            if std::str::from_utf8(&self.pending).is_err() {
                return Err(self.invalid_utf8());
            }
            let mut character = [0_u8; 4];
            let width = self.pending.len();
            character[..width].copy_from_slice(&self.pending);
            self.pending.clear();
            self.scan_bytes(&character[..width])?;
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => self.scan_bytes(bytes),
            Err(err) => {
                let valid = err.valid_up_to();
                self.scan_bytes(&bytes[..valid])?;
                match err.error_len() {
                    Some(_) => Err(self.invalid_utf8()),
                    None => {
                        // A character cut by the end of the slice: finish it with the next.
                        self.pending.extend_from_slice(&bytes[valid..]);
                        Ok(())
                    }
                }
            }
        }
    }

    fn invalid_utf8(&self) -> BatchFault {
        self.fault(
            self.line,
            "invalid UTF-8: the batch must be UTF-8 encoded text",
        )
    }

    /// Checks the end of the batch.
    ///
    /// # Errors
    /// An unclosed quote, a cut character, a CR at the very end, an empty batch, or a fault
    /// of the last record.
    pub fn finish(&mut self) -> Result<(), BatchFault> {
        if !self.pending.is_empty() {
            if self.at_start {
                // Only part of a byte-order mark.
                return Err(self.invalid_utf8());
            }
            return Err(self.fault(
                self.line,
                "invalid UTF-8: the batch ends inside a multi-byte character",
            ));
        }
        match self.scan {
            Scan::Quoted => {
                return Err(self.fault(
                    self.quote_line,
                    format!(
                        "unbalanced quote: the quoted field opened on line {} is never closed",
                        self.quote_line
                    ),
                ));
            }
            Scan::AfterCr => {
                return Err(self.fault(
                    self.line,
                    "carriage return not followed by a line feed (records end with CRLF or LF)",
                ));
            }
            Scan::FieldStart | Scan::Unquoted | Scan::QuoteInQuoted => {
                if self.in_record {
                    self.end_field()?;
                    self.end_record()?;
                }
            }
        }
        if self.records == 0 {
            return Err(self.fault(
                1,
                match self.layout {
                    Layout::Header => {
                        "the batch is empty: an upsert batch starts with a header row"
                    }
                    Layout::KeysFirst => {
                        "the batch is empty: a delete batch holds one record per line"
                    }
                },
            ));
        }
        Ok(())
    }

    fn scan_bytes(&mut self, bytes: &[u8]) -> Result<(), BatchFault> {
        let mut i = 0;
        let len = bytes.len();
        while i < len {
            let byte = bytes[i];
            i += 1;
            match self.scan {
                Scan::Quoted => {
                    // The common case inside quotes: content up to the next quote.
                    match byte {
                        b'"' => self.scan = Scan::QuoteInQuoted,
                        b'\n' => {
                            self.line += 1;
                            self.content(byte)?;
                        }
                        _ => self.content(byte)?,
                    }
                }
                Scan::Unquoted => match byte {
                    b',' => {
                        self.end_field()?;
                        self.scan = Scan::FieldStart;
                    }
                    b'\n' => self.line_end()?,
                    b'\r' => self.scan = Scan::AfterCr,
                    b'"' => {
                        return Err(self.fault(
                            self.line,
                            format!(
                                "a double quote inside unquoted field {}: enclose the field \
                                 in double quotes and double the quote",
                                self.fields + 1
                            ),
                        ));
                    }
                    _ => self.content(byte)?,
                },
                Scan::FieldStart => {
                    if !self.in_record {
                        self.in_record = true;
                        self.record_line = self.line;
                    }
                    match byte {
                        b'"' => {
                            self.scan = Scan::Quoted;
                            self.quote_line = self.line;
                        }
                        b',' => self.end_field()?,
                        b'\n' => self.line_end()?,
                        b'\r' => self.scan = Scan::AfterCr,
                        _ => {
                            self.scan = Scan::Unquoted;
                            self.content(byte)?;
                        }
                    }
                }
                Scan::QuoteInQuoted => match byte {
                    b'"' => {
                        self.scan = Scan::Quoted;
                        self.content(byte)?;
                    }
                    b',' => {
                        self.end_field()?;
                        self.scan = Scan::FieldStart;
                    }
                    b'\n' => self.line_end()?,
                    b'\r' => self.scan = Scan::AfterCr,
                    _ => {
                        return Err(self.fault(
                            self.line,
                            format!(
                                "unexpected text after the closing quote of field {}: a quoted \
                                 field ends at a comma or a line end (write a quote inside \
                                 it as \"\")",
                                self.fields + 1
                            ),
                        ));
                    }
                },
                Scan::AfterCr => {
                    if byte != b'\n' {
                        return Err(self.fault(
                            self.line,
                            "carriage return not followed by a line feed (records end with \
                             CRLF or LF)",
                        ));
                    }
                    self.line_end()?;
                }
            }
        }
        Ok(())
    }

    /// A content byte of the current field.
    fn content(&mut self, byte: u8) -> Result<(), BatchFault> {
        self.field_bytes += 1;
        if self.layout == Layout::Header && self.records == 0 {
            self.header_bytes += 1;
            if self.header_bytes > MAX_HEADER_BYTES {
                return Err(self.fault(
                    self.record_line,
                    format!("the header row is longer than {MAX_HEADER_BYTES} bytes"),
                ));
            }
            self.header_field.push(byte);
        }
        Ok(())
    }

    /// The end of a record's line (a LF outside quotes).
    fn line_end(&mut self) -> Result<(), BatchFault> {
        self.end_field()?;
        self.end_record()?;
        self.line += 1;
        self.scan = Scan::FieldStart;
        Ok(())
    }

    fn end_field(&mut self) -> Result<(), BatchFault> {
        self.fields += 1;
        if self.layout == Layout::KeysFirst && self.fields == 1 && self.field_bytes == 0 {
            return Err(self.fault(
                self.record_line,
                "empty primary key: a delete batch has no header row and each record starts \
                 with the primary key of the record to delete",
            ));
        }
        if self.layout == Layout::Header && self.records == 0 {
            let name = String::from_utf8_lossy(&self.header_field).into_owned();
            self.header_field.clear();
            if name.trim().is_empty() {
                return Err(self.fault(
                    self.record_line,
                    format!("header field {} has no name", self.fields),
                ));
            }
            if self.header.contains(&name) {
                return Err(self.fault(
                    self.record_line,
                    format!("header field `{name}` appears twice"),
                ));
            }
            self.header.push(name);
        }
        self.field_bytes = 0;
        Ok(())
    }

    fn end_record(&mut self) -> Result<(), BatchFault> {
        let fields = self.fields;
        match self.expected {
            None => self.expected = Some(fields),
            Some(expected) if expected != fields => {
                let first = match self.layout {
                    Layout::Header => "the header row",
                    Layout::KeysFirst => "the first record",
                };
                return Err(self.fault(
                    self.record_line,
                    format!(
                        "{} where {first} has {expected}",
                        plural(fields, "field", "fields")
                    ),
                ));
            }
            Some(_) => {}
        }
        if self.records == 0 {
            self.header = Vec::new();
            self.header_field = Vec::new();
        }
        self.records += 1;
        self.fields = 0;
        self.in_record = false;
        Ok(())
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The length of the UTF-8 character a leading byte starts (1 for anything else, which the
/// decoder then refuses).
fn utf8_width(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// The check of an uploaded batch: CSV via [`CsvCheck`] and the size limit, fed as the
/// bytes arrive. A fault is an [`io::Error`] carrying its [`BatchFault`].
#[derive(Debug)]
pub struct BatchCheck {
    check: CsvCheck,
    limit: u64,
    total: u64,
}

impl BatchCheck {
    /// Checks a batch of `layout` of at most `limit` bytes.
    pub fn new(layout: Layout, limit: u64) -> BatchCheck {
        BatchCheck {
            check: CsvCheck::new(layout),
            limit,
            total: 0,
        }
    }
}

impl UploadCheck for BatchCheck {
    fn feed(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.total += bytes.len() as u64;
        if self.total > self.limit {
            return Err(BatchFault::TooLarge { limit: self.limit }.into_io());
        }
        self.check.feed(bytes).map_err(BatchFault::into_io)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.check.finish().map_err(BatchFault::into_io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(layout: Layout, text: &[u8]) -> Result<(), BatchFault> {
        let mut check = CsvCheck::new(layout);
        check.feed(text)?;
        check.finish()
    }

    /// Every split of the input in two and byte by byte gives the same verdict as one piece.
    fn verdict(layout: Layout, text: &[u8]) -> Result<(), BatchFault> {
        let whole = check(layout, text);
        for cut in 0..=text.len() {
            let mut split = CsvCheck::new(layout);
            let got = split
                .feed(&text[..cut])
                .and_then(|()| split.feed(&text[cut..]))
                .and_then(|()| split.finish());
            assert_eq!(
                got,
                whole,
                "cut at {cut} of {:?}",
                String::from_utf8_lossy(text)
            );
        }
        let mut bytewise = CsvCheck::new(layout);
        let got = text
            .iter()
            .try_for_each(|b| bytewise.feed(std::slice::from_ref(b)))
            .and_then(|()| bytewise.finish());
        assert_eq!(got, whole, "byte by byte");
        whole
    }

    fn line_of(result: Result<(), BatchFault>) -> (u64, String) {
        match result {
            Err(BatchFault::Csv { line, reason }) => (line, reason),
            other => panic!("expected a CSV fault, got {other:?}"),
        }
    }

    #[test]
    fn good_batches_pass() {
        let good: &[&[u8]] = &[
            b"id,name\n1,a\n2,b\n",
            b"id,name\r\n1,a\r\n2,b\r\n",
            b"id,name\n1,a\n2,b",
            b"id,name\r\n1,a\n2,b",
            b"id,name\n1,\"a, \"\"quoted\"\"\nvalue\"\n2,\"\"\n",
            b"id,name\n1,\n2,x\n",
            b"\xEF\xBB\xBFid,name\n1,\xC3\xA9t\xC3\xA9\n2,\xF0\x9F\x98\x80\n",
            b"id,name\n",
            b"id\n\n",
        ];
        for text in good {
            assert_eq!(verdict(Layout::Header, text), Ok(()), "{text:?}");
        }
        assert_eq!(verdict(Layout::KeysFirst, b"k1\nk2\r\n\"k,3\"\n"), Ok(()));
        assert_eq!(verdict(Layout::KeysFirst, b"k1,x\nk2,y"), Ok(()));
    }

    #[test]
    fn faults_name_their_line() {
        let cases: &[(Layout, &[u8], u64, &str)] = &[
            (
                Layout::Header,
                b"id,name\n1,\"open\n2,b\n",
                2,
                "unbalanced quote",
            ),
            (
                Layout::Header,
                b"id,name\n1,a\n2,b,c\n",
                3,
                "3 fields where the header row has 2",
            ),
            (Layout::Header, b"id,name\n1,a\n2\n", 3, "1 field where"),
            (
                Layout::Header,
                b"id,name\n1,\"x\ny\"\n2\n",
                4,
                "1 field where",
            ),
            (Layout::Header, b"id,name\n1,a\xFF\n", 2, "invalid UTF-8"),
            (Layout::Header, b"id,name\n1,a\n2,\xC3", 3, "multi-byte"),
            (
                Layout::Header,
                b"id,name\n1,a\"b\n",
                2,
                "double quote inside unquoted field 2",
            ),
            (
                Layout::Header,
                b"id,name\n1,\"a\"b\n",
                2,
                "after the closing quote of field 2",
            ),
            (Layout::Header, b"id,name\r1,a\n", 1, "carriage return"),
            (Layout::Header, b"id,name\n1,a\r", 2, "carriage return"),
            (Layout::Header, b"", 1, "empty"),
            (Layout::Header, b"id,id\n1,2\n", 1, "appears twice"),
            (Layout::Header, b"id,\n1,2\n", 1, "no name"),
            (Layout::KeysFirst, b"k1\n\n", 2, "empty primary key"),
            (Layout::KeysFirst, b"k1,a\n,b\n", 2, "empty primary key"),
            (
                Layout::KeysFirst,
                b"k1,a\nk2\n",
                2,
                "where the first record has 2",
            ),
            (Layout::KeysFirst, b"", 1, "empty"),
        ];
        for (layout, text, line, words) in cases {
            let (got_line, reason) = line_of(verdict(*layout, text));
            assert_eq!(got_line, *line, "{text:?}: {reason}");
            assert!(reason.contains(words), "{text:?}: {reason}");
        }
    }

    #[test]
    fn the_batch_check_takes_a_good_batch_and_stops_at_the_limit_or_a_fault() {
        let text = b"id,name\n1,a\n";
        let mut check = BatchCheck::new(Layout::Header, 100);
        for piece in text.chunks(3) {
            check.feed(piece).unwrap_or_else(|e| panic!("{e}"));
        }
        check.finish().unwrap_or_else(|e| panic!("{e}"));

        let mut check = BatchCheck::new(Layout::Header, 5);
        let err = check.feed(text).err().unwrap_or_else(|| panic!("no error"));
        assert_eq!(
            BatchFault::of(&err),
            Some(&BatchFault::TooLarge { limit: 5 })
        );

        let mut check = BatchCheck::new(Layout::Header, 100);
        let bad = b"id,name\n1,\"a\n";
        check.feed(bad).unwrap_or_else(|e| panic!("{e}"));
        let err = check.finish().err().unwrap_or_else(|| panic!("no error"));
        assert!(matches!(
            BatchFault::of(&err),
            Some(BatchFault::Csv { line: 2, .. })
        ));
    }
}
