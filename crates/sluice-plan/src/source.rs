//! Reading a YAML file safely: size, encoding, tabs, one document, bounded aliases and nesting.
//!
//! Input comes from people and from other tools, so every limit is checked before or while
//! parsing, never after building something large:
//! 1. the file is at most [`MAX_FILE_BYTES`] (checked from metadata, then while reading);
//! 2. it is UTF-8;
//! 3. no line is indented with a tab (YAML forbids it; saying so beats a parser message);
//! 4. serde-saphyr parses it with duplicate keys as errors and a budget bounding nesting depth,
//!    node count, alias replays and documents (one document only).

use std::io::Read;
use std::sync::Arc;

use serde_saphyr::options::DuplicateKeyPolicy;

use crate::diagnostic::{Diagnostic, Diagnostics, Loc, SourceFile};
use crate::node::{Node, Value};

/// Larger plans or inventories are refused: 16 MiB holds an inventory of about 300,000 hosts.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Deepest nesting of mappings and lists accepted.
pub const MAX_DEPTH: usize = 32;
/// Most YAML nodes in one file (an inventory of 300,000 hosts with an address each fits).
pub const MAX_NODES: usize = 2_000_000;
/// Most parser events in one file: a scalar is one event, a mapping or list two (start and
/// end), so within [`MAX_NODES`] there are never more than this and the node limit, with its
/// clearer message, is the one a large file meets. (serde-saphyr's own default, 1,000,000,
/// refused an inventory of 100,000 hosts with a directory and an environment variable each.)
pub const MAX_EVENTS: usize = 2 * MAX_NODES + 2;
/// Most events replayed through aliases: small, so an alias bomb stops within milliseconds.
pub const MAX_ALIAS_REPLAY: usize = 10_000;

/// Reads and parses `path`. On failure the diagnostics say why; nothing is partially returned.
pub fn load(path: &str, diags: &mut Diagnostics) -> Option<(Arc<SourceFile>, Node)> {
    let bytes = match read_bounded(path) {
        Ok(b) => b,
        Err(d) => {
            diags.push(d);
            return None;
        }
    };
    parse_bytes(path, bytes, diags)
}

/// Parses in-memory bytes as if read from `path` (used by tests and by `load`).
pub fn parse_bytes(
    path: &str,
    bytes: Vec<u8>,
    diags: &mut Diagnostics,
) -> Option<(Arc<SourceFile>, Node)> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        diags.push(too_large(path));
        return None;
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let offset = e.utf8_error().valid_up_to();
            let prefix = &e.as_bytes()[..offset];
            let line = prefix.iter().filter(|&&b| b == b'\n').count() + 1;
            diags.push(Diagnostic::error(format!(
                "{path}:{line}: not UTF-8 text (invalid byte at offset {offset}); save the file as UTF-8"
            )));
            return None;
        }
    };
    let file = Arc::new(SourceFile {
        path: path.to_string(),
        text,
    });
    if !check_tabs(&file, diags) {
        return None;
    }
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_nodes: MAX_NODES,
            max_events: MAX_EVENTS,
            max_documents: 1,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_REPLAY,
        },
        duplicate_keys: DuplicateKeyPolicy::Error,
    };
    match serde_saphyr::from_str_with_options::<Node>(&file.text, options) {
        Ok(node) => {
            refuse_nul(&file, &node, diags);
            Some((file, node))
        }
        Err(e) => {
            diags.push(syntax_error(&file, &e));
            None
        }
    }
}

/// Reports every string (values, keys, host names, commands) holding a NUL byte (YAML can write
/// one as `"\0"`). No command line, environment or SSH request can carry NUL: caught here, it is
/// a located error instead of a connection dropped in the middle of a run.
fn refuse_nul(file: &Arc<SourceFile>, node: &Node, diags: &mut Diagnostics) {
    match &node.value {
        Value::Str(s) if s.contains('\0') => diags.push(
            Diagnostic::error(
                "a NUL byte (`\\0`) in a string; no command, value or name can hold one",
            )
            .at(file, node.loc)
            .with_help("remove it"),
        ),
        Value::Seq(items) => {
            for item in items {
                refuse_nul(file, item, diags);
            }
        }
        Value::Map(entries) => {
            for (key, value) in entries {
                refuse_nul(file, key, diags);
                refuse_nul(file, value, diags);
            }
        }
        _ => {}
    }
}

fn too_large(path: &str) -> Diagnostic {
    Diagnostic::error(format!(
        "{path}: file is larger than {} MiB, the most sluice reads from one plan or inventory \
         (an inventory of about 300,000 hosts with an address each)",
        MAX_FILE_BYTES / (1024 * 1024)
    ))
}

pub(crate) fn read_bounded(path: &str) -> Result<Vec<u8>, Diagnostic> {
    let cannot = |e: std::io::Error| Diagnostic::error(format!("cannot read {path}: {e}"));
    let file = std::fs::File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large(path));
    }
    // The metadata may lie (a FIFO, a growing file): read one byte past the limit at most.
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    Ok(bytes)
}

/// Reports every line whose indentation contains a tab. Returns false when there was one.
fn check_tabs(file: &Arc<SourceFile>, diags: &mut Diagnostics) -> bool {
    let mut ok = true;
    let mut offset = 0;
    for (i, line) in file.text.split('\n').enumerate() {
        let indent_len = line.len() - line.trim_start_matches([' ', '\t']).len();
        if let Some(col) = line[..indent_len].find('\t') {
            ok = false;
            let loc = Loc {
                line: u32::try_from(i + 1).unwrap_or(u32::MAX),
                column: u32::try_from(col + 1).unwrap_or(u32::MAX),
                offset: offset + col,
                len: 1,
            };
            diags.push(
                Diagnostic::error("tab character in indentation")
                    .at(file, loc)
                    .with_help("YAML indents with spaces only; replace the tab with spaces"),
            );
        }
        offset += line.len() + 1;
    }
    ok
}

fn syntax_error(file: &Arc<SourceFile>, e: &serde_saphyr::Error) -> Diagnostic {
    let message = plain_message(e);
    let d = Diagnostic::error(message);
    match e.location() {
        Some(l) if l.line() > 0 => {
            let span = l.span();
            let loc = Loc {
                line: u32::try_from(l.line()).unwrap_or(u32::MAX),
                column: u32::try_from(l.column()).unwrap_or(u32::MAX),
                offset: span
                    .byte_offset()
                    .and_then(|o| usize::try_from(o).ok())
                    .unwrap_or_else(|| line_offset(&file.text, l.line(), l.column())),
                len: 1,
            };
            d.at(file, loc)
        }
        _ => d.in_file(file),
    }
}

/// serde-saphyr's message without its snippet or position (miette draws ours), and the limits
/// it enforces for us reworded to say which limit and what to do.
fn plain_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    let first = match first.find(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    if first.contains("Depth") {
        format!("nested deeper than {MAX_DEPTH} levels; a plan or inventory never needs that")
    } else if first.contains("Documents") {
        "more than one YAML document (`---`); a plan or inventory is a single document".into()
    } else if first.contains("Nodes") {
        format!("more than {MAX_NODES} YAML nodes, the most sluice reads from one file")
    } else if first.contains("alias replay limit") || first.contains("Alias") {
        format!(
            "aliases expand to more than {MAX_ALIAS_REPLAY} nodes (an alias bomb?); write the values out"
        )
    } else if let Some(rest) = first.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        format!("duplicate key `{key}`; each key may appear once in a mapping")
    } else {
        first.to_string()
    }
}

/// The byte offset of 1-based `line` and `column`; the column counts characters, as the YAML
/// parser does (counting bytes put the caret inside a character after a non-ASCII one).
fn line_offset(text: &str, line: u64, column: u64) -> usize {
    let start: usize = text
        .split('\n')
        .take(usize::try_from(line.saturating_sub(1)).unwrap_or(usize::MAX))
        .map(|l| l.len() + 1)
        .sum();
    let start = start.min(text.len());
    let chars = usize::try_from(column.saturating_sub(1)).unwrap_or(0);
    text[start..]
        .char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| start + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Option<Node>, Vec<String>) {
        let mut diags = Diagnostics::default();
        let node = parse_bytes("t.yaml", text.as_bytes().to_vec(), &mut diags).map(|(_, n)| n);
        (node, diags.items.iter().map(|d| d.to_string()).collect())
    }

    /// A syntax error after a non-ASCII character points at the right character: the parser
    /// counts columns in characters, the excerpt in bytes.
    #[test]
    fn a_column_after_non_ascii_text_is_a_character_column() {
        let text = "a: 1\nbé: x: y\n";
        let at = line_offset(text, 2, 5);
        assert_eq!(&text[at..at + 1], "x");
        assert_eq!(line_offset(text, 9, 1), text.len());
        assert_eq!(line_offset(text, 2, 99), text.len());
    }

    #[test]
    fn nodes_carry_line_and_column() {
        let (node, _) = parse("a: 1\nb:\n  c: x\n");
        let Some(Node {
            value: Value::Map(entries),
            ..
        }) = node
        else {
            panic!("not a map")
        };
        let (_, b) = &entries[1];
        let Value::Map(inner) = &b.value else {
            panic!()
        };
        assert_eq!((inner[0].1.loc.line, inner[0].1.loc.column), (3, 6));
        assert_eq!(inner[0].1.loc.offset, 13);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let (node, errors) = parse("a: 1\na: 2\n");
        assert!(node.is_none());
        assert!(errors[0].starts_with("t.yaml:2:"), "{errors:?}");
        assert!(errors[0].contains("duplicate"), "{errors:?}");
    }

    #[test]
    fn alias_bomb_stops_quickly() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let start = std::time::Instant::now();
        let (node, errors) = parse(&text);
        assert!(node.is_none());
        assert!(!errors.is_empty());
        assert!(start.elapsed().as_secs() < 2);
    }

    #[test]
    fn tabs_and_non_utf8_are_named() {
        let (_, errors) = parse("a:\n\tb: 1\n");
        assert_eq!(
            errors,
            [
                "t.yaml:2:1: tab character in indentation (YAML indents with spaces only; replace the tab with spaces)"
            ]
        );
        let mut diags = Diagnostics::default();
        assert!(parse_bytes("t.yaml", b"a: \xff\n".to_vec(), &mut diags).is_none());
        assert!(diags.items[0].to_string().contains("not UTF-8"));
    }

    /// The limits promise what their comments say: an inventory of 300,000 hosts with an
    /// address each is read (it was refused by serde-saphyr's default event budget, 1,000,000,
    /// from 200,000 hosts), and one node past the node limit is refused with its message.
    #[test]
    fn an_inventory_of_300000_hosts_fits_and_the_node_limit_is_named() {
        let mut text = String::from("hosts:\n");
        for i in 0..300_000u32 {
            let [_, a, b, c] = i.to_be_bytes();
            text.push_str(&format!("  h{i}: {{ address: 10.{a}.{b}.{c} }}\n"));
        }
        assert!(text.len() as u64 <= MAX_FILE_BYTES);
        let (node, errors) = parse(&text);
        assert!(errors.is_empty(), "{errors:?}");
        let Some(Node {
            value: Value::Map(top),
            ..
        }) = node
        else {
            panic!("not a map")
        };
        let Value::Map(hosts) = &top[0].1.value else {
            panic!("hosts is not a map")
        };
        assert_eq!(hosts.len(), 300_000);

        let over = format!("[{}]\n", vec!["1"; MAX_NODES].join(","));
        let (node, errors) = parse(&over);
        assert!(node.is_none());
        assert!(
            errors[0].contains("more than 2000000 YAML nodes"),
            "{errors:?}"
        );
    }
}
