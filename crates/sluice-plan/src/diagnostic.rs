//! Diagnostics: located problems in a plan or inventory, collected so all are reported at once.
//!
//! Each [`Diagnostic`] names its file and, when known, the line, column and byte span of the
//! offending YAML node. It implements [`miette::Diagnostic`] so the CLI can draw the caret
//! excerpt; [`std::fmt::Display`] gives the one-line `file:line:col: message` form used in tests
//! and logs.

use std::fmt;
use std::sync::Arc;

use crate::warning::PlanWarning;

/// A loaded source file, kept for excerpts.
#[derive(Debug)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

impl SourceFile {
    /// Where the `ordinal`-th `{{` inside the YAML node at `node` is (counting from 0), with
    /// the length of its `{{…}}`: a diagnostic about one reference points at it rather than at
    /// the start of the string. Falls back to `node` when the source does not show it.
    pub fn locate_reference(&self, node: Loc, ordinal: usize) -> Loc {
        let Some(span) = self
            .text
            .get(node.offset..node.offset.saturating_add(node.len))
        else {
            return node;
        };
        let Some((at, _)) = span.match_indices("{{").nth(ordinal) else {
            return node;
        };
        let len = span[at..].find("}}").map_or(2, |end| end + 2);
        let offset = node.offset + at;
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Loc {
            line: u32::try_from(before.matches('\n').count() + 1).unwrap_or(u32::MAX),
            column: u32::try_from(before[line_start..].chars().count() + 1).unwrap_or(u32::MAX),
            offset,
            len,
        }
    }
}

/// Where in a source file a YAML node starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loc {
    /// 1-based; 0 when unknown.
    pub line: u32,
    /// 1-based; 0 when unknown.
    pub column: u32,
    /// Byte offset of the node's start.
    pub offset: usize,
    /// Byte length of the node's text (at least 1 for the caret).
    pub len: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem, with where it is and, when one can be given, how to fix it.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub file: Option<Arc<SourceFile>>,
    pub loc: Option<Loc>,
    pub help: Option<String>,
    /// The typed warning this diagnostic reports (every warning is one; errors have none).
    /// Boxed: most diagnostics are errors, and results carrying them stay small.
    pub warning: Option<Box<PlanWarning>>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            file: None,
            loc: None,
            help: None,
            warning: None,
        }
    }

    /// A typed warning, with its message and help; `.at(…)` locates it.
    pub fn warning(warning: PlanWarning) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            help: warning.help(),
            warning: Some(Box::new(warning.clone())),
            ..Diagnostic::error(format!("{warning} [{}]", warning.code()))
        }
    }

    pub fn at(mut self, file: &Arc<SourceFile>, loc: Loc) -> Self {
        self.file = Some(Arc::clone(file));
        self.loc = (loc.line > 0).then_some(loc);
        self
    }

    pub fn in_file(mut self, file: &Arc<SourceFile>) -> Self {
        self.file = Some(Arc::clone(file));
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.path)?;
            if let Some(loc) = self.loc {
                write!(f, ":{}:{}", loc.line, loc.column)?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, " ({help})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

/// Lines longer than this are shown as a window around the problem. miette pads the caret line
/// with `{:width$}`, which panics past 65,535 columns, and a line of thousands of characters
/// helps nobody read the problem anyway.
pub const MAX_EXCERPT_LINE: usize = 240;
/// Bytes of the long line shown on each side of the problem.
const WINDOW_SIDE: usize = 80;

/// A source excerpt miette can draw from: the file's text under its path, or, when a line near
/// the problem is too long, one window of the problem's line.
struct Excerpt<'a> {
    file: &'a SourceFile,
    window: Option<Window>,
}

/// A byte range of one line, and where it starts (0-based line, 0-based column in characters).
#[derive(Clone, Copy)]
struct Window {
    start: usize,
    end: usize,
    line: usize,
    column: usize,
}

impl Excerpt<'_> {
    /// The label's span, kept inside the window.
    fn label(&self, loc: Loc) -> miette::SourceSpan {
        let (offset, len) = match self.window {
            Some(w) => {
                let offset = loc.offset.clamp(w.start, w.end);
                (offset, loc.len.min(w.end - offset))
            }
            None => (loc.offset, loc.len),
        };
        miette::SourceSpan::new(offset.into(), len.max(1))
    }
}

/// The window to show for a problem at `loc`, if a line in the excerpt is too long to show.
fn window_for(text: &str, loc: Loc) -> Option<Window> {
    // A location from a parser may point inside a multi-byte character: widen it to whole ones.
    let offset = char_boundary(text, loc.offset.min(text.len()), false);
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    // The excerpt spans the label's lines and one line of context on each side.
    let label_end = char_boundary(
        text,
        loc.offset.saturating_add(loc.len).min(text.len()),
        true,
    );
    let from = text[..line_start.saturating_sub(1)]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let to = text[label_end..]
        .match_indices('\n')
        .nth(1)
        .map_or(text.len(), |(i, _)| label_end + i);
    if text[from..to]
        .split('\n')
        .all(|l| l.len() <= MAX_EXCERPT_LINE)
    {
        return None;
    }
    let start = char_boundary(
        text,
        offset.saturating_sub(WINDOW_SIDE).max(line_start),
        false,
    );
    let shown = loc.len.clamp(1, MAX_EXCERPT_LINE - 2 * WINDOW_SIDE);
    // At least the problem's own character, even when it is the line break.
    let end = (offset + shown + WINDOW_SIDE)
        .min(line_end)
        .max((offset + 1).min(text.len()));
    let end = char_boundary(text, end, true);
    Some(Window {
        start,
        end: end.max(start),
        line: text[..start].matches('\n').count(),
        column: text[line_start..start].chars().count(),
    })
}

/// The nearest char boundary at or before (`up` false) or after (`up` true) `i`.
fn char_boundary(text: &str, mut i: usize, up: bool) -> usize {
    while !text.is_char_boundary(i) {
        if up {
            i += 1;
        } else {
            i -= 1;
        }
    }
    i
}

impl miette::SourceCode for Excerpt<'_> {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let Some(w) = self.window else {
            let inner =
                self.file
                    .text
                    .read_span(span, context_lines_before, context_lines_after)?;
            // miette counts the column in bytes; a plan's columns are characters.
            let text = &self.file.text;
            let start = char_boundary(text, inner.span().offset().min(text.len()), false);
            let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
            return Ok(Box::new(miette::MietteSpanContents::new_named(
                self.file.path.clone(),
                inner.data(),
                *inner.span(),
                inner.line(),
                text[line_start..start].chars().count(),
                inner.line_count(),
            )));
        };
        // One line only. Without context the contents start at the span, as miette's own
        // excerpts do, so the `file:line:col` it prints is the problem's.
        let start = if context_lines_before == 0 {
            char_boundary(&self.file.text, span.offset().clamp(w.start, w.end), false)
        } else {
            w.start
        };
        let data = &self.file.text[start..w.end];
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.file.path.clone(),
            data.as_bytes(),
            miette::SourceSpan::new(start.into(), data.len()),
            w.line,
            w.column + self.file.text[w.start..start].chars().count(),
            1,
        )))
    }
}

/// miette draws the message, the caret excerpt and the help; the file name comes from the
/// excerpt. Display keeps `file:line:col:` for plain logs, so miette gets the bare message.
pub struct Rendered<'a>(&'a Diagnostic, Option<Excerpt<'a>>);

impl<'a> Rendered<'a> {
    pub fn new(diagnostic: &'a Diagnostic) -> Self {
        let excerpt = match (&diagnostic.file, diagnostic.loc) {
            (Some(file), Some(loc)) => Some(Excerpt {
                file,
                window: window_for(&file.text, loc),
            }),
            _ => None,
        };
        Rendered(diagnostic, excerpt)
    }
}

impl fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)
    }
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.0.file, self.0.loc) {
            (Some(_), Some(_)) => f.write_str(&self.0.message),
            _ => {
                // Without an excerpt, the one-line form is the only place the file is named.
                let plain = Diagnostic {
                    help: None,
                    ..self.0.clone()
                };
                write!(f, "{plain}")
            }
        }
    }
}

impl std::error::Error for Rendered<'_> {}

impl miette::Diagnostic for Rendered<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.0.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.1.as_ref().map(|e| e as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let loc = self.0.loc?;
        let span = self.1.as_ref()?.label(loc);
        Some(Box::new(std::iter::once(
            miette::LabeledSpan::new_with_span(Some("here".to_string()), span),
        )))
    }
}

/// Problems found so far; compilation goes on after an error to find the others.
#[derive(Debug, Default)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.is_error()).count()
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| !d.is_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Arc<SourceFile> {
        Arc::new(SourceFile {
            path: "p.yaml".into(),
            text: text.into(),
        })
    }

    fn draw(d: &Diagnostic) -> String {
        let handler =
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
                .with_width(100);
        let mut out = String::new();
        handler.render_report(&mut out, &Rendered::new(d)).unwrap();
        out
    }

    #[test]
    fn a_problem_far_out_on_a_long_line_is_drawn_as_a_window_of_it() {
        let long = format!("a: \"{}\", bad: 1\n", "x".repeat(70_000));
        let f = file(&format!("name: t\n{long}next: 1\n"));
        let offset = f.text.find("bad").unwrap();
        let loc = Loc {
            line: 2,
            column: u32::try_from(offset - 8 + 1).unwrap(),
            offset,
            len: 3,
        };
        let out = draw(&Diagnostic::error("unknown key `bad`").at(&f, loc));
        // `a: "` + 70,000 × `x` + `", ` come before `bad`.
        assert!(out.contains("[p.yaml:2:70008]"), "{out}");
        assert!(out.contains("\", bad: 1"), "{out}");
        assert!(out.lines().all(|l| l.chars().count() < 300), "{out}");
    }

    #[test]
    fn short_lines_keep_their_context() {
        let f = file("name: t\nsteps: 1\nbad: 2\n");
        let loc = Loc {
            line: 2,
            column: 1,
            offset: 8,
            len: 5,
        };
        let out = draw(&Diagnostic::error("x").at(&f, loc));
        assert!(out.contains("name: t") && out.contains("bad: 2"), "{out}");
    }

    #[test]
    fn a_reference_is_located_inside_its_string() {
        let f = file("steps:\n  - run: |\n      echo \\{{x}}\n      echo '{{vars.p}}'\n");
        let node = Loc {
            line: 3,
            column: 7,
            offset: 24,
            len: f.text.len() - 24,
        };
        let loc = f.locate_reference(node, 1);
        assert_eq!((loc.line, loc.column, loc.len), (4, 13, 10));
        assert_eq!(&f.text[loc.offset..loc.offset + loc.len], "{{vars.p}}");
        // Not in the source (a YAML escape spelt it differently): the string itself.
        assert_eq!(f.locate_reference(node, 5), node);
    }
}
