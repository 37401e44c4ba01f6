//! A streaming validator for CSV batches of the APIs modelled on Salesforce Bulk API 2.0:
//! UTF-8 and RFC 4180 CSV with the column delimiter and line ending a job chose
//! ([`CsvRules`]), as `docs/dialect-datacloud.md` and `docs/dialect-bulk2.md` (Uploads)
//! describe; the store bounds their size.
//!
//! [`CsvCheck`] checks every byte of an upload as it passes on its way to the store, holding
//! nothing but a few counters, the bytes of one unfinished UTF-8 character and (for upsert
//! batches) the header row. A fault is an [`io::Error`] carrying a [`CsvFault`], which names
//! the physical line (a line break inside a quoted field starts a new one); the upload refuses
//! the batch on it and keeps nothing.

use std::fmt;
use std::io;

use crate::data::UploadCheck;

/// The longest header row kept for checking its names.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// A UTF-8 byte-order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Why a batch was refused while it streamed: it is not UTF-8 RFC 4180 CSV, or breaks a rule
/// of its operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CsvFault {
    /// The physical line (1-based) the fault is on.
    line: u64,
    /// What is wrong, in a sentence without a final period.
    reason: String,
}

impl fmt::Display for CsvFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for CsvFault {}

impl CsvFault {
    fn at(line: u64, reason: impl Into<String>) -> CsvFault {
        CsvFault {
            line,
            reason: reason.into(),
        }
    }

    /// The fault an `io::Error` carries, if it is one of ours.
    pub(crate) fn of(err: &io::Error) -> Option<&CsvFault> {
        err.get_ref()
            .and_then(|inner| inner.downcast_ref::<CsvFault>())
    }
}

impl From<CsvFault> for io::Error {
    fn from(fault: CsvFault) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, fault)
    }
}

/// How records end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineEnding {
    /// LF or CRLF, mixed at will; a CR outside quotes must be followed by a LF.
    Any,
    /// LF; a CR outside quotes is field content.
    Lf,
    /// CRLF; a LF or a CR alone outside quotes is refused.
    Crlf,
}

/// The layout a batch must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CsvRules {
    /// Whether the first record is a header row of distinct, non-empty names; without one,
    /// each record starts with a non-empty key.
    pub(crate) header: bool,
    /// The byte between fields (`,`, `;`, `|`, TAB, `^` or `` ` ``).
    pub(crate) delimiter: u8,
    /// How records end.
    pub(crate) line_ending: LineEnding,
}

impl CsvRules {
    /// Comma-separated, LF or CRLF line ends, with or without a header row.
    pub(crate) fn comma(header: bool) -> CsvRules {
        CsvRules {
            header,
            delimiter: b',',
            line_ending: LineEnding::Any,
        }
    }

    fn delimiter_name(self) -> &'static str {
        match self.delimiter {
            b',' => "comma",
            b';' => "semicolon",
            b'|' => "pipe",
            b'\t' => "tab",
            b'^' => "caret",
            b'`' => "backquote",
            _ => "delimiter",
        }
    }
}

/// Where the scanner is within a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// At the start of a field (after a delimiter, a line end, or at the start of the batch).
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
pub(crate) struct CsvCheck {
    rules: CsvRules,
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
    /// The field count of the first record, once it is finished.
    expected: Option<u64>,
    /// The header's field names (upsert, first record only), the current one's bytes, and the
    /// bytes of the header row so far.
    header: Vec<String>,
    header_field: Vec<u8>,
    header_bytes: usize,
    /// The start of a UTF-8 character cut by the end of the previous slice.
    pending: Vec<u8>,
    /// Whether no character was read yet (a byte-order mark may come).
    at_start: bool,
}

impl CsvCheck {
    /// A checker for a batch under `rules`.
    pub(crate) fn new(rules: CsvRules) -> CsvCheck {
        CsvCheck {
            rules,
            scan: Scan::FieldStart,
            line: 1,
            record_line: 1,
            quote_line: 1,
            in_record: false,
            fields: 0,
            field_bytes: 0,
            expected: None,
            header: Vec::new(),
            header_field: Vec::new(),
            header_bytes: 0,
            pending: Vec::with_capacity(4),
            at_start: true,
        }
    }

    /// Checks the next bytes of the batch.
    ///
    /// # Errors
    /// The first fault found.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Result<(), CsvFault> {
        if let Some(&lead) = self.pending.first() {
            // The rest of a character cut by the end of the previous slice.
            let want = utf8_width(lead);
            let take = want.saturating_sub(self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.pending.len() < want {
                return Ok(());
            }
            let character = std::mem::take(&mut self.pending);
            if std::str::from_utf8(&character).is_err() {
                return Err(self.invalid_utf8());
            }
            self.scan(&character)?;
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => self.scan(bytes),
            Err(err) => {
                self.scan(&bytes[..err.valid_up_to()])?;
                if err.error_len().is_some() {
                    return Err(self.invalid_utf8());
                }
                // A character cut by the end of the slice: finish it with the next.
                self.pending.extend_from_slice(&bytes[err.valid_up_to()..]);
                Ok(())
            }
        }
    }

    fn invalid_utf8(&self) -> CsvFault {
        CsvFault::at(
            self.line,
            "invalid UTF-8: the batch must be UTF-8 encoded text",
        )
    }

    fn bare_cr(&self) -> CsvFault {
        CsvFault::at(
            self.line,
            match self.rules.line_ending {
                LineEnding::Crlf => {
                    "carriage return not followed by a line feed (records end with CRLF)"
                }
                _ => "carriage return not followed by a line feed (records end with CRLF or LF)",
            },
        )
    }

    /// Checks the end of the batch.
    ///
    /// # Errors
    /// An unclosed quote, a cut character, a CR at the very end, an empty batch, or a fault
    /// of the last record.
    pub(crate) fn finish(&mut self) -> Result<(), CsvFault> {
        if !self.pending.is_empty() {
            let reason = "invalid UTF-8: the batch ends inside a multi-byte character";
            return Err(CsvFault::at(self.line, reason));
        }
        match self.scan {
            Scan::Quoted => {
                let reason = format!(
                    "unbalanced quote: the quoted field opened on line {} is never closed",
                    self.quote_line
                );
                return Err(CsvFault::at(self.quote_line, reason));
            }
            Scan::AfterCr => return Err(self.bare_cr()),
            _ if self.in_record => {
                self.end_field()?;
                self.end_record()?;
            }
            _ => {}
        }
        if self.expected.is_none() {
            let expected = if self.rules.header {
                "a batch starts with a header row"
            } else {
                "a batch without a header row holds one record per line"
            };
            return Err(CsvFault::at(1, format!("the batch is empty: {expected}")));
        }
        Ok(())
    }

    /// Checks whole UTF-8 characters.
    fn scan(&mut self, mut bytes: &[u8]) -> Result<(), CsvFault> {
        if self.at_start && !bytes.is_empty() {
            self.at_start = false;
            bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
        }
        for &byte in bytes {
            if self.scan == Scan::FieldStart && !self.in_record {
                self.in_record = true;
                self.record_line = self.line;
            }
            match (self.scan, byte) {
                (Scan::Quoted, b'"') => self.scan = Scan::QuoteInQuoted,
                (Scan::Quoted, _) => {
                    if byte == b'\n' {
                        self.line += 1;
                    }
                    self.content(byte)?;
                }
                (Scan::AfterCr, b'\n') => self.line_end()?,
                (Scan::AfterCr, _) => return Err(self.bare_cr()),
                (_, _) if byte == self.rules.delimiter => {
                    self.end_field()?;
                    self.scan = Scan::FieldStart;
                }
                (_, b'\n') if self.rules.line_ending == LineEnding::Crlf => {
                    let reason = "line feed without a carriage return: this job's records end \
                                  with CRLF";
                    return Err(CsvFault::at(self.line, reason));
                }
                (_, b'\n') => self.line_end()?,
                (_, b'\r') if self.rules.line_ending != LineEnding::Lf => {
                    self.scan = Scan::AfterCr;
                }
                (Scan::FieldStart, b'"') => {
                    self.scan = Scan::Quoted;
                    self.quote_line = self.line;
                }
                (Scan::QuoteInQuoted, b'"') => {
                    self.scan = Scan::Quoted;
                    self.content(byte)?;
                }
                (Scan::FieldStart | Scan::Unquoted, _) if byte != b'"' => {
                    self.scan = Scan::Unquoted;
                    self.content(byte)?;
                }
                (Scan::FieldStart | Scan::Unquoted, _) => {
                    let reason = format!(
                        "a double quote inside unquoted field {}: enclose the field in double \
                         quotes and double the quote",
                        self.fields + 1
                    );
                    return Err(CsvFault::at(self.line, reason));
                }
                (Scan::QuoteInQuoted, _) => {
                    let reason = format!(
                        "unexpected text after the closing quote of field {}: a quoted field \
                         ends at a {} or a line end (write a quote inside it as \"\")",
                        self.fields + 1,
                        self.rules.delimiter_name()
                    );
                    return Err(CsvFault::at(self.line, reason));
                }
            }
        }
        Ok(())
    }

    /// Whether the current record is the header row.
    fn in_header(&self) -> bool {
        self.rules.header && self.expected.is_none()
    }

    /// A content byte of the current field.
    fn content(&mut self, byte: u8) -> Result<(), CsvFault> {
        self.field_bytes += 1;
        if self.in_header() {
            self.header_bytes += 1;
            if self.header_bytes > MAX_HEADER_BYTES {
                let reason = format!("the header row is longer than {MAX_HEADER_BYTES} bytes");
                return Err(CsvFault::at(self.record_line, reason));
            }
            self.header_field.push(byte);
        }
        Ok(())
    }

    /// The end of a record's line (a LF outside quotes).
    fn line_end(&mut self) -> Result<(), CsvFault> {
        self.end_field()?;
        self.end_record()?;
        self.line += 1;
        self.scan = Scan::FieldStart;
        Ok(())
    }

    fn end_field(&mut self) -> Result<(), CsvFault> {
        self.fields += 1;
        let line = self.record_line;
        let at = |reason: String| Err(CsvFault::at(line, reason));
        if !self.rules.header && self.fields == 1 && self.field_bytes == 0 {
            let reason = "empty primary key: a batch without a header row starts each record \
                          with the primary key of its record";
            return at(reason.into());
        }
        if self.in_header() {
            let name = String::from_utf8_lossy(&self.header_field).into_owned();
            self.header_field.clear();
            if name.trim().is_empty() {
                return at(format!("header field {} has no name", self.fields));
            }
            if self.header.contains(&name) {
                return at(format!("header field `{name}` appears twice"));
            }
            self.header.push(name);
        }
        self.field_bytes = 0;
        Ok(())
    }

    fn end_record(&mut self) -> Result<(), CsvFault> {
        let fields = self.fields;
        match self.expected {
            None => {
                self.expected = Some(fields);
                self.header = Vec::new();
                self.header_field = Vec::new();
            }
            Some(expected) if expected != fields => {
                let first = if self.rules.header {
                    "the header row"
                } else {
                    "the first record"
                };
                let noun = if fields == 1 { "field" } else { "fields" };
                let reason = format!("{fields} {noun} where {first} has {expected}");
                return Err(CsvFault::at(self.record_line, reason));
            }
            Some(_) => {}
        }
        self.fields = 0;
        self.in_record = false;
        Ok(())
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

impl UploadCheck for CsvCheck {
    fn feed(&mut self, bytes: &[u8]) -> io::Result<()> {
        CsvCheck::feed(self, bytes).map_err(io::Error::from)
    }

    fn finish(&mut self) -> io::Result<()> {
        CsvCheck::finish(self).map_err(io::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: CsvRules = CsvRules {
        header: true,
        delimiter: b',',
        line_ending: LineEnding::Any,
    };
    const KEYS: CsvRules = CsvRules {
        header: false,
        ..HEADER
    };

    fn check(rules: CsvRules, text: &[u8]) -> Result<(), CsvFault> {
        let mut check = CsvCheck::new(rules);
        check.feed(text)?;
        check.finish()
    }

    /// Every split of the input in two and byte by byte gives the same verdict as one piece.
    fn verdict(rules: CsvRules, text: &[u8]) -> Result<(), CsvFault> {
        let whole = check(rules, text);
        for cut in 0..=text.len() {
            let mut split = CsvCheck::new(rules);
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
        let mut bytewise = CsvCheck::new(rules);
        let got = text
            .iter()
            .try_for_each(|b| bytewise.feed(std::slice::from_ref(b)))
            .and_then(|()| bytewise.finish());
        assert_eq!(got, whole, "byte by byte");
        whole
    }

    fn line_of(result: Result<(), CsvFault>) -> (u64, String) {
        match result {
            Err(CsvFault { line, reason }) => (line, reason),
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
            assert_eq!(verdict(HEADER, text), Ok(()), "{text:?}");
        }
        assert_eq!(verdict(KEYS, b"k1\nk2\r\n\"k,3\"\n"), Ok(()));
        assert_eq!(verdict(KEYS, b"k1,x\nk2,y"), Ok(()));
    }

    #[test]
    fn faults_name_their_line() {
        let cases: &[(CsvRules, &[u8], u64, &str)] = &[
            (HEADER, b"id,name\n1,\"open\n2,b\n", 2, "unbalanced quote"),
            (
                HEADER,
                b"id,name\n1,a\n2,b,c\n",
                3,
                "3 fields where the header row has 2",
            ),
            (HEADER, b"id,name\n1,a\n2\n", 3, "1 field where"),
            (HEADER, b"id,name\n1,\"x\ny\"\n2\n", 4, "1 field where"),
            (HEADER, b"id,name\n1,a\xFF\n", 2, "invalid UTF-8"),
            (HEADER, b"id,name\n1,a\n2,\xC3", 3, "multi-byte"),
            (
                HEADER,
                b"id,name\n1,a\"b\n",
                2,
                "double quote inside unquoted field 2",
            ),
            (
                HEADER,
                b"id,name\n1,\"a\"b\n",
                2,
                "after the closing quote of field 2",
            ),
            (HEADER, b"id,name\r1,a\n", 1, "carriage return"),
            (HEADER, b"id,name\n1,a\r", 2, "carriage return"),
            (HEADER, b"", 1, "empty"),
            (HEADER, b"id,id\n1,2\n", 1, "appears twice"),
            (HEADER, b"id,\n1,2\n", 1, "no name"),
            (KEYS, b"k1\n\n", 2, "empty primary key"),
            (KEYS, b"k1,a\n,b\n", 2, "empty primary key"),
            (KEYS, b"k1,a\nk2\n", 2, "where the first record has 2"),
            (KEYS, b"", 1, "empty"),
        ];
        for (rules, text, line, words) in cases {
            let (got_line, reason) = line_of(verdict(*rules, text));
            assert_eq!(got_line, *line, "{text:?}: {reason}");
            assert!(reason.contains(words), "{text:?}: {reason}");
        }
    }

    #[test]
    fn as_an_upload_check_it_takes_a_good_batch_and_carries_its_fault() {
        let mut check = CsvCheck::new(HEADER);
        for piece in b"id,name\n1,a\n".chunks(3) {
            UploadCheck::feed(&mut check, piece).unwrap();
        }
        UploadCheck::finish(&mut check).unwrap();

        let mut check = CsvCheck::new(HEADER);
        UploadCheck::feed(&mut check, b"id,name\n1,\"a\n").unwrap();
        let err = UploadCheck::finish(&mut check).unwrap_err();
        assert_eq!(CsvFault::of(&err).map(|fault| fault.line), Some(2));
    }

    #[test]
    fn the_chosen_delimiter_and_line_ending_apply() {
        let pipe_lf = CsvRules {
            delimiter: b'|',
            line_ending: LineEnding::Lf,
            ..HEADER
        };
        assert_eq!(verdict(pipe_lf, b"Id|Name\n1|a,b\n2|\"x|y\"\n"), Ok(()));
        assert_eq!(verdict(pipe_lf, b"Id|Name\n1|a\rb\n"), Ok(()));
        let (line, reason) = line_of(verdict(pipe_lf, b"Id|Name\n1,a\n"));
        assert_eq!(line, 2, "{reason}");
        let tab_crlf = CsvRules {
            delimiter: b'\t',
            line_ending: LineEnding::Crlf,
            ..HEADER
        };
        assert_eq!(verdict(tab_crlf, b"Id\tName\r\n1\ta\r\n"), Ok(()));
        assert_eq!(verdict(tab_crlf, b"Id\tName\r\n1\t\"a\nb\"\r\n"), Ok(()));
        let (line, reason) = line_of(verdict(tab_crlf, b"Id\tName\r\n1\ta\n"));
        assert_eq!(line, 2, "{reason}");
        assert!(reason.contains("CRLF"), "{reason}");
        let semicolon = CsvRules {
            delimiter: b';',
            ..HEADER
        };
        let (_, reason) = line_of(verdict(semicolon, b"Id;Name\n1;\"a\"b\n"));
        assert!(reason.contains("semicolon"), "{reason}");
    }
}
