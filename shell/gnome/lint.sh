#!/usr/bin/env bash
# Lints the extension with GNOME's ESLint configuration (lint/, .eslintrc.yml). Installs the
# pinned eslint from package-lock.json on first use (npm registry).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ ! -x node_modules/.bin/eslint ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
node_modules/.bin/eslint --max-warnings 0 src
