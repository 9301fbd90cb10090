#!/usr/bin/env bash
# Puts revision $1 of this repository beside the checkout, at ../bourse-old,
# as the harness's old engine (its package version changed, so that cargo
# takes both engines into one build).
set -euo pipefail
rev=${1:?usage: ./old.sh <revision>}
root=$(git rev-parse --show-toplevel)
old="$root/../bourse-old"
if [ -d "$old" ]; then
    git -C "$old" checkout -q -- actors/engine/Cargo.toml
    git -C "$old" checkout -q --detach "$rev"
else
    git -C "$root" worktree add -q --detach "$old" "$rev"
fi
sed -i 's/^version.workspace = true/version = "0.0.0-old"/' "$old/actors/engine/Cargo.toml"
echo "old engine: $(git -C "$old" log --oneline -1)"
