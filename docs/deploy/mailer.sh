#!/bin/sh
# /usr/local/bin/mailer: the command line with the services' settings and secrets, e.g.
#   sudo -u mailer mailer doctor
set -a
. /etc/mailer/mailer.env
set +a
export MAILER_CONFIG=/etc/mailer/config.toml
cd /var/lib/mailer || exit 1
exec /opt/mailer/.venv/bin/mailer "$@"
