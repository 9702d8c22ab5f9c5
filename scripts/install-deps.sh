#!/usr/bin/env bash
# Installs the Debian packages Pigeon needs to build and test. Idempotent: when everything is
# already installed it only runs dpkg-query (well under a second) and touches no network.
set -euo pipefail

packages=(
  build-essential cmake ccache pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  librocksdb-dev libsodium-dev libspdlog-dev libfmt-dev libcli11-dev
  libssl-dev libprotobuf-dev protobuf-compiler libreadline-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
  chromium fonts-noto-color-emoji
  libhiredis-dev libzookeeper-mt-dev libmariadb-dev
  redis-server zookeeper mariadb-server mariadb-client
)

# Node.js runs the integration tests with real third-party STOMP clients. Use the one on the
# machine if there is one (any version from 18 on); otherwise Debian's.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
