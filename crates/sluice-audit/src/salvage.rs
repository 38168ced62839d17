//! Salvage: every record still readable in a damaged store file, found by reading the file's
//! pages directly, in bounded memory and time.
//!
//! # Why not through redb
//! redb 4.6 offers two ways into a damaged file, and neither recovers what is still readable:
//! - A read-only open (no integrity check) trusts every page it reads. The first page it cannot
//!   read (a truncated file, a bad page number) fails its read and latches the handle: every
//!   later read fails with `PreviousIo`, so an iteration stops at the first damaged page, or, as
//!   the old salvage did, yields that error for ever (11.7 GB of error messages in 15 s). A page
//!   that reads but is damaged can make it panic (`entered unreachable code`).
//! - A repair (on a copy: the original must not change) checks the committed tree page by page,
//!   but all or nothing: one damaged page of the tree and redb falls back to the previous commit,
//!   which shares most of its pages, and gives up (`Primary is corrupted despite 2-phase
//!   commit`), having recovered nothing. A file cut by even one byte does not open at all.
//!
//! Records need no tree to be trusted: each carries its own hash, which covers its content and
//! the previous record's hash. And redb stores a value whole and as written (a leaf holds whole
//! values; a large one gets a larger page), so each record is one run of bytes in the file,
//! wherever the tree that pointed at it went.
//!
//! # How
//! 1. **Scan.** The file is read in 1 MiB chunks, looking for where a record starts: `{"seq":`,
//!    digits, a comma (serialised records start so; the text cannot occur inside a JSON string,
//!    where the quotes are escaped). No page header, offset or pointer of the file is trusted.
//! 2. **Check.** From each start, one JSON value is read (at most [`MAX_RECORD`] bytes, never
//!    past the end of the file). It is a record when it parses, carries the number it started
//!    with as `seq`, and its hash matches its content. Anything else is counted as a damaged
//!    copy. Old copies of a record (redb writes pages anew, so earlier versions of a leaf stay
//!    in freed pages) are the same bytes and kept once.
//! 3. **Choose.** Where two different records carry one sequence number (a commit that never
//!    completed left its pages behind), the one that chains to the record before it wins, else
//!    the one the record after it chains to.
//! 4. **Write** the chosen records in sequence order, each as the export writes it (the stored
//!    bytes, one line), without the end line: a salvage is not a complete export, and
//!    `sluice audit verify --file` says where it stops.
//!
//! Memory holds one chunk, one record at a time and a small index entry per record found; time
//! is one pass over the file plus one parse and hash per record start found.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::chain::{Envelope, GENESIS, hash_value};
use crate::error::AuditError;
use crate::state_dir::STORE_FILE;

/// Bytes read at once while scanning.
const CHUNK: usize = 1024 * 1024;
/// What every serialised record starts with.
const START: &[u8] = b"{\"seq\":";
/// Longest record the scan reads from a start: bounds the memory and time a damaged start
/// (a string whose closing quote was destroyed) can cost.
pub const MAX_RECORD: u64 = 64 * 1024 * 1024;

/// What a salvage recovered and where it stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SalvageReport {
    /// Records written.
    pub records: u64,
    /// Sequence numbers written, as inclusive ranges.
    pub ranges: Vec<(u64, u64)>,
    /// Sequence numbers missing before the last one written: lost to the damage.
    pub missing: Vec<(u64, u64)>,
    /// Written records that do not chain to the record written before them.
    pub breaks: Vec<u64>,
    /// Record starts found that did not hold an intact record (cut, changed, or not a record).
    pub damaged: u64,
    /// Bytes of the file scanned.
    pub scanned: u64,
}

impl SalvageReport {
    /// The last record written: records after it, if the store had any, are lost.
    pub fn last_seq(&self) -> Option<u64> {
        self.ranges.last().map(|r| r.1)
    }
}

impl fmt::Display for SalvageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spans = |ranges: &[(u64, u64)]| {
            ranges
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self.last_seq() {
            None => write!(f, "no readable record in {} bytes", self.scanned)?,
            Some(last) => write!(
                f,
                "{} records ({}); it stops at record {last}: any later record is lost",
                self.records,
                spans(&self.ranges)
            )?,
        }
        if !self.missing.is_empty() {
            write!(f, "; missing: {}", spans(&self.missing))?;
        }
        if !self.breaks.is_empty() {
            let breaks: Vec<String> = self.breaks.iter().map(u64::to_string).collect();
            write!(f, "; chain broken before record(s) {}", breaks.join(", "))?;
        }
        if self.damaged > 0 {
            write!(f, "; {} damaged or partial copies skipped", self.damaged)?;
        }
        Ok(())
    }
}

/// Where a checked record lies in the file.
#[derive(Clone, Debug)]
struct Found {
    offset: u64,
    len: usize,
    hash: String,
    prev_hash: String,
}

/// Writes every readable record of the store in `state_dir` to `out`, as the module
/// documentation describes. Never opens the file for writing.
pub fn salvage(state_dir: &Path, out: &mut impl Write) -> Result<SalvageReport, AuditError> {
    let path = state_dir.join(STORE_FILE);
    if !path.exists() {
        return Err(AuditError::Missing { path });
    }
    let file = std::fs::File::open(&path).map_err(|e| AuditError::storage(&path, e))?;
    let len = file
        .metadata()
        .map_err(|e| AuditError::storage(&path, e))?
        .len();
    let mut scan = Scan {
        file: &file,
        len,
        found: BTreeMap::new(),
        report: SalvageReport::default(),
    };
    scan.run().map_err(|e| AuditError::storage(&path, e))?;
    let Scan {
        found, mut report, ..
    } = scan;
    write_chosen(&file, &found, &mut report, out)?;
    Ok(report)
}

struct Scan<'a> {
    file: &'a std::fs::File,
    len: u64,
    /// Every distinct record found, by sequence number.
    found: BTreeMap<u64, Vec<Found>>,
    report: SalvageReport,
}

impl Scan<'_> {
    /// Reads the file chunk by chunk and checks every record start in it.
    fn run(&mut self) -> std::io::Result<()> {
        // A chunk overlaps the next by the longest start (`{"seq":` and 20 digits and a comma),
        // so a start cut by a chunk's end is found whole in the next one.
        let overlap = START.len() + 21;
        let mut chunk = vec![0u8; CHUNK + overlap];
        let starts = memchr::memmem::Finder::new(START);
        let mut at = 0u64;
        while at < self.len {
            let n = read_full(self.file, &mut chunk, at)?;
            let data = &chunk[..n];
            for start in starts.find_iter(data) {
                if start >= CHUNK {
                    break;
                }
                if let Some(key) = seq_after(&data[start + START.len()..]) {
                    self.record(key, at + start as u64)?;
                }
            }
            self.report.scanned += n.min(CHUNK) as u64;
            at += CHUNK as u64;
        }
        Ok(())
    }

    /// Reads one JSON value at `at` and keeps it if it is an intact record of `key`.
    fn record(&mut self, key: u64, at: u64) -> std::io::Result<()> {
        let limit = (self.len - at).min(MAX_RECORD);
        let reader = std::io::BufReader::new(FileRange {
            file: self.file,
            at,
            end: at + limit,
        });
        let mut values = serde_json::Deserializer::from_reader(reader).into_iter::<Value>();
        let parsed = values.next();
        let len = values.byte_offset();
        let Some(envelope) = parsed.and_then(Result::ok).and_then(|v| checked(v, key)) else {
            self.report.damaged += 1;
            return Ok(());
        };
        let copies = self.found.entry(key).or_default();
        if !copies.iter().any(|c| c.hash == envelope.hash) {
            copies.push(Found {
                offset: at,
                len,
                hash: envelope.hash,
                prev_hash: envelope.prev_hash,
            });
        }
        Ok(())
    }
}

/// `at..end` of the file as a reader.
struct FileRange<'a> {
    file: &'a std::fs::File,
    at: u64,
    end: u64,
}

impl std::io::Read for FileRange<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let room = usize::try_from(self.end - self.at).unwrap_or(usize::MAX);
        let want = buf.len().min(room);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// The sequence number of a record start: digits, then a comma.
fn seq_after(bytes: &[u8]) -> Option<u64> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || bytes.get(digits) != Some(&b',') {
        return None;
    }
    std::str::from_utf8(&bytes[..digits]).ok()?.parse().ok()
}

/// The envelope of `value` when it is a record of `key` whose hash matches its content.
fn checked(value: Value, key: u64) -> Option<Envelope> {
    let envelope = Envelope::deserialize(&value).ok()?;
    (envelope.seq == key && hash_value(&envelope.prev_hash, &value) == envelope.hash)
        .then_some(envelope)
}

/// Picks one record per sequence number and writes them in order, filling in the report.
fn write_chosen(
    file: &std::fs::File,
    found: &BTreeMap<u64, Vec<Found>>,
    report: &mut SalvageReport,
    out: &mut impl Write,
) -> Result<(), AuditError> {
    let mut previous: Option<(u64, String)> = None;
    for (&seq, copies) in found {
        let after = found.get(&(seq + 1));
        let expected_prev = match &previous {
            Some((prev_seq, hash)) if prev_seq + 1 == seq => Some(hash.as_str()),
            None if seq == 1 => Some(GENESIS),
            _ => None,
        };
        let chosen = copies
            .iter()
            .find(|c| Some(c.prev_hash.as_str()) == expected_prev)
            .or_else(|| {
                copies
                    .iter()
                    .find(|c| after.is_some_and(|next| next.iter().any(|n| n.prev_hash == c.hash)))
            })
            .or_else(|| copies.first());
        let Some(chosen) = chosen else { continue };
        let bytes = read_record(file, chosen).map_err(AuditError::Read)?;
        out.write_all(&bytes)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(AuditError::Write)?;
        let first_missing = previous.as_ref().map_or(1, |(s, _)| s + 1);
        if seq > first_missing {
            report.missing.push((first_missing, seq - 1));
        } else if expected_prev != Some(chosen.prev_hash.as_str()) {
            report.breaks.push(seq);
        }
        match report.ranges.last_mut() {
            Some(range) if range.1 + 1 == seq => range.1 = seq,
            _ => report.ranges.push((seq, seq)),
        }
        report.records += 1;
        previous = Some((seq, chosen.hash.clone()));
    }
    Ok(())
}

fn read_record(file: &std::fs::File, found: &Found) -> std::io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; found.len];
    if read_full(file, &mut bytes, found.offset)? < found.len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the store file shrank while it was salvaged",
        ));
    }
    Ok(bytes)
}

/// Reads as much of `buf` as the file has at `offset`; returns how much.
fn read_full(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
