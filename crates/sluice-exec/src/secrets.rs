//! Secret values: read once at run start, handed to the transport, and scrubbed from everything
//! else.
//!
//! The plan artifact only says where each secret comes from. The values are read here, once,
//! before the first host starts, so a missing secret stops the run before anything changes.
//! Commands reach events through [`sluice_plan::ResolvedCommand::redacted`]; captured output is
//! passed through [`Secrets::redact`] before any event or report is built, because a command may
//! echo a token it was given.

use std::collections::BTreeMap;

use sluice_plan::{SecretFrom, SecretSource, shell_quote};

use crate::error::ExecError;

/// The run's secret values, by name.
#[derive(Clone, Default)]
pub struct Secrets {
    values: BTreeMap<String, String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.values.keys()).finish()
    }
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
            values.insert(source.name.clone(), value);
        }
        Ok(Secrets { values })
    }

    /// Secrets given directly (tests, embedding).
    pub fn from_values(values: BTreeMap<String, String>) -> Self {
        Secrets { values }
    }

    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// Replaces every secret value (raw or shell-quoted) in `text` with `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        // Longest first, so a secret that contains another is replaced whole.
        let mut forms: Vec<String> = self
            .values
            .values()
            .filter(|v| !v.is_empty())
            .flat_map(|v| [shell_quote(v), v.clone()])
            .collect();
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        for form in forms {
            out = out.replace(&form, "***");
        }
        out
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
        ]));
        assert_eq!(
            secrets.redact("x 'hunter 2' y hunter 2 ztokz"),
            "x *** y *** z***z"
        );
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
