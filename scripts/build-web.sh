#!/usr/bin/env bash
# Builds the web client: npm ci when node_modules is missing or older than the lock file, then
# `npm run build` (which writes web/dist), copied to the output directory.
#   build-web.sh <web dir> <out dir>
set -euo pipefail
web=$1
out=$2
cd "$web"
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run build --silent
rm -rf "$out"
mkdir -p "$(dirname "$out")"
cp -r dist "$out"
