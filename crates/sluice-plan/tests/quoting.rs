//! Shell quoting, checked against a real shell: any value inserted with `{{vars.x}}` reaches the
//! command as exactly one word with exactly its bytes.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use sluice_plan::shell_quote;

/// What `sh` sees as the words of `printf '%s\n' VALUE`, one per line.
fn words_after_sh(quoted: &str) -> Vec<String> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf '%s\\n' {quoted} | od -An -tx1 | tr -d ' \\n'; echo; printf '%s\\0' {quoted} | tr -cd '\\0' | wc -c"))
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn hex(s: &str) -> String {
    s.bytes()
        .chain([b'\n'])
        .map(|b| format!("{b:02x}"))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_value_is_one_word_with_its_exact_bytes(value in "[^\\x00]{0,40}") {
        let lines = words_after_sh(&shell_quote(&value));
        // The bytes printed are the value's, and sh saw exactly one word.
        prop_assert_eq!(&lines[0], &hex(&value));
        prop_assert_eq!(lines[1].trim(), "1");
    }
}

#[test]
fn hostile_values_stay_inert() {
    // Harmless payloads: if quoting ever broke, this test must not damage the machine.
    for value in [
        "a; echo injected",
        "$(echo injected)",
        "`id`",
        "it's",
        "*",
        "a\nb",
        "--help",
        "",
    ] {
        let lines = words_after_sh(&shell_quote(value));
        assert_eq!(lines[0], hex(value), "{value:?}");
        assert_eq!(lines[1].trim(), "1", "{value:?}");
    }
}

/// Payloads a hostile variable, secret or registered value could carry. Each would create a
/// file named `pwned` in the working directory, expand, split or end a quote if it reached the
/// shell unquoted.
const PAYLOADS: &[&str] = &[
    "$(touch pwned)",
    "`touch pwned`",
    "\"; touch pwned; \"",
    "'; touch pwned; '",
    "\"$(touch pwned)\"",
    "'$(touch pwned)'",
    "\\$(touch pwned)",
    "\\\"$(touch pwned)\\\"",
    "${X:-$(touch pwned)}",
    "$'\\x41' $(touch pwned)",
    "a\ntouch pwned",
    "\ntouch pwned\n",
    "x\\",
    "\\",
    "'",
    "\"",
    "$HOME",
    "$",
    "*",
    "?",
    "[a-z]*",
    "~",
    "~root",
    "{a,b}",
    "a b\tc",
    "-n",
    "%s%d",
    "!",
    "# not a comment",
    ";|&<>()",
    "}",
    "))",
    "EOF",
    "",
    "café \u{1b}[31m",
];

/// Where a plan writes a value: the command (`R` stands for the reference) and the bytes it
/// writes to `out`, as prefix and suffix around the value.
const CONTEXTS: &[(&str, &str, &str)] = &[
    ("printf %s R > out", "", ""),
    ("printf %s \"v=R.\" > out", "v=", "."),
    ("printf %s 'a'R\"b\" > out", "a", "b"),
    ("x=R; printf %s \"$x\" > out", "", ""),
    ("printf %s \"<R|R>\" > out", "<", "|VALUE>"),
    ("printf %s \"$(printf %s \"<R>\")\" > out", "<", ">"),
    ("printf %s \"$(printf %s R; printf .)\" > out", "", "."),
    ("case R in *) printf %s R > out;; esac", "", ""),
    ("test -n \"R\" || true; printf %s R > out", "", ""),
];

/// Contexts where no quoting makes a value safe: the planner must refuse each of them.
const REFUSED: &[&str] = &[
    "printf %s 'R' > out",
    "printf %s \"`printf %s R`\" > out",
    "eval printf %s R",
    "sh -c \"printf %s R\"",
    "cat > out <<EOF\nR\nEOF",
    "echo $((R))",
    "echo ${X:-R}",
    "echo $R",
];

const REFERENCES: &[(&str, &str)] = &[
    ("var", "{{vars.p}}"),
    ("secret", "{{secrets.s}}"),
    ("registered", "{{r}}"),
];

const INVENTORY: &str = "hosts:\n  h: { transport: local }\n";

/// A plan with one step per (context, kind of reference).
fn payload_plan(contexts: &[&str]) -> String {
    let mut plan = String::from(
        "name: payloads\ntargets: [h]\nsecrets: { s: { env: S } }\nsteps:\n  - { id: source, run: \"true\", register: r }\n",
    );
    for (i, context) in contexts.iter().enumerate() {
        for (kind, reference) in REFERENCES {
            let run = serde_json::to_string(&context.replace('R', reference)).unwrap();
            plan.push_str(&format!(
                "  - {{ id: c{i}-{kind}, run: {run}, after: [source] }}\n"
            ));
        }
    }
    plan
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("quoting-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every payload, in every context that accepts it and for every kind of reference, reaches the
/// command byte for byte through a real `sh -c` (and `bash -c`, which some hosts run as sh),
/// and nothing it contains runs.
#[test]
fn payloads_arrive_exact_and_inert_in_every_context() {
    let contexts: Vec<&str> = CONTEXTS.iter().map(|c| c.0).collect();
    let plan = payload_plan(&contexts);
    let mut failures = Vec::new();
    let dirs = [scratch("sh"), scratch("bash")];
    for payload in PAYLOADS {
        let compiled = sluice_plan::compile_sources(
            ("plan.yaml", &plan),
            ("inv.yaml", INVENTORY),
            &[("p".to_string(), payload.to_string())],
        )
        .unwrap_or_else(|e| panic!("{payload:?}: {e:?}"));
        let mut values = sluice_plan::RuntimeValues::default();
        values.secrets.insert("s".into(), payload.to_string());
        values.registered.insert("r".into(), payload.to_string());
        let host = &compiled.artifact.hosts[0];
        for step in host.steps.iter().filter(|s| s.id != "source") {
            let context: usize = step.id[1..step.id.find('-').unwrap()].parse().unwrap();
            let (_, prefix, suffix) = CONTEXTS[context];
            let expected = format!("{prefix}{payload}{}", suffix.replace("VALUE", payload));
            let resolved = step.run.resolve(&values).unwrap();
            let command = resolved.text;
            // The secret is a shell variable the transport sets from stdin; here the
            // environment stands in for it (the transport's framing is tested in sluice-ssh).
            let secrets: Vec<_> = resolved
                .secrets
                .iter()
                .map(|b| (b.variable.clone(), b.value.clone()))
                .collect();
            for shell in ["sh", "bash"] {
                let dir = &dirs[usize::from(shell == "bash")];
                let status = std::process::Command::new(shell)
                    .arg("-c")
                    .arg(&command)
                    .envs(secrets.iter().cloned())
                    .current_dir(dir)
                    .env("HOME", "/home-of-the-test")
                    .status()
                    .unwrap_or_else(|e| {
                        panic!("cannot run {shell} ({e}); install it (apt-get install {shell})")
                    });
                let out = std::fs::read(dir.join("out")).unwrap_or_default();
                let pwned = dir.join("pwned").exists();
                if !status.success() || pwned || out != expected.as_bytes() {
                    failures.push(format!(
                        "{shell} {}: payload {payload:?}: command {command:?}: exit {status}, pwned {pwned}, wrote {:?}, expected {expected:?}",
                        step.id,
                        String::from_utf8_lossy(&out)
                    ));
                }
                // The next command starts from an empty directory again.
                for entry in std::fs::read_dir(dir).unwrap() {
                    std::fs::remove_file(entry.unwrap().path()).unwrap();
                }
            }
        }
    }
    for dir in dirs {
        std::fs::remove_dir_all(dir).unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The places no quoting makes safe are refused at plan time, for every kind of reference,
/// each with the line and column of its `{{`.
#[test]
fn unsafe_contexts_are_refused_at_the_reference() {
    let plan = payload_plan(REFUSED);
    let Err(sluice_plan::PlanError::Invalid(diags)) =
        sluice_plan::compile_sources(("plan.yaml", &plan), ("inv.yaml", INVENTORY), &[])
    else {
        panic!("accepted");
    };
    let errors: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    for (i, _) in REFUSED.iter().enumerate() {
        for (kind, _) in REFERENCES {
            let step = format!("step `c{i}-{kind}` (run): ");
            assert!(
                errors.iter().any(|e| e.contains(&step)),
                "{step} not refused: {errors:#?}"
            );
        }
    }
    // Each located at its reference: line 6 is
    // `  - { id: c0-var, run: "printf %s '{{vars.p}}' > out", after: [source] }`.
    assert!(
        errors[0].starts_with(
            "plan.yaml:6:36: step `c0-var` (run): `{{vars.p}}` is inside single quotes"
        ),
        "{errors:#?}"
    );
}

/// What `sh` prints for `printf '%s' "<VALUE>"` with the value escaped for double quotes.
fn through_double_quotes(value: &str) -> Vec<u8> {
    let template = sluice_plan::template::parse("printf %s \"<{{vars.v}}>\"").unwrap();
    let mut template = template;
    let contexts = sluice_plan::shell::contexts(&template);
    for (r, c) in template.references_mut().zip(contexts) {
        assert_eq!(c, Ok(sluice_plan::shell::ShellContext::DoubleQuoted));
        r.insert = sluice_plan::template::Insert::ShellDoubleQuoted;
    }
    let vars = std::collections::BTreeMap::from([(
        "v".to_string(),
        serde_json::Value::String(value.to_string()),
    )]);
    let connection: sluice_plan::Connection = serde_json::from_value(serde_json::json!({
        "transport": "local", "address": "h", "port": 22, "user": null, "identity_files": [],
        "known_hosts": [], "host_key_checking": "strict", "proxy_jump": [], "workdir": null,
        "env": {}
    }))
    .unwrap();
    let scope = sluice_plan::template::Scope {
        host: "h",
        connection: &connection,
        vars: &vars,
    };
    let command = template.render(&scope, &|_| None).unwrap().to_string();
    std::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .output()
        .unwrap()
        .stdout
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_value_is_exact_inside_double_quotes(value in "[^\\x00]{0,40}") {
        prop_assert_eq!(through_double_quotes(&value), format!("<{value}>").into_bytes());
    }
}
