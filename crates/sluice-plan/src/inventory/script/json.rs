//! JSON read with its objects' keys in the order written: an inventory script's groups and
//! hosts keep the order the script gives them, as in Ansible (serde_json's own map sorts keys).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};

use crate::diagnostic::Loc;

/// A JSON value whose objects keep their key order.
#[derive(Clone, Debug, PartialEq)]
pub enum Ordered {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl Ordered {
    /// The value of `key` in an object (the last one, as JSON readers do with duplicates).
    pub fn get(&self, key: &str) -> Option<&Ordered> {
        match self {
            Ordered::Object(entries) => {
                entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Ordered::Null => serde_json::Value::Null,
            Ordered::Bool(b) => serde_json::Value::Bool(*b),
            Ordered::Number(n) => serde_json::Value::Number(n.clone()),
            Ordered::String(s) => serde_json::Value::String(s.clone()),
            Ordered::Array(items) => {
                serde_json::Value::Array(items.iter().map(Ordered::to_json).collect())
            }
            Ordered::Object(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Where and why JSON could not be read.
pub struct JsonError {
    pub message: String,
    line: usize,
    column: usize,
}

impl JsonError {
    /// The position in `text` (serde_json counts lines and columns from 1).
    pub fn loc(&self, text: &str) -> Loc {
        let line_start: usize = text
            .split('\n')
            .take(self.line.saturating_sub(1))
            .map(|l| l.len() + 1)
            .sum();
        let offset = (line_start + self.column.saturating_sub(1)).min(text.len());
        Loc {
            line: u32::try_from(self.line).unwrap_or(u32::MAX),
            column: u32::try_from(self.column.max(1)).unwrap_or(u32::MAX),
            offset,
            len: 1,
        }
    }
}

pub fn parse(text: &str) -> Result<Ordered, JsonError> {
    serde_json::from_str(text).map_err(|e: serde_json::Error| {
        let full = e.to_string();
        let message = match full.find(" at line ") {
            Some(i) => full[..i].to_string(),
            None => full,
        };
        JsonError {
            message,
            line: e.line(),
            column: e.column(),
        }
    })
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OrderedVisitor)
    }
}

struct OrderedVisitor;

impl<'de> Visitor<'de> for OrderedVisitor {
    type Value = Ordered;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Ordered, E> {
        Ok(Ordered::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Ordered, E> {
        Ok(Ordered::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Ordered, E> {
        Ok(Ordered::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Ordered, E> {
        Ok(Ordered::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Ordered, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Ordered::Null, Ordered::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Ordered, E> {
        Ok(Ordered::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Ordered, E> {
        Ok(Ordered::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Ordered::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Ordered>()? {
            entries.push((k, v));
        }
        Ok(Ordered::Object(entries))
    }
}
