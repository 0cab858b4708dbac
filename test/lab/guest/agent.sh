#!/bin/sh
# The lab's command agent (busybox sh), on the control port named $1. Protocol, one line each way:
#   host -> guest: "ID BASE64(script)"            ID is decimal
#   guest -> host: "hello PID"                      once, when the agent is up
#                  "ID pid PID"                     the job started; PID is its session and process group
#                  "ID done CODE BASE64(stdout) BASE64(stderr)"
#                  "ID error BASE64(message)"       the request could not be run
# Jobs run in the background, so a long job never blocks the agent. Only the main loop writes to the port;
# everything it reacts to (requests from the reader, job events from the wrappers) arrives on one FIFO.
ctl=$1
d=/tmp/.lab-agent
mkdir -p $d
dev=
for p in /sys/class/virtio-ports/*; do
  [ "$(cat "$p/name" 2>/dev/null)" = "$ctl" ] && dev=/dev/${p##*/}
done
[ -n "$dev" ] || { echo "lab-agent: no port named \"$ctl\"" >&2; exit 1; }
mkfifo $d/events
# fd 3: the control port, opened once (a second open would fail with EBUSY).
# fd 4: the FIFO, opened read-write so it never reports end-of-file.
exec 3<>"$dev" 4<>$d/events

# The reader: the only process reading the port. A read returns 0 (not an end) while no host is connected,
# so it pauses and reads again. A request body goes to a file and only a short line to the FIFO: lines up to
# PIPE_BUF are written atomically, so they never interleave with the wrappers' lines.
(
  while :; do
    if IFS= read -r line <&3; then
      id=${line%% *}
      case $id in '' | *[!0-9]*) echo "lab-agent: ignoring a malformed request" >&2; continue ;; esac
      printf '%s\n' "${line#* }" >$d/$id.b64
      echo "req $id" >&4
    else
      sleep 0.2
    fi
  done
) &

echo "hello $$" >&3
while read -r kind id arg <&4; do
  case $kind in
    req)
      if base64 -d $d/$id.b64 >$d/$id.sh 2>$d/$id.err; then
        # The wrapper keeps fd 4 to report, never fd 3; the job has neither. setsid gives the job its own
        # session and process group (pid = pgid, no fork since it is not a group leader), so kill reaches its children.
        # The wrapper's stderr is /dev/null so "Terminated" notices do not litter the console.
        (
          setsid sh $d/$id.sh </dev/null >$d/$id.out 2>>$d/$id.err 4>&- &
          echo "pid $id $!" >&4
          wait $!
          echo "done $id $?" >&4
        ) 3>&- 2>/dev/null &
      else
        echo "$id error $(base64 -w0 $d/$id.err)" >&3
        rm -f $d/$id.*
      fi
      ;;
    pid) echo "$id pid $arg" >&3 ;;
    done)
      { printf '%s done %s ' "$id" "$arg"; base64 -w0 $d/$id.out; printf ' '; base64 -w0 $d/$id.err; echo; } >&3
      rm -f $d/$id.*
      ;;
  esac
done
