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
//! the previous record's hash. So salvage reads the leaves of the record table where they lie.
//!
//! # How
//! 1. **Scan.** The file is read one 4 KiB page at a time (redb's page size; larger pages start
//!    on a 4 KiB boundary too). A page that starts as a redb leaf of the record table (type 1, a
//!    pair count, the end offsets of the values, then 8-byte keys) has each of its values read
//!    when it lies inside the file and starts as a record of that key does (`{"seq":KEY,`).
//! 2. **Check.** A value is a record when it parses, carries the key as `seq`, and its hash
//!    matches its content. Copies that fail are counted as damaged; old copies of a record
//!    (redb writes pages anew, so earlier versions of a leaf stay in freed pages) are the same
//!    bytes and kept once.
//! 3. **Choose.** Where two different records carry one sequence number (a commit that never
//!    completed left its pages behind), the one that chains to the record before it wins, else
//!    the one the record after it chains to.
//! 4. **Write** the chosen records in sequence order, each as the export writes it (the stored
//!    bytes, one line), without the end line: a salvage is not a complete export, and
//!    `sluice audit verify --file` says where it stops.
//!
//! Memory holds one page, one value at a time (the largest record) and a small index entry per
//! record found; time is one pass over the file plus one hash per record copy.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde_json::Value;

use crate::chain::{Envelope, GENESIS, hash_value};
use crate::error::AuditError;
use crate::state_dir::STORE_FILE;

/// redb's page size; every page, of any order, starts at a multiple of it.
const PAGE: u64 = 4096;
/// redb's leaf page type byte.
const LEAF: u8 = 1;

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
    /// Copies of records found whose content does not match their hash.
    pub damaged: u64,
    /// Pages read.
    pub pages: u64,
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
                .map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self.last_seq() {
            None => write!(f, "no readable record in {} pages", self.pages)?,
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
            write!(
                f,
                "; chain broken before record(s) {}",
                breaks.join(", ")
            )?;
        }
        if self.damaged > 0 {
            write!(f, "; {} damaged copies skipped", self.damaged)?;
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
    let len = file.metadata().map_err(|e| AuditError::storage(&path, e))?.len();
    let mut scan = Scan {
        file: &file,
        len,
        found: BTreeMap::new(),
        report: SalvageReport::default(),
    };
    let mut page = vec![0u8; PAGE as usize];
    let mut offset = 0;
    while offset < len {
        scan.page(offset, &mut page)
            .map_err(|e| AuditError::storage(&path, e))?;
        offset += PAGE;
    }
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
    /// Reads the page at `offset` and keeps the records of it if it is a record-table leaf.
    fn page(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.report.pages += 1;
        let n = read_full(self.file, buf, offset)?;
        if n < 4 || buf[0] != LEAF {
            return Ok(());
        }
        let pairs = usize::from(u16::from_le_bytes([buf[2], buf[3]]));
        // Value end offsets (4 bytes each), then the keys (8 bytes each), then the values.
        let values_start = 4 + 12 * pairs;
        let room = self.len - offset;
        if pairs == 0 || values_start as u64 > room {
            return Ok(());
        }
        let header = if values_start <= n {
            buf[..values_start].to_vec()
        } else {
            let mut header = vec![0u8; values_start];
            if read_full(self.file, &mut header, offset)? < values_start {
                return Ok(());
            }
            header
        };
        let mut start = values_start as u64;
        for i in 0..pairs {
            let end = u64::from(u32_at(&header, 4 + 4 * i));
            if end < start || end > room {
                // The offsets stop making sense here: this page (or what follows) is damaged.
                return Ok(());
            }
            let key = u64_at(&header, 4 + 4 * pairs + 8 * i);
            self.value(key, offset + start, (end - start) as usize)?;
            start = end;
        }
        Ok(())
    }

    /// Reads and checks the value of `key` at `at`, when it starts as a record of that key.
    fn value(&mut self, key: u64, at: u64, len: usize) -> std::io::Result<()> {
        let prefix = format!("{{\"seq\":{key},");
        if len <= prefix.len() {
            return Ok(());
        }
        let mut head = vec![0u8; prefix.len()];
        if read_full(self.file, &mut head, at)? < head.len() || head != prefix.as_bytes() {
            return Ok(());
        }
        let mut bytes = vec![0u8; len];
        if read_full(self.file, &mut bytes, at)? < len {
            return Ok(());
        }
        let Some(record) = checked(&bytes, key) else {
            self.report.damaged += 1;
            return Ok(());
        };
        let copies = self.found.entry(key).or_default();
        if !copies.iter().any(|c| c.hash == record.hash) {
            copies.push(Found {
                offset: at,
                len,
                hash: record.hash,
                prev_hash: record.prev_hash,
            });
        }
        Ok(())
    }
}

/// The envelope of `bytes` when they are a record of `key` whose hash matches its content.
fn checked(bytes: &[u8], key: u64) -> Option<Envelope> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let envelope: Envelope = serde_json::from_value(value.clone()).ok()?;
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
                copies.iter().find(|c| {
                    after.is_some_and(|next| next.iter().any(|n| n.prev_hash == c.hash))
                })
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

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}
