//! Where each `{{…}}` of a command stands, as the planner's shell lexer sees it: one assertion
//! per quoting rule, context that can be made safe, and context that is refused.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_plan::shell::{Refusal, ShellContext, contexts};
use sluice_plan::template::parse;

fn check(text: &str) -> Vec<Result<ShellContext, Refusal>> {
    contexts(&parse(text).unwrap())
}

use Refusal::*;
use ShellContext::*;

#[test]
fn quoting_contexts_that_can_be_made_safe() {
    assert_eq!(check("echo {{vars.a}} x={{vars.b}}"), [Ok(Word), Ok(Word)]);
    assert_eq!(check("echo \"v={{vars.a}}\" '\\{{'"), [Ok(DoubleQuoted)]);
    assert_eq!(check("echo \"$(echo {{vars.a}})\""), [Ok(Word)]);
    assert_eq!(check("echo \"$(echo \"{{vars.a}}\")\""), [Ok(DoubleQuoted)]);
    assert_eq!(check("echo 'it''s' {{vars.a}}"), [Ok(Word)]);
    assert_eq!(check("echo \\' {{vars.a}}"), [Ok(Word)]);
    assert_eq!(check("echo \"\\\"\" {{vars.a}}"), [Ok(Word)]);
    assert_eq!(check("f -f='${Version}' | grep {{vars.a}}"), [Ok(Word)]);
    assert_eq!(check("x=$((1 + 2)) {{vars.a}}"), [Ok(Word)]);
    assert_eq!(check("a#b {{vars.a}}"), [Ok(Word)]);
    assert_eq!(check("cat <<<{{vars.a}}"), [Ok(Word)]);
    assert_eq!(check("diff <(echo {{vars.a}}) f"), [Ok(Word)]);
    assert_eq!(check("[[ -f {{vars.a}} ]]"), [Ok(Word)]);
    assert_eq!(check("echo $'a\\'b' {{vars.a}}"), [Ok(Word)]);
    assert_eq!(check("eval x; echo {{vars.a}}"), [Ok(Word)]);
    assert_eq!(check("sh script.sh -c {{vars.a}}"), [Ok(Word)]);
    assert_eq!(check("apt-get install -y ssh curl={{vars.a}}"), [Ok(Word)]);
    assert_eq!(check("systemctl restart ssh; echo {{vars.a}}"), [Ok(Word)]);
    assert_eq!(
        check("echo \"x {{raw vars.a}}\" '{{raw vars.b}}'"),
        [Ok(DoubleQuoted), Ok(Word)]
    );
}

#[test]
fn case_patterns_inside_a_substitution_do_not_close_it() {
    assert_eq!(
        check("echo \"$(case $x in a) echo y;; (b) echo z;; esac) {{vars.a}}\""),
        [Ok(DoubleQuoted)]
    );
    assert_eq!(
        check("x=$(case a in a) echo ok;; esac); echo \"{{vars.a}}\""),
        [Ok(DoubleQuoted)]
    );
}

#[test]
fn places_that_cannot_be_made_safe() {
    assert_eq!(check("echo '{{vars.a}}'"), [Err(SingleQuoted)]);
    assert_eq!(check("echo $'{{vars.a}}'"), [Err(AnsiCQuoted)]);
    assert_eq!(check("echo `echo {{vars.a}}`"), [Err(Backticks)]);
    assert_eq!(check("echo \"`echo {{vars.a}}`\""), [Err(Backticks)]);
    let evaluated = |c: &str| {
        Err(Evaluated {
            command: c.to_string(),
        })
    };
    assert_eq!(check("eval echo {{vars.a}}"), [evaluated("eval")]);
    assert_eq!(
        check("X=1 command eval \"echo {{vars.a}}\""),
        [evaluated("eval")]
    );
    assert_eq!(check("eval \"$(echo {{vars.a}})\""), [evaluated("eval")]);
    assert_eq!(check("trap \"rm {{vars.a}}\" EXIT"), [evaluated("trap")]);
    assert_eq!(check("watch df {{vars.a}}"), [evaluated("watch")]);
    assert_eq!(
        check("flock /run/x.lock -c \"echo {{vars.a}}\""),
        [Err(ShellCommandString {
            shell: "flock".into()
        })]
    );
    assert_eq!(
        check("ssh {{host.address}} systemctl restart {{vars.a}}"),
        [Ok(Word), Err(RemoteCommand)]
    );
    assert_eq!(
        check("sudo -u app timeout 30 ssh -tp 22 -o BatchMode=yes h \"x {{vars.a}}\""),
        [Err(RemoteCommand)]
    );
    let sh = |s: &str| Err(ShellCommandString { shell: s.into() });
    assert_eq!(check("sh -c \"echo {{vars.a}}\""), [sh("sh")]);
    assert_eq!(
        check("sudo /bin/bash -o pipefail -ec \"x {{vars.a}}\""),
        [sh("bash")]
    );
    assert_eq!(check("su - app -c \"x {{vars.a}}\""), [sh("su")]);
    assert_eq!(check("sh -c 'x \"$1\"' sh {{vars.a}}"), [Ok(Word)]);
    assert_eq!(
        check("cat <<EOF\n{{vars.a}}\nEOF\necho {{vars.b}}"),
        [Err(HereDoc), Ok(Word)]
    );
    assert_eq!(check("cat <<-'E' > f\n\tx {{vars.a}}\n\tE"), [Err(HereDoc)]);
    assert_eq!(check("cat <<{{vars.a}}\nx"), [Err(HereDoc)]);
    assert_eq!(
        check("cat <<E\n{{vars.a}}\nE\neval {{vars.b}}"),
        [Err(HereDoc), evaluated("eval")]
    );
    assert_eq!(check("echo $(( {{vars.a}} + 1 ))"), [Err(Arithmetic)]);
    assert_eq!(check("(( {{vars.a}} > 1 ))"), [Err(Arithmetic)]);
    assert_eq!(check("let x={{vars.a}}"), [Err(Arithmetic)]);
    assert_eq!(
        check("[[ {{vars.a}} -eq 1 ]] && echo {{vars.b}}"),
        [Err(Arithmetic), Ok(Word)]
    );
    assert_eq!(check("echo ${X:-{{vars.a}}}"), [Err(ParameterExpansion)]);
    assert_eq!(
        check("echo \"${X:-{{vars.a}}}\""),
        [Err(ParameterExpansion)]
    );
    assert_eq!(
        check("echo hi # {{vars.a}}\necho {{vars.b}}"),
        [Err(Comment), Ok(Word)]
    );
    assert_eq!(check("echo ${{vars.a}}"), [Err(AfterDollar)]);
    assert_eq!(check("echo \"${{vars.a}}\""), [Err(AfterDollar)]);
    assert_eq!(
        check("echo \"{{vars.a}}"),
        [Err(Unterminated { opened: "a `\"`" })]
    );
}

#[test]
fn raw_is_never_refused() {
    assert_eq!(check("echo '{{raw vars.a}}'"), [Ok(Word)]);
    assert_eq!(check("eval {{raw vars.a}}"), [Ok(Word)]);
    assert_eq!(check("ssh h {{raw vars.a}}"), [Ok(Word)]);
}
