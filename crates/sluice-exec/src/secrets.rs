//! Secret values: read once at run start, handed to the transport, and scrubbed from everything
//! else.
//!
//! The plan artifact only says where each secret comes from. The values are read here, once,
//! before the first host starts, so a missing secret stops the run before anything changes.
//! Commands reach events through [`sluice_plan::ResolvedCommand::redacted`]; captured output is
//! passed through [`Secrets::redact`] before any event or report is built, because a command may
//! echo a token it was given.
//!
//! **Taint.** A value registered from output that held a secret (the raw value or a quoted form
//! of it) holds the secret too, so it is secret itself: [`Secrets::taint`] adds it to what is
//! masked from then on, for every host of the run, and the executor passes it to the host like
//! a secret ([`sluice_plan::RuntimeValues::register`]). Taint is transitive: a value registered
//! from output that held a tainted value is tainted.
//!
//! What is masked is every form a value can take in a command or its output: the value, its
//! shell-quoted word and its escaped form inside double quotes, masked whole and across line
//! breaks ([`sluice_model::SecretMask`]).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use sluice_model::{Capture, SecretMask};
use sluice_plan::command::double_quote_into;
use sluice_plan::{SecretFrom, SecretSource, shell_quote};

use crate::error::ExecError;

/// The run's secret values, by name, and what is masked. Clones share what is masked, which
/// grows as values are tainted.
#[derive(Clone, Default)]
pub struct Secrets {
    values: BTreeMap<String, String>,
    mask: Arc<RwLock<SecretMask>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.values.keys()).finish()
    }
}

/// The forms `value` can take in a command or its output: as it is, as one shell word, escaped
/// inside double quotes.
pub fn forms(value: &str) -> Vec<String> {
    let mut escaped = String::new();
    double_quote_into(&mut escaped, value);
    let mut forms = vec![value.to_string(), shell_quote(value), escaped];
    forms.sort();
    forms.dedup();
    forms
}

impl Secrets {
    /// Reads every secret from its environment variable or file. A file's trailing newline is
    /// not part of the value (editors add one). An empty value is an error.
    pub fn load(sources: &[SecretSource]) -> Result<Self, ExecError> {
        Self::load_with(sources, &|var| std::env::var(var).ok())
    }

    /// [`Secrets::load`] with the environment read through `env`.
    fn load_with(
        sources: &[SecretSource],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ExecError> {
        let mut values = BTreeMap::new();
        for source in sources {
            let (value, place) = match &source.from {
                SecretFrom::Env(var) => (
                    env(var).ok_or_else(|| ExecError::Secret {
                        name: source.name.clone(),
                        reason: format!("environment variable {var} is not set (or not UTF-8)"),
                    })?,
                    format!("environment variable {var}"),
                ),
                SecretFrom::File(path) => (
                    std::fs::read_to_string(path)
                        .map_err(|e| ExecError::Secret {
                            name: source.name.clone(),
                            reason: format!("cannot read {path}: {e}"),
                        })?
                        .trim_end_matches(['\n', '\r'])
                        .to_string(),
                    format!("file {path}"),
                ),
            };
            // An empty secret is a mistake (an empty export, an empty file), sent as an empty
            // word that nothing could redact.
            if value.is_empty() {
                return Err(ExecError::Secret {
                    name: source.name.clone(),
                    reason: format!("{place} is empty"),
                });
            }
            // Secrets reach the host in shell variables, which cannot hold a NUL byte.
            if value.contains('\0') {
                return Err(ExecError::Secret {
                    name: source.name.clone(),
                    reason: format!("{place} holds a NUL byte, which a shell cannot pass on"),
                });
            }
            values.insert(source.name.clone(), value);
        }
        Ok(Secrets::from_values(values))
    }

    /// Secrets given directly (tests, embedding).
    pub fn from_values(values: BTreeMap<String, String>) -> Self {
        let mask = SecretMask::new(values.values().flat_map(|v| forms(v)));
        Secrets {
            values,
            mask: Arc::new(RwLock::new(mask)),
        }
    }

    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    fn with<T>(&self, f: impl FnOnce(&SecretMask) -> T) -> T {
        f(&self.mask.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Every form of every secret, for a journal that redacts again on its own.
    pub fn masked_forms(&self) -> Vec<String> {
        self.values.values().flat_map(|v| forms(v)).collect()
    }

    /// True when `text` holds a secret or a tainted value, in any of its forms.
    pub fn found_in(&self, text: &str) -> bool {
        self.with(|m| m.found_in(text))
    }

    /// Makes `value` secret from now on (it holds a secret); returns the forms now masked, for
    /// the journal.
    pub fn taint(&self, value: &str) -> Vec<String> {
        let forms = forms(value);
        let mut mask = self.mask.write().unwrap_or_else(|p| p.into_inner());
        mask.extend(forms.iter().cloned());
        forms
    }

    /// Replaces every secret and tainted value (in any of its forms) in `text` with `***`:
    /// whole values, across line breaks, overlapping values leaving no part in clear.
    pub fn redact(&self, text: &str) -> String {
        self.with(|m| m.mask(text))
    }

    /// [`Secrets::redact`] of a capture's head and tail, values cut by the boundary between them
    /// included.
    pub fn redact_capture(&self, capture: &Capture) -> Capture {
        self.with(|m| m.mask_capture(capture))
    }
}

impl crate::run::RunContext {
    /// Makes `value` secret for the rest of the run (it holds a secret): masked in every fact
    /// from now on, by the executor and by the journal.
    pub(crate) fn taint(&self, value: &str) {
        for form in self.secrets.taint(value) {
            self.journal.treat_as_secret(&form);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_replaces_raw_and_quoted_values() {
        let secrets = Secrets::from_values(BTreeMap::from([
            ("a".to_string(), "hunter 2".to_string()),
            ("b".to_string(), "tok".to_string()),
            ("c".to_string(), "it's $x".to_string()),
        ]));
        assert_eq!(
            secrets.redact("x 'hunter 2' y hunter 2 ztokz 'it'\\''s $x' \"it's \\$x\""),
            "x *** y *** z***z *** \"***\""
        );
    }

    /// Issue 16, fault 7: a secret spanning lines was masked line by line (so not at all), and
    /// overlapping secrets were masked one after the other (`***ghij`).
    #[test]
    fn multi_line_and_overlapping_secrets_are_masked_whole() {
        let pem = "-----BEGIN KEY-----\nMIIB\nAAAA\n-----END KEY-----";
        let secrets = Secrets::from_values(BTreeMap::from([
            ("pem".to_string(), pem.to_string()),
            ("a".to_string(), "abcdef".to_string()),
            ("b".to_string(), "defghij".to_string()),
        ]));
        assert_eq!(secrets.redact(&format!("k:\n{pem}\nok")), "k:\n***\nok");
        assert_eq!(secrets.redact("<abcdefghij>"), "<***>");
    }

    #[test]
    fn a_tainted_value_is_masked_by_every_clone_from_then_on() {
        let secrets = Secrets::from_values(BTreeMap::from([("t".to_string(), "tok".to_string())]));
        let shared = secrets.clone();
        assert!(secrets.found_in("session tok-1"));
        assert!(!secrets.found_in("session other"));
        assert_eq!(shared.redact("id session tok-1 x"), "id session ***-1 x");
        let forms = secrets.taint("session tok-1");
        assert!(forms.contains(&"'session tok-1'".to_string()), "{forms:?}");
        assert_eq!(shared.redact("id session tok-1 x"), "id *** x");
        // Transitive: output holding the tainted value is found to hold a secret.
        assert!(shared.found_in("'session tok-1'"));
    }

    #[test]
    fn an_empty_secret_is_an_error_naming_the_secret() {
        let env = |var: &str| (var == "LB_TOKEN").then(String::new);
        let err = Secrets::load_with(
            &[SecretSource {
                name: "lb_token".into(),
                from: SecretFrom::Env("LB_TOKEN".into()),
            }],
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("secret `lb_token`: environment variable LB_TOKEN is empty"),
            "{err}"
        );
        let file = std::env::temp_dir().join(format!("sluice-empty-secret-{}", std::process::id()));
        std::fs::write(&file, "\n").unwrap();
        let path = file.to_string_lossy().to_string();
        let err = Secrets::load(&[SecretSource {
            name: "key".into(),
            from: SecretFrom::File(path.clone()),
        }])
        .unwrap_err()
        .to_string();
        std::fs::remove_file(&file).unwrap();
        assert!(
            err.contains(&format!("secret `key`: file {path} is empty")),
            "{err}"
        );
    }

    #[test]
    fn missing_env_secret_names_the_variable() {
        let err = Secrets::load(&[SecretSource {
            name: "t".into(),
            from: SecretFrom::Env("SLUICE_TEST_SURELY_UNSET_VAR".into()),
        }])
        .unwrap_err();
        assert!(err.to_string().contains("SLUICE_TEST_SURELY_UNSET_VAR"));
    }
}
