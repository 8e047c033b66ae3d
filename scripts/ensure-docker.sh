#!/usr/bin/env bash
# Make sure a Docker engine answers; start dockerd ourselves when none runs
# (CI machines and VMs here have no init system). Idempotent and safe to run
# from several test runs at once: a lock serialises the start, and a dockerd
# that is already starting is waited for instead of started twice.
#
# Known pitfalls handled:
#  - the nf_tables iptables backend may lack kernel support: use
#    iptables-legacy when it is installed and works;
#  - a dockerd killed with -9 leaves /var/run/docker.pid behind and the next
#    dockerd refuses to start: remove it when its pid is dead;
#  - if dockerd still cannot set up iptables, retry with --iptables=false
#    (ports published on 127.0.0.1 then go through docker-proxy).
set -u

LOG="${HEROCTL_DOCKERD_LOG:-/var/log/heroctl-dockerd.log}"
PIDFILE=/var/run/docker.pid
WAIT_SECONDS="${HEROCTL_DOCKERD_WAIT:-30}"

answers() { docker info >/dev/null 2>&1; }

# Alive and not a zombie (PID 1 here may reap late, and kill -0 succeeds on
# a zombie).
alive() {
  local state
  state="$(awk '{print $3}' /proc/"$1"/stat 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

wait_for_engine() {
  local pid="$1" i
  for i in $(seq 1 $((WAIT_SECONDS * 4))); do
    if answers; then return 0; fi
    # The daemon died: no point waiting any longer.
    if [ -n "$pid" ] && ! alive "$pid"; then return 1; fi
    sleep 0.25
  done
  return 1
}

running_dockerd_pid() {
  if [ -f "$PIDFILE" ]; then
    local pid
    pid="$(cat "$PIDFILE" 2>/dev/null)"
    if [ -n "$pid" ] && alive "$pid" \
      && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = dockerd ]; then
      echo "$pid"
      return 0
    fi
  fi
  return 1
}

# Pid files of a dead (or zombie) dockerd/containerd make the next dockerd
# refuse to start or wait 15 s for a containerd that will never answer.
cleanup_stale() {
  local f pid
  for f in "$PIDFILE" /var/run/docker/containerd/containerd.pid; do
    [ -f "$f" ] || continue
    pid="$(cat "$f" 2>/dev/null)"
    if [ -z "$pid" ] || ! alive "$pid"; then rm -f "$f"; fi
  done
}

start_dockerd() {
  # setsid: the daemon must outlive the shell (and process group) of the
  # test run that happened to start it.
  mkdir -p "$(dirname "$LOG")"
  echo "--- $(date -u +%FT%TZ) starting dockerd $*" >>"$LOG"
  setsid nohup dockerd "$@" >>"$LOG" 2>&1 </dev/null 9>&- &
  echo $!
}

if answers; then exit 0; fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "dockerd is not installed (apt-get install docker.io)" >&2
  exit 1
fi

exec 9>/var/run/heroctl-ensure-docker.lock
flock -w $((WAIT_SECONDS + 5)) 9 || { echo "timed out waiting for the dockerd start lock" >&2; exit 1; }
if answers; then exit 0; fi

# Another dockerd is alive (still starting, or stuck): wait for it, never
# start a second one on the same socket.
if pid="$(running_dockerd_pid)"; then
  if wait_for_engine "$pid"; then exit 0; fi
  echo "dockerd (pid $pid) runs but does not answer; see $LOG" >&2
  exit 1
fi
cleanup_stale

if [ -x /usr/sbin/iptables-legacy ] && /usr/sbin/iptables-legacy -L -n >/dev/null 2>&1 \
  && command -v update-alternatives >/dev/null 2>&1; then
  update-alternatives --set iptables /usr/sbin/iptables-legacy >/dev/null 2>&1 || true
  [ -x /usr/sbin/ip6tables-legacy ] \
    && update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >/dev/null 2>&1 || true
fi

extra=()
for attempt in 1 2; do
  pid="$(start_dockerd "${extra[@]}")"
  if wait_for_engine "$pid"; then exit 0; fi
  if alive "$pid"; then
    echo "dockerd (pid $pid) started but does not answer after ${WAIT_SECONDS}s; see $LOG" >&2
    tail -20 "$LOG" >&2
    exit 1
  fi
  [ "$attempt" = 2 ] && break
  if tail -30 "$LOG" | grep -qi "iptables"; then
    echo "dockerd failed on iptables; retrying with --iptables=false" >&2
    extra=(--iptables=false)
  else
    echo "dockerd exited during start; cleaning up and retrying once" >&2
  fi
  cleanup_stale
done

echo "dockerd did not start; see $LOG" >&2
tail -20 "$LOG" >&2
exit 1
