#!/usr/bin/env bash
# The Redis engine's tests start their own redis-server processes (broker/test/redis-server.ts:
# a free port and a fresh directory each, never the default port 6379). Installs Debian's
# redis-server (redis-cli comes with it) with apt when it is missing, so the README's test command
# works on a fresh machine. On a machine with systemd, apt also starts Redis as a service on
# 127.0.0.1:6379; it is left as installed, and no test connects to it.
set -euo pipefail
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then exit 0; fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing Redis for the Redis engine's tests (apt-get install redis-server)…" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
for tool in redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "$tool is still missing after apt-get install redis-server" >&2; exit 1; }
done
