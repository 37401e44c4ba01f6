//! `GET …/jobs/query/{id}/results`: the CSV a query job's worker uploaded as its
//! `query/results` output, a page at a time. Each page is the header row and up to
//! `maxRecords` records; `Sforce-NumberOfRecords` counts them and `Sforce-Locator` names where
//! the next page starts (`null` after the last). A locator is a position in the stored output
//! ([`DataPosition`]), so a page is found without reading the pages before it, and asking for
//! the same locator again answers the same page.
//!
//! A page is found in two passes over the store, neither holding the page in memory: the
//! first counts its records and bytes (the headers need them before the body), the second
//! streams those bytes after the header row.

use std::io::{self, BufRead};

use jobstore::{DataPosition, DataReader, Error, Store};

use crate::fault::ApiError;
use crate::query::{self, Query};

/// The output a query job's worker writes its result CSV to.
pub(crate) const OUTPUT: &str = "query/results";

/// Records in a page when the client gives no `maxRecords`: all of them. jsforce asks without
/// it and parses every page into one CSV stream, where a second page's header row would be
/// read as a record; the page streams, so its size costs no memory.
const DEFAULT_RECORDS: u64 = u64::MAX;

/// The longest header row read; a longer one is not a CSV header a client could use.
const MAX_HEADER_BYTES: usize = 1 << 20;

/// What a client asked for: at most `max_records` records from `from` (the first page when
/// `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageRequest {
    pub(crate) max_records: u64,
    pub(crate) from: Option<DataPosition>,
}

/// The parameters `maxRecords` and `locator`.
///
/// # Errors
/// `InvalidQuery`: an unknown parameter, a `maxRecords` that is not a positive integer, a
/// locator this API never gave.
pub(crate) fn request(raw: Option<&str>) -> Result<PageRequest, ApiError> {
    let mut query = Query::parse(raw)?.blank_is_absent();
    let max_records = query.int("maxRecords", 1, i64::MAX)?;
    let locator = query.one("locator")?;
    query.finish()?;
    let from = match locator.as_deref() {
        None | Some("null") => None,
        Some(text) => Some(
            text.parse::<DataPosition>()
                .map_err(|_| query::invalid(format!("unknown locator `{text}`")))?,
        ),
    };
    Ok(PageRequest {
        max_records: max_records.map_or(DEFAULT_RECORDS, |n| n.unsigned_abs()),
        from,
    })
}

/// A page found by the first pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page {
    /// The header row, with its line ending.
    pub(crate) header: Vec<u8>,
    /// Where the page's records start.
    pub(crate) from: DataPosition,
    /// The bytes of its records.
    pub(crate) bytes: u64,
    /// How many records.
    pub(crate) records: u64,
    /// Where the next page starts; `None` on the last.
    pub(crate) next: Option<DataPosition>,
}

impl Page {
    /// The page's records, for the second pass: a reader at its start that ends with it.
    ///
    /// # Errors
    /// As [`Store::read_output_at`].
    pub(crate) fn reader(&self, store: &Store, id: i64) -> jobstore::Result<Option<DataReader>> {
        Ok(store
            .read_output_at(id, OUTPUT, self.from)?
            .map(|reader| reader.limit(self.bytes)))
    }
}

/// The first pass: the header row and the page `asked` names in job `id`'s result output;
/// `None` when the worker uploaded none.
///
/// # Errors
/// [`Error::InvalidInput`] for a locator that is not in this output or a header row past
/// 1 MiB; storage errors.
pub(crate) fn find(store: &Store, id: i64, asked: PageRequest) -> jobstore::Result<Option<Page>> {
    let Some(mut reader) = store.read_output(id, OUTPUT)? else {
        return Ok(None);
    };
    let mut header = Vec::new();
    let mut records = RecordEnds::default();
    scan(&mut reader, &mut records, 1, |bytes| {
        header.extend_from_slice(bytes);
        header.len() <= MAX_HEADER_BYTES
    })
    .map_err(read_fault)?;
    if header.len() > MAX_HEADER_BYTES {
        return Err(Error::InvalidInput {
            field: OUTPUT.to_owned(),
            reason: "the header row of the results is longer than 1 MiB".to_owned(),
        });
    }
    if let Some(from) = asked.from {
        reader = store
            .read_output_at(id, OUTPUT, from)?
            .ok_or(Error::JobNotFound { id })?;
    }
    let from = reader.position();
    let mut bytes = 0;
    let mut page = RecordEnds::default();
    let complete = scan(&mut reader, &mut page, asked.max_records, |part| {
        bytes += part.len() as u64;
        true
    })
    .map_err(read_fault)?;
    let at_end = reader.fill_buf().map_err(read_fault)?.is_empty();
    // A last record without a line ending is a record too.
    let records = page.records + u64::from(!complete && bytes > 0 && !page.at_boundary());
    Ok(Some(Page {
        header,
        from,
        bytes,
        records,
        next: (!at_end).then(|| reader.position()),
    }))
}

fn read_fault(err: io::Error) -> Error {
    match err.into_inner().map(|inner| inner.downcast::<Error>()) {
        Some(Ok(err)) => *err,
        Some(Err(other)) => Error::DataRead(io::Error::other(other)),
        None => Error::DataRead(io::Error::other("reading the results failed")),
    }
}

/// Where CSV records end: at a line feed outside quotes (RFC 4180; a CRLF ending ends at its
/// LF, and a doubled quote inside a quoted field toggles twice).
#[derive(Debug, Default)]
struct RecordEnds {
    quoted: bool,
    records: u64,
    /// Bytes read since the last record ended.
    pending: u64,
}

impl RecordEnds {
    /// The end of the first record in `bytes` (just past its LF), counting it; `None` when no
    /// record ends in them.
    fn next_end(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'"' {
                self.quoted = !self.quoted;
            } else if b == b'\n' && !self.quoted {
                self.records += 1;
                self.pending = 0;
                return Some(i + 1);
            }
        }
        self.pending += bytes.len() as u64;
        None
    }

    fn at_boundary(&self) -> bool {
        self.pending == 0
    }
}

/// Reads `reader` through `take` until `count` more records ended (answering true: the
/// reader then stands just past the last one) or the data ended (false). `take` gets every
/// byte read, in order, and stops the scan by answering false.
fn scan(
    reader: &mut DataReader,
    ends: &mut RecordEnds,
    count: u64,
    mut take: impl FnMut(&[u8]) -> bool,
) -> io::Result<bool> {
    let goal = ends.records.saturating_add(count);
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(false);
        }
        let mut used = 0;
        while used < available.len() {
            match ends.next_end(&available[used..]) {
                Some(end) => {
                    used += end;
                    if ends.records == goal {
                        break;
                    }
                }
                None => used = available.len(),
            }
        }
        let keep_going = take(&available[..used]);
        reader.consume(used);
        if ends.records == goal {
            return Ok(true);
        }
        if !keep_going {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_end_at_line_feeds_outside_quotes() {
        let mut ends = RecordEnds::default();
        let text = b"a,b\n\"x\ny\",\"say \"\"hi\"\"\"\r\nlast";
        let mut at = 0;
        let mut found = Vec::new();
        while let Some(end) = ends.next_end(&text[at..]) {
            at += end;
            found.push(at);
        }
        assert_eq!(found, [4, 24]);
        assert_eq!(ends.records, 2);
        assert!(!ends.at_boundary());
    }

    #[test]
    fn the_parameters_are_checked() {
        assert_eq!(
            request(None).unwrap(),
            PageRequest {
                max_records: DEFAULT_RECORDS,
                from: None
            }
        );
        let asked = request(Some("maxRecords=10&locator=3-0-17")).unwrap();
        assert_eq!(asked.max_records, 10);
        assert_eq!(asked.from.unwrap().to_string(), "3-0-17");
        assert_eq!(request(Some("locator=null")).unwrap().from, None);
        for bad in ["maxRecords=0", "maxRecords=x", "locator=MTAwMDA", "other=1"] {
            assert!(request(Some(bad)).is_err(), "{bad}");
        }
    }
}
