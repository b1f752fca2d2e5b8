#!/usr/bin/env bash
# Builds the pinned HashiCorp Vault release from the Go module proxy into
# .bin/vault. No prebuilt binary can be downloaded here, so the first build
# compiles Vault (about 15 minutes, ~4 GB of module cache); the result is
# cached outside the clone, keyed by the tools module's go.mod and go.sum, so
# a fresh clone on the same machine (how CI runs) copies it in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
mod=tools/vault
key=$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -c1-16)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/kafkagate/vault-$key"
if [ -x .bin/vault ] && [ -f .bin/vault.key ] && [ "$(cat .bin/vault.key)" = "$key" ]; then
  exit 0
fi
mkdir -p .bin
if [ ! -x "$cache/vault" ]; then
  echo "make vault: building HashiCorp Vault $(grep -o 'hashicorp/vault v[0-9.]*' $mod/go.mod | cut -d' ' -f2) from the Go module proxy (first time: ~15 minutes)" >&2
  mkdir -p "$cache"
  (cd "$mod" && go build -o "$cache/vault.tmp" github.com/hashicorp/vault)
  mv "$cache/vault.tmp" "$cache/vault"
fi
cp "$cache/vault" .bin/vault.tmp
mv .bin/vault.tmp .bin/vault
echo "$key" > .bin/vault.key
.bin/vault version >&2
