#!/usr/bin/env bash
# Writes lamina's man pages (lamina.1 and one per verb and sub-verb, made from the same flag
# declarations as --help) into DIR (default /usr/local/share/man/man1).
#   scripts/make-man-pages.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/usr/local/share/man/man1}
py=python3
[ -x .venv/bin/python ] && py=.venv/bin/python
PYTHONPATH=$PWD "$py" -m lamina.cli.docs man "$dir" >/dev/null
echo "man pages written to $dir (try: man -l $dir/lamina-run.1)"
