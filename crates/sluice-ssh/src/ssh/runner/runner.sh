# sluice runner: runs the steps the controller sends on stdin, one at a time, each in a fresh
# shell of its own session. Protocol and failure modes: crates/sluice-ssh/src/ssh/runner/mod.rs.
set -f
IFS= read -r __n || exit 0
# setsid by its path, found once: no search of PATH for every step.
__setsid=$(command -v setsid 2>/dev/null) || __setsid=
case $__setsid in /*) ;; *) __setsid= ;; esac
if [ -z "$__setsid" ]; then
  # Nothing is run without a process group of its own (a timeout could not kill it): the
  # controller uses a channel per command instead. A step sent before this answer is not run.
  printf '\036%s ready %s no\n' "$__n" "$$"
  exit 0
fi
__d=$(mktemp -d 2>/dev/null) || { __d=${TMPDIR:-/tmp}/sluice-runner.$$; (umask 077; mkdir "$__d") || exit 1; }
__co= __ce=
trap '[ -z "$__co" ] || kill "$__co" "$__ce" 2>/dev/null; rm -rf "$__d"' EXIT
trap 'exit 129' HUP
trap 'exit 143' TERM
# i: the step's stdin. o, e: its stdout and stderr. O, E: the frames that end them.
mkfifo -m 600 "$__d/i" "$__d/o" "$__d/e" "$__d/O" "$__d/E" || exit 1
# fd 3: the protocol, for the feeder. fd 5: the channel's stderr, for the step's stderr and the
# frames; the runner's own stderr goes nowhere, so a shell's note on a step killed by a signal
# ("Terminated") is never taken for the step's output.
exec 3<&0 5>&2 2>/dev/null
# The runner is a shell level of its own (bash's `exec` of this sh lowered SHLVL): the step
# shells are not top-level shells, so bash does not read ~/.bashrc again for every step (the
# login shell that started the runner did, once).
case ${SHLVL:-} in '' | *[!0-9]*) SHLVL=0 ;; esac
SHLVL=$((SHLVL + 1))
export SHLVL
# The copiers: one `cat` per stream serves 1024 steps (no process per step). Its arguments are
# `o O o O ...`: it copies the step's output FIFO until every process of the step has closed it
# (as sshd waits for a channel's output), then the frame FIFO the runner writes the step's end
# frame into, then the output FIFO of the next step. Opening a FIFO waits for the other end, so
# the runner's frame is written only once the step's output has passed, and follows it.
__list() {
  __l="$1 $2" __k=10
  while [ "$__k" -gt 0 ]; do __l="$__l $__l" __k=$((__k - 1)); done
}
__copiers() {
  __list o O
  (cd "$__d" && exec cat $__l) </dev/null 3<&- 5>&- &
  __co=$!
  __list e E
  (cd "$__d" && exec cat $__l) </dev/null >&5 3<&- 5>&- &
  __ce=$!
  __left=1024
}
__copiers
# What runs the step's text in its shell: `$1` is the mark a normal exit leaves; the text runs
# in a subshell, so that its `exit` ends only the subshell while `kill $$` still kills the shell
# (a death by a signal leaves no mark).
__pre='__sluice_x=$1; set --
(
unset __sluice_x
'
__post='
)
__sluice_st=$?; echo >"$__sluice_x"; exit $__sluice_st'
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
# `ready` on both streams: what a login shell printed before it is not a step's output.
printf '\036%s ready\n' "$__n" >&5
printf '\036%s ready %s yes\n' "$__n" "$$"
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
  # The step's stdin is a pipe (as on an SSH channel: reopening /dev/stdin must not block on a
  # FIFO), filled by a copy of the stdin FIFO that nobody waits for. The step runs in a
  # subshell that execs, in the foreground (a background job would ignore SIGINT): dash applies
  # a command's redirections in the parent while it waits, so its note on a child killed by a
  # signal would otherwise reach the step's stderr.
  # Without stdin messages (`R ... 0`) stdin is /dev/null and there is nothing to feed.
  if [ "$__in" = 1 ]; then
    { cat "$__d/i" 3<&- 5>&- & } | (exec "$__setsid" "${SHELL:-/bin/sh}" -c "$__pre$__v$__post" "${SHELL##*/}" "$__d/x" >"$__d/o" 2>"$__d/e" 3<&- 5>&-)
  else
    (exec "$__setsid" "${SHELL:-/bin/sh}" -c "$__pre$__v$__post" "${SHELL##*/}" "$__d/x" </dev/null >"$__d/o" 2>"$__d/e" 3<&- 5>&-)
  fi
  __st=$?
  if [ -s "$__d/x" ] || [ "$__st" -le 128 ]; then
    __how=exit
  else
    __how=signal
    __st=$(kill -l $((__st - 128)) 2>/dev/null) || __st=$((__st - 128))
  fi
  # Each open waits until its copier has passed all of the step's output on that stream.
  printf '\036%s end\n' "$__t" >"$__d/E"
  printf '\036%s %s %s\n' "$__t" "$__how" "$__st" >"$__d/O"
  if [ "$__in" = 1 ]; then wait "$__f"; fi
  __left=$((__left - 1))
  if [ "$__left" -eq 0 ]; then
    wait "$__co" "$__ce"
    __copiers
  fi
done
