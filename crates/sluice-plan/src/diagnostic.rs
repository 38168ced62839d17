//! Diagnostics: located problems in a plan or inventory, collected so all are reported at once.
//!
//! Each [`Diagnostic`] names its file and, when known, the line, column and byte span of the
//! offending YAML node. It implements [`miette::Diagnostic`] so the CLI can draw the caret
//! excerpt; [`std::fmt::Display`] gives the one-line `file:line:col: message` form used in tests
//! and logs.

use std::fmt;
use std::sync::Arc;

/// A loaded source file, kept for excerpts.
#[derive(Debug)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
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
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            file: None,
            loc: None,
            help: None,
        }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message)
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

/// A source excerpt miette can draw from: the file's text under its path.
struct Excerpt<'a>(&'a SourceFile);

impl miette::SourceCode for Excerpt<'_> {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let inner = self
            .0
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.0.path.clone(),
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}

/// miette draws the message, the caret excerpt and the help; the file name comes from the
/// excerpt. Display keeps `file:line:col:` for plain logs, so miette gets the bare message.
pub struct Rendered<'a>(&'a Diagnostic, Option<Excerpt<'a>>);

impl<'a> Rendered<'a> {
    pub fn new(diagnostic: &'a Diagnostic) -> Self {
        let excerpt = match (&diagnostic.file, diagnostic.loc) {
            (Some(file), Some(_)) => Some(Excerpt(file)),
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
        self.0.file.as_ref()?;
        let span = miette::SourceSpan::new(loc.offset.into(), loc.len.max(1));
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
