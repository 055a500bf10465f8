#!/usr/bin/env bash
# Installs Debian packages the tests need, with sudo when not root.
set -euo pipefail
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y --no-install-recommends "$@"; then
	$sudo apt-get update
	$sudo apt-get install -y --no-install-recommends "$@"
fi
