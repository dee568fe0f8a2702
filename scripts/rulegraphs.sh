#!/usr/bin/env bash
# Regenerate the rule graphs of the README: docs/rulegraph-luna16.svg (default config, demo data)
# and docs/rulegraph-ldct.svg (config/ldct.yaml). Needs Graphviz's `dot` (Debian: graphviz).
# tests/workflow/test_readme.py checks that both SVGs hold exactly the rules and edges of
# `snakemake --rulegraph` (no Graphviz needed there).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dot >/dev/null || { echo "error: dot not found: install Graphviz (apt-get install graphviz)" >&2; exit 1; }
for mode in luna16 ldct; do
    configfile=config/config.yaml
    [[ $mode == ldct ]] && configfile=config/ldct.yaml
    tmp=$(mktemp docs/.rulegraph-$mode.XXXXXX)
    python -m snakemake --rulegraph --configfile "$configfile" | dot -Tsvg > "$tmp" || { rm -f "$tmp"; exit 1; }
    mv "$tmp" "docs/rulegraph-$mode.svg"
    echo "wrote docs/rulegraph-$mode.svg"
done
