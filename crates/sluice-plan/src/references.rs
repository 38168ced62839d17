//! Parsing a plan's templates once, and checking where each reference stands.
//!
//! A command template is lexed as shell ([`crate::shell`]) and a health URL as a URL
//! ([`crate::url`]), so every reference knows how its value is to be written. A reference that
//! cannot be parsed, or that stands where no value is safe, is reported at the reference itself
//! (file, line and column of its `{{`), with a suggestion.

use std::sync::Arc;

use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile};
use crate::model;
use crate::shell;
use crate::template::{self, Insert, Template};
use crate::url;

/// Which template is being read, for messages: `step `install` (run)`.
pub struct Site<'a> {
    pub file: &'a Arc<SourceFile>,
    /// `step `install`` or `health check `app``.
    pub what: &'a str,
    /// The key: `run`, `undo`, `skip_if`, `http`, `tcp`.
    pub field: &'a str,
}

impl Site<'_> {
    fn error_at(&self, t: &model::Template, ordinal: usize, message: String) -> Diagnostic {
        let loc = self.file.locate_reference(t.loc, ordinal);
        Diagnostic::error(format!("{} ({}): {message}", self.what, self.field)).at(self.file, loc)
    }

    fn parse(&self, t: &model::Template, diags: &mut Diagnostics) -> Option<Template> {
        match template::parse(&t.text) {
            Ok(tpl) => Some(tpl),
            Err(e) => {
                diags.push(self.error_at(t, e.ordinal, e.to_string()));
                None
            }
        }
    }

    /// A shell command: `run`, `undo`, `skip_if` or a health `run`.
    pub fn command(&self, t: &model::Template, diags: &mut Diagnostics) -> Option<Template> {
        let mut tpl = self.parse(t, diags)?;
        let contexts = shell::contexts(&tpl);
        for (r, context) in tpl.references_mut().zip(contexts) {
            match context {
                Ok(shell::ShellContext::Word) => r.insert = Insert::ShellWord,
                Ok(shell::ShellContext::DoubleQuoted) => r.insert = Insert::ShellDoubleQuoted,
                Err(refusal) => {
                    let name = r.to_string();
                    diags.push(
                        self.error_at(t, r.ordinal, format!("`{{{{{name}}}}}` {refusal}"))
                            .with_help(refusal.help(&name)),
                    );
                }
            }
        }
        Some(tpl)
    }

    /// A health check's `http:` URL.
    pub fn url(&self, t: &model::Template, diags: &mut Diagnostics) -> Option<Template> {
        let mut tpl = self.parse(t, diags)?;
        let refused = url::place(&mut tpl);
        for (index, problem) in refused {
            if let Some(r) = tpl.references().nth(index) {
                diags.push(
                    self.error_at(t, r.ordinal, format!("`{{{{{r}}}}}` {problem}"))
                        .with_help(url::SchemeReference::help(r)),
                );
            }
        }
        Some(tpl)
    }

    /// A health check's `tcp:` address.
    pub fn address(&self, t: &model::Template, diags: &mut Diagnostics) -> Option<Template> {
        let mut tpl = self.parse(t, diags)?;
        url::place_tcp(&mut tpl);
        Some(tpl)
    }
}
