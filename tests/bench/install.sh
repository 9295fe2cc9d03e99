#!/usr/bin/env bash
# What `make bench` needs beyond the project's own dependencies, installed on demand:
# h2load (Debian nghttp2-client) and strace from apt, the peer engines and py-spy from PyPI
# into the project's venv. Usage: tests/bench/install.sh .venv/bin
set -euo pipefail
BIN=${1:-.venv/bin}
need=()
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
command -v strace >/dev/null 2>&1 || need+=(strace)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "bench: installing ${need[*]} (apt)" >&2
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
"$BIN/pip" install -q --disable-pip-version-check zen-engine==2.1.3 rule-engine==5.1.0 py-spy==0.4.3
