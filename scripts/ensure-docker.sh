#!/usr/bin/env bash
# Make sure a Docker engine answers; start dockerd ourselves when none runs
# (CI machines have no init system). Idempotent.
set -u
if docker info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "dockerd is not installed" >&2; exit 1
fi
# iptables-legacy works where nftables modules are missing.
if command -v update-alternatives >/dev/null 2>&1 && [ -x /usr/sbin/iptables-legacy ]; then
  update-alternatives --set iptables /usr/sbin/iptables-legacy >/dev/null 2>&1 || true
fi
mkdir -p /var/log
nohup dockerd >/var/log/heroctl-dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then exit 0; fi
  sleep 0.5
done
echo "dockerd did not start; see /var/log/heroctl-dockerd.log" >&2
tail -20 /var/log/heroctl-dockerd.log >&2
exit 1
