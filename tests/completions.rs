//! `sluice completions` and `sluice man`: the bash script loads in a real bash and completes a
//! subcommand and an option; zsh and fish scripts are produced; every man page renders with
//! groff without a warning (groff-base, installed by scripts/test.sh when missing).

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

mod support;
use support::sluice;

fn completions(shell: &str) -> String {
    let out = sluice().args(["completions", shell]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What bash's completion function offers for the words of `line` (the last one being
/// completed), after checking that `complete -p sluice` knows the function.
fn bash_complete(script: &std::path::Path, line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split(' ').collect();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let current = words[words.len() - 1];
    let previous = words[words.len().saturating_sub(2)];
    let program = [
        format!("source '{}'", script.display()),
        "complete -p sluice".to_string(),
        format!("COMP_WORDS=({})", quoted.join(" ")),
        format!("COMP_CWORD={}", words.len() - 1),
        format!("COMP_LINE='{line}'"),
        "COMP_POINT=${#COMP_LINE}".to_string(),
        format!("_sluice sluice '{current}' '{previous}' 2>/dev/null"),
        "printf '%s\\n' \"${COMPREPLY[@]}\"".to_string(),
    ]
    .join("\n");
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-e", "-c", &program])
        .output()
        .expect("bash is needed for this test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("complete ") && stdout.contains("-F _sluice sluice"),
        "`complete -p sluice` shows the function: {stdout}"
    );
    stdout.lines().skip(1).map(str::to_string).collect()
}

#[test]
fn the_bash_script_loads_and_completes_subcommands_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("sluice.bash");
    std::fs::write(&script, completions("bash")).unwrap();
    assert_eq!(
        bash_complete(&script, "sluice ap"),
        ["apply", "approve-plan", "approve"]
    );
    assert_eq!(
        bash_complete(&script, "sluice apply --metr"),
        ["--metrics-file"]
    );
    assert!(bash_complete(&script, "sluice co").contains(&"completions".to_string()));
}

#[test]
fn zsh_and_fish_scripts_name_the_subcommands() {
    let zsh = completions("zsh");
    assert!(zsh.starts_with("#compdef sluice"), "{zsh}");
    assert!(zsh.contains("'apply:"), "{zsh}");
    let fish = completions("fish");
    assert!(fish.contains("complete -c sluice"), "{fish}");
    assert!(fish.contains("-a \"apply\""), "{fish}");
    let out = sluice().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is invalid input"
    );
}

#[test]
fn man_pages_are_written_for_every_subcommand_and_render_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = sluice()
        .arg("man")
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let help = sluice().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    // Every subcommand `sluice --help` lists has its page.
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A wrapped description continues further in.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() > 15, "{help}");
    let pages = std::iter::once("sluice".to_string())
        .chain(commands.iter().map(|c| format!("sluice-{c}")))
        .chain(["sluice-audit-verify".to_string()]);
    for page in pages {
        let path = dir.path().join(format!("{page}.1"));
        assert!(path.exists(), "{page}.1 was written");
        let rendered = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
            .arg(&path)
            .output()
            .expect("groff is needed: apt-get install groff-base (scripts/test.sh does)");
        let stderr = String::from_utf8_lossy(&rendered.stderr);
        assert!(
            rendered.status.success() && stderr.is_empty(),
            "{page}: {stderr}"
        );
        let text = String::from_utf8_lossy(&rendered.stdout);
        assert!(
            text.contains("NAME") && text.contains("SYNOPSIS"),
            "{page}: {text}"
        );
    }
}
