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
