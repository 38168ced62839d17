# sluice runner: runs the steps the controller sends on stdin, one at a time, each in a fresh
# shell of its own session. Protocol and failure modes: crates/sluice-ssh/src/ssh/runner/mod.rs.
set -f
IFS= read -r __n || exit 0
__d=$(mktemp -d 2>/dev/null) || { __d=${TMPDIR:-/tmp}/sluice-runner.$$; (umask 077; mkdir "$__d") || exit 1; }
trap 'rm -rf "$__d"' EXIT
trap 'exit 129' HUP
trap 'exit 143' TERM
mkfifo -m 600 "$__d/i" "$__d/o" "$__d/e" || exit 1
# fd 3: the protocol, for the feeder. fd 5: the channel's stderr, for the step's stderr and the
# frames; the runner's own stderr goes nowhere, so a shell's note on a step killed by a signal
# ("Terminated") is never taken for the step's output.
exec 3<&0 5>&2 2>/dev/null
__s=no
command -v setsid >/dev/null 2>&1 && __s=yes
# The runner is a shell level of its own (bash's `exec` of this sh lowered SHLVL): the step
# shells are not top-level shells, so bash does not read ~/.bashrc again for every step (the
# login shell that started the runner did, once).
case ${SHLVL:-} in '' | *[!0-9]*) SHLVL=0 ;; esac
SHLVL=$((SHLVL + 1))
export SHLVL
__lines() {
  __v= __sep= __k=$1
  while [ "$__k" -gt 0 ]; do
    IFS= read -r __l || exit 0
    __v=$__v$__sep$__l
    __sep='
'
    __k=$((__k - 1))
  done
}
__feed() {
  exec 4>"$__d/i"
  while IFS= read -r __h; do
    case $__h in
      I\ *) __lines "${__h#I }"; (printf '%s' "$__v" >&4) 2>/dev/null ;;
      *) exit 0 ;;
    esac
  done
}
printf '\036%s ready %s %s\n' "$__n" "$$" "$__s"
while IFS= read -r __h; do
  set -- $__h
  [ "$1" = R ] && [ $# -eq 4 ] || exit 2
  __t=$2 __in=$4
  __lines "$3"
  # Emptied with a builtin (no rm to fork): the step's wrapper writes a byte on normal exit.
  : >"$__d/x"
  printf '\036%s start\n' "$__t"
  if [ "$__in" = 1 ]; then
    __feed <&3 3<&- 5>&- &
    __f=$!
  fi
  cat "$__d/o" </dev/null 3<&- 5>&- &
  __co=$!
  cat "$__d/e" </dev/null >&5 3<&- 5>&- &
  __ce=$!
  # The step's stdin is a pipe (as on an SSH channel: reopening /dev/stdin must not block on a
  # FIFO), filled by a copy of the stdin FIFO that nobody waits for. The step runs in a
  # subshell that execs, in the foreground (a background job would ignore SIGINT): dash applies
  # a command's redirections in the parent while it waits, so its note on a child killed by a
  # signal would otherwise reach the step's stderr.
  # Without stdin messages (`R ... 0`) stdin is /dev/null and there is nothing to feed.
  if [ "$__in" = 1 ]; then
    { cat "$__d/i" 3<&- 5>&- & } | (exec setsid "${SHELL:-/bin/sh}" -c "$__v" "${SHELL##*/}" "$__d/x" >"$__d/o" 2>"$__d/e" 3<&- 5>&-)
  else
    (exec setsid "${SHELL:-/bin/sh}" -c "$__v" "${SHELL##*/}" "$__d/x" </dev/null >"$__d/o" 2>"$__d/e" 3<&- 5>&-)
  fi
  __st=$?
  wait "$__co" "$__ce"
  if [ -s "$__d/x" ] || [ "$__st" -le 128 ]; then
    __how=exit
  else
    __how=signal
    __st=$(kill -l $((__st - 128)) 2>/dev/null) || __st=$((__st - 128))
  fi
  printf '\036%s end\n' "$__t" >&5
  printf '\036%s %s %s\n' "$__t" "$__how" "$__st"
  if [ "$__in" = 1 ]; then wait "$__f"; fi
done
