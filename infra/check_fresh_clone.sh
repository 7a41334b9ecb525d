#!/usr/bin/env bash
# Try the README's two commands as a new user would: clone the committed main into a temporary folder
# (beside a link to ../shared so the reference data is found) and run .ci/run there.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/rexbert-fresh-XXXXXX)"
git clone --quiet "$repo" "$work/main"
if [ -d "$repo/../shared" ]; then ln -s "$(cd "$repo/../shared" && pwd)" "$work/shared"; fi
echo "fresh clone in $work/main"
cd "$work/main" && bash .ci/run
