# Sourced by every hook script: the paths, ports and user the hooks share, and how services are run.
# Each default is the real instance's; any of them can be set in the environment, which is how the
# revision test runs the hooks in a temporary root (DEPLOY_ROOT) on free ports.
#
# Works on Amazon Linux 2023 (dnf, no www-data user) and on Debian/Ubuntu (apt, sites-enabled).

DEPLOY_ROOT=${DEPLOY_ROOT:-}
# The appspec's `files` destination; CodeDeploy copies the revision here between BeforeInstall and AfterInstall.
APP_DIR=${APP_DIR:-$DEPLOY_ROOT/opt/flask-app}
# The dedicated system user Flask runs as (created by before_install).
APP_USER=${APP_USER:-flask-app}
APP_VENV=${APP_VENV:-$APP_DIR/venv}
FLASK_PORT=${FLASK_PORT:-5000}
# nginx's public port; the validation spec is pointed at it.
NGINX_PORT=${NGINX_PORT:-80}
# What nginx's `listen` gets: the port on every address, or e.g. 127.0.0.1:8080.
NGINX_LISTEN=${NGINX_LISTEN:-$NGINX_PORT}
NGINX_DIR=${NGINX_DIR:-$DEPLOY_ROOT/etc/nginx}
SYSTEMD_DIR=${SYSTEMD_DIR:-$DEPLOY_ROOT/etc/systemd/system}
# Without systemd: pid files, logs and nginx's own config live here.
RUN_DIR=${RUN_DIR:-$DEPLOY_ROOT/run/flask-app}
# Without systemd, nginx runs from its own main config (only this site, everything under RUN_DIR).
NGINX_MAIN_CONF=$RUN_DIR/nginx.conf
# systemd | none | auto (systemd when it is PID 1, as on an EC2 instance; none in a container).
SERVICE_MANAGER=${SERVICE_MANAGER:-auto}
if [ "$SERVICE_MANAGER" = auto ]; then
  if [ -d /run/systemd/system ]; then SERVICE_MANAGER=systemd; else SERVICE_MANAGER=none; fi
fi
# nginx reads a variable named NGINX as listening sockets handed over by a binary upgrade (and then
# does not daemonize), so the binary's path has another name and NGINX is never passed on.
unset NGINX
NGINX_BIN=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}

log() { echo "flask-app ${LIFECYCLE_EVENT:-hook}: $*" >&2; }

# Whether the process in pid file $1 is running.
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Stops the process in pid file $1 (TERM, then KILL after 10 s).
stop_pid() {
  local pidfile=$1 pid
  pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

