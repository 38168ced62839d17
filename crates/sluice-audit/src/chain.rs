//! The hash chain: canonical bytes of a record, its hash, and the walk that checks a sequence of
//! records (the store's `verify` and an export's `verify_export` share it).
//!
//! A record's hash is `sha256(prev_hash || canonical bytes of the record without "hash")`, hex.
//! Canonical bytes are compact JSON with object keys sorted, computed from the JSON value, not
//! from the Rust type: a verifier on another machine hashes exactly the fields a line holds, so a
//! field added to an exported line changes the hash just as an edited one does.

use std::collections::HashMap;
use std::io::Write;

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use sluice_model::Fact;

use crate::record::Record;

/// The fields of a record the chain is made of. The walk reads only these (and hashes the whole
/// value), so a chain verifies whatever the facts inside it look like.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Envelope {
    pub seq: u64,
    pub run: String,
    pub prev_hash: String,
    pub run_prev_hash: String,
    pub hash: String,
}

/// The `prev_hash` of the first record (and `run_prev_hash` of a run's first record).
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Compact JSON with sorted keys. Integers and strings print one way in serde_json, and records
/// hold no floats, so the bytes are the same wherever they are computed.
pub fn canonical_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_key(key, out);
                out.push(b':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    // Writing a scalar Value into a Vec cannot fail; should it ever, the hash simply will not
    // match and verification reports it rather than the writer panicking.
    let _ = serde_json::to_writer(&mut *out, value);
}

fn write_key(key: &str, out: &mut Vec<u8>) {
    // A key is written as the string it is (serde_json escapes a `str` and a `Value::String`
    // alike), without copying it into a `Value` first.
    let _ = serde_json::to_writer(&mut *out, key);
}

/// The hash of a record given as a JSON object; its own `hash` field, if any, is left out.
pub fn hash_value(prev_hash: &str, record: &Value) -> String {
    let bytes = match record {
        Value::Object(map) if map.contains_key("hash") => {
            let mut without = map.clone();
            without.remove("hash");
            canonical_bytes(&Value::Object(without))
        }
        other => canonical_bytes(other),
    };
    hash_bytes(prev_hash, &bytes)
}

/// `sha256(prev_hash || bytes)`, hex.
fn hash_bytes(prev_hash: &str, bytes: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(bytes);
    hex::encode(hasher.finalize())
}

/// Where and why a sequence of records stops being the chain.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Break {
    /// The first sequence number at which the records are not the chain.
    pub seq: u64,
    /// 1-based line of an export (0 when checking the store).
    pub line: u64,
    pub reason: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "record {} (line {}): {}",
                self.seq, self.line, self.reason
            )
        } else {
            write!(f, "record {}: {}", self.seq, self.reason)
        }
    }
}

/// Which chain a walk follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every record from seq 1: checks `seq`, `prev_hash` and every run's `run_prev_hash`.
    All,
    /// One run's records only (a `--run` export): checks `run_prev_hash` from the run's first
    /// record, since the global `prev_hash` points at other runs' records that are not there.
    Run(String),
}

/// Walks records in order and stops at the first that does not continue the chain.
#[derive(Debug)]
pub struct ChainWalk {
    scope: Scope,
    next_seq: u64,
    last_hash: String,
    last_seq: u64,
    count: u64,
    run_tips: HashMap<String, String>,
}

impl ChainWalk {
    pub fn new(scope: Scope) -> Self {
        ChainWalk {
            scope,
            next_seq: 1,
            last_hash: GENESIS.to_string(),
            last_seq: 0,
            count: 0,
            run_tips: HashMap::new(),
        }
    }

    /// The sequence number the next record should carry (for `All`), or one past the last seen.
    pub fn expected_seq(&self) -> u64 {
        match self.scope {
            Scope::All => self.next_seq,
            Scope::Run(_) => self.last_seq + 1,
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn last_hash(&self) -> &str {
        &self.last_hash
    }

    /// Checks the next record, given as the JSON value it was read as.
    pub fn check(&mut self, value: &Value, line: u64) -> Result<Envelope, Break> {
        let expected = self.expected_seq();
        let record = Envelope::deserialize(value).map_err(|err| Break {
            seq: expected,
            line,
            reason: format!("not a readable record ({err})"),
        })?;
        let brk = |seq: u64, reason: String| Break { seq, line, reason };
        let computed = hash_value(&record.prev_hash, value);
        match &self.scope {
            Scope::All => {
                if record.seq < expected {
                    // A second record with the seq just checked: the pair is where the file
                    // stops being the chain. Any other repeat sits where `expected` belongs.
                    let at = if record.seq + 1 == expected {
                        record.seq
                    } else {
                        expected
                    };
                    return Err(brk(
                        at,
                        format!(
                            "record {} appears again after record {}",
                            record.seq,
                            expected - 1
                        ),
                    ));
                }
                if record.seq > expected {
                    return Err(brk(
                        expected,
                        format!(
                            "record {expected} is missing or out of place (found record {} here)",
                            record.seq
                        ),
                    ));
                }
                if computed != record.hash {
                    return Err(brk(
                        expected,
                        "its content was changed (hash does not match)".into(),
                    ));
                }
                if record.prev_hash != self.last_hash {
                    return Err(brk(
                        expected,
                        format!("it does not follow record {}", expected - 1),
                    ));
                }
            }
            Scope::Run(run) => {
                if &record.run != run {
                    return Err(brk(
                        record.seq,
                        format!("it belongs to run {}, not {run}", record.run),
                    ));
                }
                if record.seq <= self.last_seq {
                    return Err(brk(
                        record.seq,
                        format!("record {} comes after record {}", record.seq, self.last_seq),
                    ));
                }
                if computed != record.hash {
                    return Err(brk(
                        record.seq,
                        "its content was changed (hash does not match)".into(),
                    ));
                }
            }
        }
        let run_tip = self
            .run_tips
            .get(&record.run)
            .map_or(GENESIS, String::as_str);
        if record.run_prev_hash != run_tip {
            let reason = if self.count == 0 && matches!(self.scope, Scope::Run(_)) {
                "the run's earlier records are missing (the file does not start at the run's first record)".to_string()
            } else {
                format!(
                    "a record of run {} before it is missing or out of place",
                    record.run
                )
            };
            return Err(brk(record.seq, reason));
        }
        self.run_tips
            .insert(record.run.clone(), record.hash.clone());
        self.next_seq = record.seq + 1;
        self.last_seq = record.seq;
        self.last_hash = record.hash.clone();
        self.count += 1;
        Ok(record)
    }
}

/// Hashes a value for a new record: fills `hash` from `prev_hash` and the other fields.
pub fn seal(record: &mut Record) -> Result<(), serde_json::Error> {
    record.hash = String::new();
    // A stored plan artifact is by far the largest value a record holds (tens of megabytes as a
    // JSON tree at 10,000 hosts): it is moved into the hashed value and back, not copied, so
    // sealing it does not hold the tree twice. The bytes hashed are the same either way.
    let artifact = match &mut record.fact {
        Fact::PlanArtifactStored(stored) => Some(std::mem::take(&mut stored.artifact)),
        _ => None,
    };
    let value = serde_json::to_value(&*record);
    let mut value = match value {
        Ok(value) => value,
        Err(e) => {
            put_back_artifact(record, artifact);
            return Err(e);
        }
    };
    if let Value::Object(map) = &mut value {
        // Owned here: the field is taken out rather than the whole map copied without it.
        map.remove("hash");
        if let Some(artifact) = artifact {
            map.insert(ARTIFACT_FIELD.to_string(), artifact);
        }
    }
    let bytes = canonical_bytes(&value);
    let artifact = match &mut value {
        Value::Object(map) if matches!(record.fact, Fact::PlanArtifactStored(_)) => {
            map.remove(ARTIFACT_FIELD)
        }
        _ => None,
    };
    drop(value);
    put_back_artifact(record, artifact);
    record.hash = hash_bytes(&record.prev_hash, &bytes);
    Ok(())
}

/// The field of a `plan_artifact_stored` record that holds the artifact (the fact is flattened
/// into the record).
const ARTIFACT_FIELD: &str = "artifact";

fn put_back_artifact(record: &mut Record, artifact: Option<Value>) {
    if let (Fact::PlanArtifactStored(stored), Some(artifact)) = (&mut record.fact, artifact) {
        stored.artifact = artifact;
    }
}

/// A writer helper for exports: one compact JSON line.
pub fn write_line(out: &mut impl Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_bytes_sort_keys_at_every_level() {
        let value = serde_json::json!({"b": 1, "a": [{"d": "x\"y", "c": null}], "é": -2});
        assert_eq!(
            String::from_utf8(canonical_bytes(&value)).unwrap(),
            r#"{"a":[{"c":null,"d":"x\"y"}],"b":1,"é":-2}"#
        );
    }

    /// Pins the hash of a fixed record: if this changes, every export made before no longer
    /// verifies, so a change here needs a format version (`store::FORMAT`), not a new expected
    /// value. (Format 2 flattened the fact beside the envelope.)
    #[test]
    fn record_hash_is_stable() {
        let mut record: Record = serde_json::from_value(serde_json::json!({
            "seq": 1, "at": "2026-01-01T00:00:00Z", "run": "r1",
            "kind": "run_finished", "status": "succeeded", "duration_ms": 0,
            "prev_hash": GENESIS, "run_prev_hash": GENESIS, "hash": ""
        }))
        .unwrap();
        seal(&mut record).unwrap();
        let mut hasher = Sha256::new();
        hasher.update(GENESIS.as_bytes());
        hasher.update(
            br#"{"at":"2026-01-01T00:00:00Z","duration_ms":0,"kind":"run_finished","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","run":"r1","run_prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","seq":1,"status":"succeeded"}"#,
        );
        assert_eq!(record.hash, hex::encode(hasher.finalize()));
        let value = serde_json::to_value(&record).unwrap();
        assert_eq!(hash_value(&record.prev_hash, &value), record.hash);
    }

    /// Sealing moves a stored artifact into the hashed value and back instead of copying it:
    /// the hash is still that of the whole record (what a verifier computes from the stored
    /// line), and the record keeps its artifact intact.
    #[test]
    fn sealing_a_stored_artifact_hashes_it_and_keeps_it() {
        let artifact =
            serde_json::json!({"name": "p", "hosts": [{"name": "h1", "vars": {"b": 1, "a": "x"}}]});
        let mut record = Record {
            seq: 7,
            at: "2026-01-01T00:00:00Z".into(),
            run: "r1".into(),
            fact: Fact::PlanArtifactStored(sluice_model::PlanArtifactStored {
                plan_hash: "abc".into(),
                artifact: artifact.clone(),
            }),
            prev_hash: GENESIS.into(),
            run_prev_hash: GENESIS.into(),
            hash: String::new(),
        };
        seal(&mut record).unwrap();
        match &record.fact {
            Fact::PlanArtifactStored(stored) => assert_eq!(stored.artifact, artifact),
            other => panic!("{other:?}"),
        }
        let value = serde_json::to_value(&record).unwrap();
        assert_eq!(value["artifact"], artifact);
        assert_eq!(hash_value(&record.prev_hash, &value), record.hash);
    }
}
