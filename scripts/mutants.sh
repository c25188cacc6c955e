#!/usr/bin/env bash
# Mutation testing of lamina's core packages (not in CI: a full pass takes hours).
# Resumable and targetable; see scripts/mutants.py for the details. Examples:
#
#   scripts/mutants.sh                                  # the core list, resuming
#   scripts/mutants.sh lamina/digest.py lamina/reference.py -j 2
#   scripts/mutants.sh --report                         # score and survivors so far
#
# Needs what the suite needs (run scripts/test.sh once on a fresh machine) and root.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
[ -x "$py" ] || py=/work/main/.venv/bin/python
[ -x "$py" ] || py=python3
exec "$py" scripts/mutants.py "$@"
