//! Splitting an INI host line into words as Ansible does: Python's `shlex.split(line,
//! comments=True)` in POSIX mode.
//!
//! Words are separated by whitespace; `'…'` keeps its content as written; `"…"` keeps it too,
//! except that `\"` and `\\` stand for `"` and `\`; outside quotes a backslash takes the next
//! character as it is; a `#` outside quotes ends the line, even inside a word.

/// Where a line could not be split (Python's message).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("no closing quotation")]
    NoClosingQuote,
    #[error("no escaped character after the final backslash")]
    NoEscapedCharacter,
}

/// One word and the byte offset in the line where it starts.
#[derive(Debug, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub offset: usize,
}

pub fn split(line: &str) -> Result<Vec<Word>, SplitError> {
    let mut words = Vec::new();
    let mut chars = line.char_indices().peekable();
    let mut current: Option<Word> = None;
    while let Some((i, c)) = chars.next() {
        let word = |current: &mut Option<Word>| {
            current.get_or_insert_with(|| Word {
                text: String::new(),
                offset: i,
            });
        };
        match c {
            _ if c.is_whitespace() => words.extend(current.take()),
            '#' => break,
            '\\' => {
                let (_, next) = chars.next().ok_or(SplitError::NoEscapedCharacter)?;
                word(&mut current);
                push(&mut current, next);
            }
            '\'' | '"' => {
                word(&mut current);
                loop {
                    let (_, q) = chars.next().ok_or(SplitError::NoClosingQuote)?;
                    if q == c {
                        break;
                    }
                    if c == '"' && q == '\\' {
                        let (_, next) = chars.next().ok_or(SplitError::NoClosingQuote)?;
                        if next != '"' && next != '\\' {
                            push(&mut current, '\\');
                        }
                        push(&mut current, next);
                    } else {
                        push(&mut current, q);
                    }
                }
            }
            _ => {
                word(&mut current);
                push(&mut current, c);
            }
        }
    }
    words.extend(current);
    Ok(words)
}

fn push(word: &mut Option<Word>, c: char) {
    if let Some(w) = word {
        w.text.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str) -> Vec<String> {
        split(line).unwrap().into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn words_quotes_escapes_and_comments() {
        assert_eq!(texts("web1 a=1  b='x y' # note"), ["web1", "a=1", "b=x y"]);
        assert_eq!(
            texts(r#"h c="say \"hi\" \n" d=a\ b"#),
            ["h", r#"c=say "hi" \n"#, "d=a b"]
        );
        assert_eq!(texts("h x=a#b"), ["h", "x=a"]);
        assert_eq!(texts("h e=''"), ["h", "e="]);
        assert_eq!(split("h x='open"), Err(SplitError::NoClosingQuote));
        assert_eq!(split("h x=\\"), Err(SplitError::NoEscapedCharacter));
        assert_eq!(split("  web1 a=1").unwrap()[1].offset, 7);
    }
}
