//! INI values as Ansible reads them: Python's `ast.literal_eval`, or the text itself when it is
//! not a Python literal.
//!
//! So `80` is a number, `True` a boolean (but `true` and `yes` stay text), `'x'` the text `x`,
//! `[1, 'a']` a list and `{'a': 1}` a mapping; tuples and sets become lists and a trailing
//! `# comment` is ignored, as Python does. Not evaluated (kept as text): complex numbers,
//! integers beyond 64 bits, f-strings and `\N{…}` escapes.

use serde_json::{Map, Number, Value};

/// Deepest nesting read; Python's own parser stops near here too.
const MAX_DEPTH: usize = 100;

/// The value of `text` as Ansible's INI reader gives it.
pub fn ini_value(text: &str) -> Value {
    literal(text).unwrap_or_else(|| Value::String(text.to_string()))
}

/// `text` as a Python literal, or `None` when it is not one.
pub fn literal(text: &str) -> Option<Value> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
        depth: 0,
    };
    p.skip_inline_space();
    let first = p.value()?;
    p.skip_inline_space();
    // `1, 2` at the top level is a tuple.
    let value = if p.peek() == Some(b',') {
        let mut items = vec![first];
        while p.eat(b',') {
            p.skip_inline_space();
            if p.at_end_or_comment() {
                break;
            }
            items.push(p.value()?);
            p.skip_inline_space();
        }
        Value::Array(items)
    } else {
        first
    };
    p.at_end_or_comment().then_some(value)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        self.i += usize::from(hit);
        hit
    }

    fn skip_inline_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\x0c')) {
            self.i += 1;
        }
    }

    /// Inside brackets Python also skips line breaks and comments.
    fn skip_space(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\x0c' | b'\n' | b'\r') => self.i += 1,
                Some(b'#') => {
                    while !matches!(self.peek(), None | Some(b'\n')) {
                        self.i += 1;
                    }
                }
                _ => return,
            }
        }
    }

    fn at_end_or_comment(&self) -> bool {
        matches!(self.peek(), None | Some(b'#'))
    }

    fn value(&mut self) -> Option<Value> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let v = self.value_inner();
        self.depth -= 1;
        v
    }

    fn value_inner(&mut self) -> Option<Value> {
        match self.peek()? {
            b'[' => {
                self.i += 1;
                Some(Value::Array(self.items(b']')?))
            }
            b'(' => self.parenthesised(),
            b'{' => self.braces(),
            b'+' | b'-' | b'0'..=b'9' | b'.' => self.signed_number(),
            b'\'' | b'"' => self.strings(),
            c if c.is_ascii_alphabetic() || c == b'_' => self.word(),
            _ => None,
        }
    }

    /// Comma-separated values up to `close` (a trailing comma allowed).
    fn items(&mut self, close: u8) -> Option<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            self.skip_space();
            if self.eat(close) {
                return Some(items);
            }
            items.push(self.value()?);
            self.skip_space();
            if !self.eat(b',') {
                self.skip_space();
                return self.eat(close).then_some(items);
            }
        }
    }

    /// `()` and `(a, b)` are tuples (lists here); `(a)` is `a`.
    fn parenthesised(&mut self) -> Option<Value> {
        self.i += 1;
        self.skip_space();
        if self.eat(b')') {
            return Some(Value::Array(Vec::new()));
        }
        let first = self.value()?;
        self.skip_space();
        if self.eat(b')') {
            return Some(first);
        }
        if !self.eat(b',') {
            return None;
        }
        let mut rest = self.items(b')')?;
        rest.insert(0, first);
        Some(Value::Array(rest))
    }

    /// `{}` and `{k: v, …}` are mappings; `{a, b}` is a set (a list here, duplicates dropped).
    fn braces(&mut self) -> Option<Value> {
        self.i += 1;
        self.skip_space();
        if self.eat(b'}') {
            return Some(Value::Object(Map::new()));
        }
        let first = self.value()?;
        self.skip_space();
        if !self.eat(b':') {
            self.skip_space();
            let mut items = if self.eat(b',') {
                self.items(b'}')?
            } else if self.eat(b'}') {
                Vec::new()
            } else {
                return None;
            };
            items.insert(0, first);
            let mut set: Vec<Value> = Vec::new();
            for item in items {
                if !set.contains(&item) {
                    set.push(item);
                }
            }
            return Some(Value::Array(set));
        }
        let mut map = Map::new();
        let mut key = first;
        loop {
            self.skip_space();
            let value = self.value()?;
            map.insert(key_text(&key)?, value);
            self.skip_space();
            let more = self.eat(b',');
            self.skip_space();
            if self.eat(b'}') {
                return Some(Value::Object(map));
            }
            if !more {
                return None;
            }
            key = self.value()?;
            self.skip_space();
            if !self.eat(b':') {
                return None;
            }
        }
    }

    fn word(&mut self) -> Option<Value> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            self.i += 1;
        }
        let word = &self.text[start..self.i];
        match word {
            "True" => Some(Value::Bool(true)),
            "False" => Some(Value::Bool(false)),
            "None" => Some(Value::Null),
            // A string prefix: r'…', b'…', u'…', rb'…', br'…'.
            _ if matches!(self.peek(), Some(b'\'' | b'"')) => {
                self.i = start;
                self.strings()
            }
            _ => None,
        }
    }

    fn signed_number(&mut self) -> Option<Value> {
        let mut negative = false;
        loop {
            match self.peek() {
                Some(b'-') => negative = !negative,
                Some(b'+') => {}
                _ => break,
            }
            self.i += 1;
            self.skip_inline_space();
        }
        if self.s[self.i..].starts_with(b"...") {
            return None;
        }
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
            || (matches!(self.peek(), Some(b'+' | b'-'))
                && matches!(self.s.get(self.i.wrapping_sub(1)), Some(b'e' | b'E'))
                && !self.text[start..self.i]
                    .to_ascii_lowercase()
                    .starts_with("0x"))
        {
            self.i += 1;
        }
        number(&self.text[start..self.i], negative)
    }

    /// One or more adjacent string literals, concatenated as Python does.
    fn strings(&mut self) -> Option<Value> {
        let mut out = String::new();
        let mut kinds = Vec::new();
        loop {
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                self.i += 1;
            }
            let prefix = self.text[start..self.i].to_ascii_lowercase();
            if !matches!(prefix.as_str(), "" | "r" | "u" | "b" | "rb" | "br") {
                return None;
            }
            let (raw, bytes) = (prefix.contains('r'), prefix.contains('b'));
            kinds.push(bytes);
            out.push_str(&self.string_body(raw)?);
            let save = self.i;
            self.skip_inline_space();
            let next_is_string = match self.peek() {
                Some(b'\'' | b'"') => true,
                Some(c) if c.is_ascii_alphabetic() => {
                    let rest = &self.s[self.i..];
                    let n = rest.iter().take_while(|c| c.is_ascii_alphabetic()).count();
                    n <= 2 && matches!(rest.get(n), Some(b'\'' | b'"'))
                }
                _ => false,
            };
            if !next_is_string {
                self.i = save;
                break;
            }
        }
        // Python refuses to join bytes and text.
        if kinds.iter().any(|&b| b != kinds[0]) {
            return None;
        }
        Some(Value::String(out))
    }

    fn string_body(&mut self, raw: bool) -> Option<String> {
        let quote = self.peek()?;
        let triple = self.s[self.i..].starts_with(&[quote; 3]);
        self.i += if triple { 3 } else { 1 };
        let mut out = String::new();
        loop {
            let c = self.text[self.i..].chars().next()?;
            if triple && self.s[self.i..].starts_with(&[quote; 3]) {
                self.i += 3;
                return Some(out);
            }
            if !triple && c as u32 == u32::from(quote) {
                self.i += 1;
                return Some(out);
            }
            if !triple && c == '\n' {
                return None;
            }
            self.i += c.len_utf8();
            if c != '\\' {
                out.push(c);
                continue;
            }
            let next = self.text[self.i..].chars().next()?;
            self.i += next.len_utf8();
            if raw {
                out.push('\\');
                out.push(next);
                continue;
            }
            self.escape(next, &mut out)?;
        }
    }

    fn escape(&mut self, c: char, out: &mut String) -> Option<()> {
        let simple = match c {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'v' => Some('\x0b'),
            '\\' | '\'' | '"' => Some(c),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            return Some(());
        }
        let mut hex = |n: usize| {
            let digits = self.text.get(self.i..self.i + n)?;
            let v = u32::from_str_radix(digits, 16).ok()?;
            self.i += n;
            char::from_u32(v)
        };
        match c {
            '\n' => {}
            'x' => out.push(hex(2)?),
            'u' => out.push(hex(4)?),
            'U' => out.push(hex(8)?),
            '0'..='7' => {
                let mut v = c.to_digit(8)?;
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            self.i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(char::from_u32(v)?);
            }
            'N' => return None,
            // Python keeps an unknown escape as it is (with a warning Ansible silences).
            other => {
                out.push('\\');
                out.push(other);
            }
        }
        Some(())
    }
}

/// A Python number literal (`1_000`, `0x1F`, `0o17`, `0b1`, `1.5`, `1e3`, `.5`); `None` for
/// anything else, `017` included (Python refuses leading zeros).
fn number(text: &str, negative: bool) -> Option<Value> {
    let lower = text.to_ascii_lowercase();
    let radix = [("0x", 16), ("0o", 8), ("0b", 2)]
        .into_iter()
        .find(|(p, _)| lower.starts_with(p));
    if let Some((prefix, radix)) = radix {
        let digits = digits_without_underscores(lower[prefix.len()..].trim_start_matches('_'))?;
        let v = i64::from_str_radix(&digits, radix).ok()?;
        return Some(Value::from(if negative { -v } else { v }));
    }
    if lower.ends_with('j') {
        return None;
    }
    let is_float = lower.contains(['.', 'e']);
    if !is_float {
        let digits = digits_without_underscores(&lower)?;
        if digits.len() > 1 && digits.starts_with('0') && digits.bytes().any(|b| b != b'0') {
            return None;
        }
        let v: i64 = digits.parse().ok()?;
        return Some(Value::from(if negative { -v } else { v }));
    }
    let (mantissa, exponent) = match lower.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (lower.as_str(), None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let mut clean = String::new();
    if !whole.is_empty() {
        clean.push_str(&digits_without_underscores(whole)?);
    }
    clean.push('.');
    if !fraction.is_empty() {
        clean.push_str(&digits_without_underscores(fraction)?);
    }
    if let Some(e) = exponent {
        let (sign, e) = match e.strip_prefix(['+', '-']) {
            Some(rest) => (&e[..1], rest),
            None => ("", e),
        };
        clean.push('e');
        clean.push_str(sign);
        clean.push_str(&digits_without_underscores(e)?);
    }
    let v: f64 = clean.parse().ok()?;
    Number::from_f64(if negative { -v } else { v }).map(Value::Number)
}

/// Digits with single underscores between them, as Python allows; `None` otherwise.
fn digits_without_underscores(text: &str) -> Option<String> {
    if text.is_empty() || text.starts_with('_') || text.ends_with('_') || text.contains("__") {
        return None;
    }
    let digits: String = text.chars().filter(|&c| c != '_').collect();
    digits
        .chars()
        .all(|c| c.is_ascii_hexdigit())
        .then_some(digits)
}

/// A mapping key as `json.dumps` writes it (numbers, booleans and None become text).
fn key_text(key: &Value) -> Option<String> {
    match key {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".into()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_literals_and_plain_text() {
        let cases = [
            ("80", json!(80)),
            ("-5", json!(-5)),
            ("0x10", json!(16)),
            ("0o17", json!(15)),
            ("1_000", json!(1000)),
            ("1.5", json!(1.5)),
            ("1e3", json!(1000.0)),
            ("True", json!(true)),
            ("None", json!(null)),
            ("'quoted'", json!("quoted")),
            ("\"a\" 'b'", json!("ab")),
            ("'tab\\there'", json!("tab\there")),
            ("r'raw\\n'", json!("raw\\n")),
            ("[1, 'a']", json!([1, "a"])),
            ("(1, 2)", json!([1, 2])),
            ("(1)", json!(1)),
            ("{'a': 1, 2: [True]}", json!({"a": 1, "2": [true]})),
            ("{1, 2, 1}", json!([1, 2])),
            ("1, 2", json!([1, 2])),
            ("1 # a comment", json!(1)),
            // Not literals: kept as written.
            ("true", json!("true")),
            ("yes", json!("yes")),
            ("017", json!("017")),
            ("1.2.3", json!("1.2.3")),
            ("from ini # comment", json!("from ini # comment")),
            ("[1, 2", json!("[1, 2")),
            ("f'x'", json!("f'x'")),
            ("1j", json!("1j")),
            ("", json!("")),
            ("/etc/hosts", json!("/etc/hosts")),
            ("10.0.0.1", json!("10.0.0.1")),
        ];
        for (text, want) in cases {
            assert_eq!(ini_value(text), want, "{text}");
        }
    }

    #[test]
    fn deep_nesting_stays_text() {
        let text = "[".repeat(1000) + &"]".repeat(1000);
        assert_eq!(ini_value(&text), Value::String(text.clone()));
    }
}
