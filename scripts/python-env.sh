#!/usr/bin/env bash
# One throwaway Python environment for every Python-based test: Debian's
# python3 with its python3-rbd/python3-rados (the Ceph bindings the Ceph
# packages match), and the pip packages below installed from PyPI into a
# venv that sees those bindings (--system-site-packages).
#
#   python-env.sh DIR   create the venv in DIR (a temp dir of the caller,
#                       which removes it); the last line on stdout is the
#                       venv's python
#
# Nothing is cached outside DIR (pip runs with --no-cache-dir). Everything
# pip installs goes into the venv (--ignore-installed), so Debian's older
# python3-* libraries never mix with what the packages below require.
#
# To add packages for another test (python-cinderclient,
# python-openstackclient...), append them to PIP_PACKAGES.
set -euo pipefail

# Cinder's own Ceph backup driver, to check that it reads our backups.
PIP_PACKAGES=(
    "cinder==29.0.0"
    # The real clients that drive `blockback serve`'s Cinder API.
    "python-cinderclient"
    "python-openstackclient"
)
APT_PACKAGES=(python3 python3-venv python3-rbd python3-rados)
PYTHON=/usr/bin/python3
REPO=$(cd "$(dirname "$0")/.." && pwd)

log() { echo "python-env: $*" >&2; }

install_debian_packages() {
    if "$PYTHON" -c 'import venv, rbd, rados' 2>/dev/null; then
        return 0
    fi
    log "installing ${APT_PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${APT_PACKAGES[@]}" >&2; then
        apt-get update >&2
        apt-get install -y --no-install-recommends "${APT_PACKAGES[@]}" >&2
    fi
}

main() {
    [[ $# -eq 1 ]] || { echo "usage: $0 DIR" >&2; exit 2; }
    local dir=$1
    install_debian_packages
    "$PYTHON" -m venv --system-site-packages "$dir" >&2
    log "pip install ${PIP_PACKAGES[*]}"
    "$dir/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check \
        --ignore-installed "${PIP_PACKAGES[@]}" >&2
    # blockback's own Cinder backup driver, as an operator installs it.
    log "pip install cinder-driver/"
    "$dir/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check \
        --no-deps "$REPO/cinder-driver" >&2
    "$dir/bin/python" -c 'import rbd, rados, blockback_cinder.driver' >&2
    echo "$dir/bin/python"
}

main "$@"
