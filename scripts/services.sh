#!/usr/bin/env bash
# Starts and stops the project's real backing services on loopback, without Docker:
#   PostgreSQL (Debian's package, own cluster), RabbitMQ (Debian's package, own node; the Celery
#   broker), Redis (Debian's package; the read model), Apache Kafka (KRaft, from Maven Central jars
#   collected by infra/kafka/pom.xml; started by `python -m stack kafka … --topology single`).
#
# Usage: scripts/services.sh up|down|status
#            start-postgres|stop-postgres|start-rabbitmq|stop-rabbitmq|start-readmodel|stop-readmodel
#            start-kafka|stop-kafka
#        scripts/services.sh rabbitmqctl ARGS...   (our node's rabbitmqctl, e.g. list_queues)
#        scripts/services.sh browser    (Debian's Chromium for the browser tests; installs once)
#
# All data and logs live in var/ at the project root (ignored by git):
#   var/postgres/   cluster (data/) and socket dir (run/), owned by the `postgres` system user
#   var/rabbitmq/   the node's config, Erlang cookie (home/) and its queues (mnesia/): durable
#                   queues and persistent Celery messages survive a restart
#   var/redis/      readmodel/: the read model's working dir with its append-only file
#                   (--appendonly yes --appendfsync everysec): the read model survives a restart
#   var/kafka/      lib/ (broker jars), data/ (log.dirs), server.properties, cluster.id
#   var/run/        pid files: rabbitmq.pid, readmodel-redis.pid, kafka.pid
#   var/credentials passwords made once (mode 0600, by arena/local_secrets.py): RabbitMQ's user
#                   arena, the read model's requirepass, Flower's basic auth (docs/operations.md)
#   var/log/        postgres.log, rabbitmq.log and rabbitmq/, readmodel-redis.log, kafka.log (JVM
#                   stdout/stderr), kafka/server.log
#
# Ports (environment): PGPORT (5432), RABBITMQ_PORT (5672; Erlang distribution RABBITMQ_PORT+20000,
# epmd 4369), READMODEL_REDIS_PORT (6380), KAFKA_PORT (9092; controller = KAFKA_PORT+1; read by
# python -m stack with KAFKA_HEAP, KAFKA_TIMEOUT and KAFKA_STOP_TIMEOUT).
# Connection settings for the application (with the default ports; PW: from var/credentials,
# which arena/settings.py reads when CELERY_BROKER_URL / REDIS_URL are left empty):
#   postgresql://arena:arena@127.0.0.1:5432/arena    (role arena may create databases)
#   amqp://arena:PW@127.0.0.1:5672//                 Celery broker (CELERY_BROKER_URL; no guest)
#   redis://:PW@127.0.0.1:6380/0                     read model (REDIS_URL)
#   kafka bootstrap 127.0.0.1:9092
#
# `up` is idempotent: a service that already answers is left alone (but for its credentials:
# RabbitMQ's user arena and no guest, Redis's requirepass). Missing software is installed
# with apt-get (needs root), the Kafka jars with Maven (once; cached in var/kafka/lib).
# `status` prints one line per service (postgres, rabbitmq, readmodel, kafka) and exits 0 when all
# answer, 3 otherwise.
set -euo pipefail
umask 022

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VAR="$ROOT/var"
LOG_DIR="$VAR/log"
RUN_DIR="$VAR/run"

PGPORT="${PGPORT:-5432}"
RABBITMQ_PORT="${RABBITMQ_PORT:-5672}"
READMODEL_REDIS_PORT="${READMODEL_REDIS_PORT:-6380}"
# The read model's memory cap: past it writes fail (noeviction), never a view silently evicted;
# projections retry, and /metrics' arena_read_model_memory_used_ratio warns before (operations.md).
READMODEL_REDIS_MAXMEMORY="${READMODEL_REDIS_MAXMEMORY:-1gb}"

PG_TIMEOUT="${PG_TIMEOUT:-30}"
REDIS_TIMEOUT="${REDIS_TIMEOUT:-30}"
RABBITMQ_TIMEOUT="${RABBITMQ_TIMEOUT:-60}"

# ---------------------------------------------------------------------------------------------
# helpers

log() { printf '[%s] %s\n' "$1" "${*:2}"; }
warn() { printf '[%s] WARNING: %s\n' "$1" "${*:2}" >&2; }
die() {
    printf '[%s] ERROR: %s\n' "$1" "${*:2}" >&2
    exit 1
}

# Prints the last lines of each existing log file given (to stderr).
show_tail() {
    local f
    for f in "$@"; do
        if [[ -s $f ]]; then
            printf -- '----- last lines of %s -----\n' "$f" >&2
            tail -n 30 "$f" >&2
        fi
    done
}

or_dash() { if [[ -n $1 ]]; then echo "$1"; else echo -; fi; }

APT_UPDATED=0
apt_install() {
    [[ $EUID -eq 0 ]] || die setup "need root to apt-get install $*; install it yourself or rerun as root"
    export DEBIAN_FRONTEND=noninteractive
    if [[ $APT_UPDATED -eq 0 ]]; then
        log setup "apt-get update"
        apt-get update -q >>"$LOG_DIR/apt.log" 2>&1 || {
            show_tail "$LOG_DIR/apt.log"
            die setup "apt-get update failed"
        }
        APT_UPDATED=1
    fi
    log setup "apt-get install $* (output in var/log/apt.log)"
    # needrestart (if present) would ask questions / print noise: suspend it for this install.
    NEEDRESTART_SUSPEND=1 apt-get install -y -q --no-install-recommends "$@" >>"$LOG_DIR/apt.log" 2>&1 ||
        {
            show_tail "$LOG_DIR/apt.log"
            die setup "apt-get install $* failed"
        }
}

# True when the process with this pid is alive and its command line contains $2.
pid_matches() {
    local pid=$1 needle=$2 cmdline
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ $cmdline == *"$needle"* ]]
}

# True when the process with this pid exists and has not exited (a zombie has exited). Unlike
# pid_matches it reads no command line, which is briefly empty while a process execs.
pid_running() {
    local state
    state="$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ -n $state && $state != Z ]]
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_for SVC SECONDS CHECK_FN ALIVE_FN LOGFILE...: polls CHECK_FN until it succeeds; fails early
# when ALIVE_FN says the process died, or when the deadline passes, showing the logs' tails.
wait_for() {
    local svc=$1 seconds=$2 check=$3 alive=$4
    shift 4
    local deadline=$((SECONDS + seconds))
    until "$check"; do
        if ! "$alive"; then
            show_tail "$@"
            die "$svc" "the process exited during start-up (see $*)"
        fi
        if ((SECONDS >= deadline)); then
            show_tail "$@"
            die "$svc" "no answer within ${seconds}s (see $*)"
        fi
        sleep 0.5
    done
}

# wait_exit SVC PID SECONDS: waits for a stopping process to exit; SIGKILL once SECONDS passed.
wait_exit() {
    local svc=$1 pid=$2 deadline=$((SECONDS + $3))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            warn "$svc" "still running after ${3}s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            return 0
        fi
        sleep 0.2
    done
}

ensure_dirs() {
    mkdir -p "$VAR" "$LOG_DIR" "$RUN_DIR"
    chmod 755 "$VAR" "$LOG_DIR" "$RUN_DIR"
}

# The Python for what this script runs in Python (the credentials, `python -m stack kafka`): the
# venv's when it exists, else the system's; both need only the standard library.
PYTHON=""
for candidate in "$ROOT/.venv/bin/python" /usr/bin/python3 "$(command -v python3 || true)"; do
    if [[ -n $candidate && -x $candidate ]]; then
        PYTHON="$candidate"
        break
    fi
done

# credential NAME: a password from var/credentials, which is made on first use by the same code
# that makes it when the application gets there first (arena/local_secrets.py; -I: nothing but
# the standard library, so any Python 3.11 will do, .venv or not).
CREDENTIALS="$VAR/credentials"
credential() {
    if [[ ! -f $CREDENTIALS ]]; then
        [[ -n $PYTHON ]] || die setup "python3 is needed to make $CREDENTIALS"
        "$PYTHON" -I "$ROOT/arena/local_secrets.py" "$CREDENTIALS" ||
            die setup "could not make $CREDENTIALS"
    fi
    local value
    value="$(sed -n "s/^$1=//p" "$CREDENTIALS")"
    [[ -n $value ]] || die setup "$CREDENTIALS has no $1; delete it and run 'make services' again"
    printf '%s' "$value"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

PG_BIN=""
PG_BASE="$VAR/postgres"
PGDATA_DIR="$PG_BASE/data"
PG_SOCK="$PG_BASE/run"
PG_LOG="$LOG_DIR/postgres.log"

# Picks the PostgreSQL binaries: the version the cluster was made with, else the newest installed.
pg_find_bin() {
    local want="" bin="" dir
    if [[ -f $PGDATA_DIR/PG_VERSION ]]; then
        want="$(cat "$PGDATA_DIR/PG_VERSION")"
        if [[ -x /usr/lib/postgresql/$want/bin/postgres ]]; then
            PG_BIN="/usr/lib/postgresql/$want/bin"
            return 0
        fi
    fi
    # newest version that has the server (a client-only version has no initdb)
    while read -r dir; do
        [[ -x $dir/initdb && -x $dir/postgres ]] && bin="$dir"
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)
    if [[ -n $bin ]]; then
        [[ -z $want ]] || warn pg "cluster was made by PostgreSQL $want, which is not installed; trying $bin"
        PG_BIN="$bin"
        return 0
    fi
    return 1
}

pg_ensure_installed() {
    if ! pg_find_bin; then
        apt_install postgresql
        # The Debian package may create and start its own cluster on 5432 (usually not in
        # containers, where policy-rc.d forbids it). Ours must own the port: stop theirs.
        if command -v pg_lsclusters >/dev/null; then
            pg_lsclusters --no-header 2>/dev/null | while read -r ver name _port status _rest; do
                if [[ $status == online* ]]; then
                    log pg "stopping Debian's own cluster $ver/$name"
                    pg_ctlcluster "$ver" "$name" stop || true
                fi
            done
        fi
        pg_find_bin || die pg "PostgreSQL binaries not found under /usr/lib/postgresql after install"
    fi
    if ! id -u postgres >/dev/null 2>&1; then
        log pg "creating system user postgres"
        useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
}

# PostgreSQL refuses to run as root, so the cluster belongs to the `postgres` user, which must be
# able to traverse into it. If the checkout lies below a folder that user cannot enter (e.g. under
# /root with mode 700), the cluster goes to /var/lib/arena-services/<hash of project path>/postgres
# instead, and var/postgres becomes a symbolic link to it (its log too), so var/ still shows it.
# Read-only commands (status, down) just follow the link.
pg_resolve_paths() {
    local create=${1:-}
    if [[ -L $VAR/postgres ]]; then
        PG_BASE="$(readlink -f "$VAR/postgres")"
    elif [[ $create == create ]] && ! runuser -u postgres -- test -x "$VAR" 2>/dev/null; then
        PG_BASE="/var/lib/arena-services/$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)/postgres"
        warn pg "user postgres cannot enter $VAR; cluster goes to $PG_BASE (linked from var/postgres)"
        mkdir -p "$PG_BASE"
        ln -sfn "$PG_BASE" "$VAR/postgres"
    else
        PG_BASE="$VAR/postgres"
    fi
    PGDATA_DIR="$PG_BASE/data"
    PG_SOCK="$PG_BASE/run"
    # A Unix socket path is limited to 107 bytes: use a short one under /tmp for deep checkouts.
    if ((${#PG_SOCK} > 80)); then
        PG_SOCK="/tmp/arena-pg-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
    fi
    if [[ $PG_BASE == "$VAR/postgres" ]]; then
        PG_LOG="$LOG_DIR/postgres.log"
    else
        PG_LOG="$PG_BASE/postgres.log"
        [[ $create != create ]] || ln -sfn "$PG_LOG" "$LOG_DIR/postgres.log"
    fi
}

# Runs a command as the postgres user, from a folder it can read.
pg_as() { (cd / && runuser -u postgres -- "$@"); }

pg_pid() {
    local pid=""
    [[ -f $PGDATA_DIR/postmaster.pid ]] && pid="$(head -n 1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true)"
    if [[ -n $pid ]] && pid_matches "$pid" postgres; then echo "$pid"; fi
}
pg_alive() { [[ -n "$(pg_pid)" ]]; }
pg_answers() { [[ -n $PG_BIN ]] && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" -t 2; }
pg_login_ok() {
    PGPASSWORD=arena PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -q -w -h 127.0.0.1 -p "$PGPORT" \
        -U arena -d arena -Atc 'select 1' >/dev/null 2>&1
}

pg_init_cluster() {
    mkdir -p "$PG_BASE" "$PG_SOCK"
    chown postgres:postgres "$PG_BASE" "$PG_SOCK"
    chmod 700 "$PG_BASE"
    [[ -f $PGDATA_DIR/PG_VERSION ]] && return 0
    log pg "initdb $PGDATA_DIR ($("$PG_BIN/postgres" --version))"
    pg_as "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres -E UTF8 --no-locale \
        --auth-local=peer --auth-host=scram-sha-256 >"$VAR/log/initdb.log" 2>&1 ||
        {
            show_tail "$VAR/log/initdb.log"
            die pg "initdb failed"
        }
    # Our settings live in arena.conf, rewritten at each start (ports may change).
    printf "\n# written by scripts/services.sh\ninclude_if_exists = 'arena.conf'\n" \
        >>"$PGDATA_DIR/postgresql.conf"
}

pg_write_conf() {
    local sock="${PG_SOCK//\'/\'\'}"
    cat >"$PGDATA_DIR/arena.conf" <<EOF
# written by scripts/services.sh at each start
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$sock'
EOF
    chown postgres:postgres "$PGDATA_DIR/arena.conf"
}

# Role arena (password arena, LOGIN, CREATEDB) and database arena owned by it; idempotent.
pg_bootstrap() {
    log pg "ensuring role arena and database arena"
    pg_as "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PGPORT" -U postgres -d postgres \
        >/dev/null <<'SQL'
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'arena') THEN
        CREATE ROLE arena LOGIN CREATEDB PASSWORD 'arena';
    ELSE
        ALTER ROLE arena LOGIN CREATEDB PASSWORD 'arena';
    END IF;
END
$$;
SELECT 'CREATE DATABASE arena OWNER arena'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'arena')\gexec
SQL
}

start_postgres() {
    ensure_dirs
    pg_resolve_paths create
    pg_ensure_installed
    if pg_answers; then
        if pg_login_ok; then
            log pg "already up on 127.0.0.1:$PGPORT"
            return 0
        fi
        pg_alive || die pg "something else answers on 127.0.0.1:$PGPORT and arena cannot log in;" \
            "stop it (e.g. 'service postgresql stop') or choose another PGPORT"
        pg_bootstrap
        pg_login_ok || die pg "arena still cannot log in on 127.0.0.1:$PGPORT"
        log pg "up on 127.0.0.1:$PGPORT"
        return 0
    fi
    pg_init_cluster
    pg_write_conf
    touch "$PG_LOG"
    chown postgres:postgres "$PG_LOG"
    log pg "starting on 127.0.0.1:$PGPORT (data $PGDATA_DIR)"
    pg_as "$PG_BIN/pg_ctl" start -D "$PGDATA_DIR" -l "$PG_LOG" -s -w -t "$PG_TIMEOUT" ||
        {
            show_tail "$PG_LOG"
            die pg "pg_ctl start failed (see $PG_LOG)"
        }
    wait_for pg "$PG_TIMEOUT" pg_answers pg_alive "$PG_LOG"
    pg_bootstrap
    pg_login_ok || die pg "arena cannot log in on 127.0.0.1:$PGPORT"
    log pg "up on 127.0.0.1:$PGPORT"
}

stop_postgres() {
    pg_resolve_paths
    if ! pg_alive; then
        log pg "not running"
        return 0
    fi
    pg_find_bin || die pg "PostgreSQL binaries not found"
    log pg "stopping (pg_ctl stop -m fast)"
    pg_as "$PG_BIN/pg_ctl" stop -D "$PGDATA_DIR" -m fast -s -w -t 60
    log pg "stopped"
}

status_postgres() {
    pg_resolve_paths
    pg_find_bin || true
    if pg_answers && pg_login_ok; then
        printf '%-9s up    127.0.0.1:%-6s pid %s\n' postgres "$PGPORT" "$(or_dash "$(pg_pid || true)")"
        return 0
    fi
    printf '%-9s down  127.0.0.1:%-6s pid %s\n' postgres "$PGPORT" "$(or_dash "$(pg_pid || true)")"
    return 1
}

# ---------------------------------------------------------------------------------------------
# Redis

# One server today, `readmodel` (the read model, on $READMODEL_REDIS_PORT); the functions below
# take NAME PORT so an instance is named in its files and logs. redis_use sets the instance the
# helpers (and wait_for's callbacks) work on. Each instance asks for a password (requirepass),
# NAME_REDIS_PASSWORD of var/credentials; it reaches the server in a config file of mode 0600 and
# redis-cli in REDISCLI_AUTH, never on a command line that `ps` shows.

R_NAME="" R_PORT="" R_DIR="" R_PID="" R_LOG="" R_CONF="" R_PASS="" R_STARTED=""

redis_use() {
    R_NAME=$1 R_PORT=$2
    R_DIR="$VAR/redis/$R_NAME"
    R_PID="$RUN_DIR/$R_NAME-redis.pid"
    R_LOG="$LOG_DIR/$R_NAME-redis.log"
    R_CONF="$VAR/redis/$R_NAME.conf"
    R_PASS="$(credential "${R_NAME^^}_REDIS_PASSWORD")"
}

# rcli SECONDS ARGS...: redis-cli on the instance, with its password, for at most SECONDS.
rcli() {
    REDISCLI_AUTH="$R_PASS" timeout "$1" redis-cli --no-auth-warning -h 127.0.0.1 -p "$R_PORT" "${@:2}"
}

redis_pid() {
    local pid=""
    [[ -f $R_PID ]] && pid="$(cat "$R_PID" 2>/dev/null || true)"
    # redis-server sets its process title to "redis-server 127.0.0.1:PORT": check the port too, so
    # a stale pid file can never point at the other instance.
    if [[ -n $pid ]] && pid_matches "$pid" redis-server && pid_matches "$pid" ":$R_PORT"; then
        echo "$pid"
    fi
}
redis_started_alive() { pid_running "$R_STARTED"; } # the server start_redis has just launched
redis_answers() {
    command -v redis-cli >/dev/null && [[ "$(rcli 3 ping 2>/dev/null)" == PONG ]]
}
# A server an older services.sh started answers without a password: it gets one at once.
redis_require_password() {
    [[ "$(timeout 3 redis-cli -h 127.0.0.1 -p "$R_PORT" ping 2>/dev/null)" == PONG ]] || return 0
    warn "$R_NAME" "answered without a password; setting requirepass on the running server"
    printf '%s' "$R_PASS" | timeout 10 redis-cli -h 127.0.0.1 -p "$R_PORT" -x config set requirepass >/dev/null
}

redis_ensure_installed() {
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
    apt_install redis-server
    # Do not leave the package's own service on 6379 (in containers policy-rc.d usually keeps it
    # from starting; on a systemd machine it starts and is enabled).
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
        log redis "disabling Debian's redis-server service"
        systemctl disable --now redis-server >/dev/null 2>&1 || true
    elif [[ -f /run/redis/redis-server.pid ]] && pid_matches "$(cat /run/redis/redis-server.pid)" redis-server; then
        log redis "stopping Debian's redis-server service"
        service redis-server stop >/dev/null 2>&1 || kill "$(cat /run/redis/redis-server.pid)" || true
    fi
}

# start_redis NAME PORT
start_redis() {
    redis_use "$1" "$2"
    ensure_dirs
    redis_ensure_installed
    if redis_answers; then
        redis_require_password
        log "$R_NAME" "already up on 127.0.0.1:$R_PORT"
        return 0
    fi
    mkdir -p "$R_DIR"
    (
        umask 077
        printf '# written by scripts/services.sh at each start\nrequirepass %s\n' "$R_PASS" >"$R_CONF"
    )
    log "$R_NAME" "starting on 127.0.0.1:$R_PORT"
    # Started in the background here rather than with --daemonize: a daemonized server writes its
    # pid file only after its parent has returned, so a check right after start could find no pid
    # file and take a live server loading a large append-only file for a dead one. Until the
    # server answers, "alive" means the process launched here still runs (its command line and
    # title change while it execs and starts). setsid: the server outlives the shell that ran `up`.
    nohup setsid redis-server "$R_CONF" --bind 127.0.0.1 --port "$R_PORT" --protected-mode yes \
        --save "" --appendonly yes --appendfsync everysec \
        --maxmemory "$READMODEL_REDIS_MAXMEMORY" --maxmemory-policy noeviction \
        --dir "$R_DIR" --logfile "$R_LOG" --pidfile "$R_PID" >/dev/null 2>&1 &
    R_STARTED=$!
    echo "$R_STARTED" >"$R_PID"
    wait_for "$R_NAME" "$REDIS_TIMEOUT" redis_answers redis_started_alive "$R_LOG"
    log "$R_NAME" "up on 127.0.0.1:$R_PORT"
}

# stop_redis NAME PORT
stop_redis() {
    local pid deadline
    redis_use "$1" "$2"
    pid="$(redis_pid || true)"
    if redis_answers; then
        log "$R_NAME" "stopping (shutdown, flushing its append-only file)"
        rcli 10 shutdown >/dev/null 2>&1 || true
    elif [[ -n $pid ]]; then
        log "$R_NAME" "not answering; sending SIGTERM to pid $pid"
        kill -TERM "$pid" 2>/dev/null || true
    else
        log "$R_NAME" "not running"
        return 0
    fi
    deadline=$((SECONDS + 15))
    while { [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; } || redis_answers; do
        ((SECONDS < deadline)) || die "$R_NAME" "still running after 15s"
        sleep 0.2
    done
    rm -f "$R_PID"
    log "$R_NAME" "stopped"
}

# status_redis NAME PORT
status_redis() {
    local state=down rc=1
    redis_use "$1" "$2"
    if redis_answers; then state=up rc=0; fi
    printf '%-9s %-5s 127.0.0.1:%-6s pid %s\n' "$R_NAME" "$state" "$R_PORT" "$(or_dash "$(redis_pid || true)")"
    return "$rc"
}

# ---------------------------------------------------------------------------------------------
# RabbitMQ (the Celery broker)

# Debian's package, run as our own node (not the package's service): everything in var/rabbitmq,
# the AMQP listener, Erlang distribution and epmd on loopback only. The server scripts under
# /usr/lib/rabbitmq/bin run as the calling user (the /usr/sbin wrappers would switch to the
# `rabbitmq` user, who may not be able to enter the checkout). HOME holds the Erlang cookie the
# server and rabbitmqctl share.
RMQ_HOME="$VAR/rabbitmq"
RMQ_BIN=/usr/lib/rabbitmq/bin
RMQ_PID="$RUN_DIR/rabbitmq.pid"
RMQ_LOG="$LOG_DIR/rabbitmq.log"
RMQ_LOG_DIR="$LOG_DIR/rabbitmq"

# rmq COMMAND...: runs a RabbitMQ script with our node's environment (in a subshell: HOME and
# the rest stay as they are for everything else here).
rmq() (
    export HOME="$RMQ_HOME/home"
    export RABBITMQ_NODENAME="arena-$RABBITMQ_PORT@localhost"
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$RABBITMQ_PORT"
    export RABBITMQ_DIST_PORT=$((RABBITMQ_PORT + 20000))
    export ERL_EPMD_ADDRESS=127.0.0.1
    export RABBITMQ_MNESIA_BASE="$RMQ_HOME/mnesia" RABBITMQ_LOG_BASE="$RMQ_LOG_DIR"
    export RABBITMQ_CONFIG_FILE="$RMQ_HOME/rabbitmq.conf"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_HOME/enabled_plugins"
    export RABBITMQ_PID_FILE="$RMQ_PID"
    # Two cores: schedulers that wait for work instead of spinning on a core (busy wait would
    # show as CPU stolen from every other process here), distribution on loopback only.
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none \
-kernel inet_dist_use_interface {127,0,0,1}"
    exec "$@"
)

rmq_ensure_installed() {
    [[ -x $RMQ_BIN/rabbitmq-server ]] && return 0
    apt_install rabbitmq-server
    # On a systemd machine the package starts and enables its own node on 5672: not ours.
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
        log rabbitmq "disabling Debian's rabbitmq-server service"
        systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true
    fi
}

rmq_write_conf() {
    mkdir -p "$RMQ_HOME/home" "$RMQ_HOME/mnesia" "$RMQ_LOG_DIR"
    chmod 700 "$RMQ_HOME/home"
    cat >"$RMQ_HOME/rabbitmq.conf" <<EOF
# written by scripts/services.sh at each start
listeners.tcp.default = 127.0.0.1:$RABBITMQ_PORT
# guest (every new node makes it) is deleted by rmq_ensure_user; until then, loopback only.
loopback_users.guest = true
log.file = rabbitmq.log
log.console = false
EOF
    echo '[].' >"$RMQ_HOME/enabled_plugins"
}

rmq_pid() {
    local pid=""
    [[ -f $RMQ_PID ]] && pid="$(cat "$RMQ_PID" 2>/dev/null || true)"
    if [[ -n $pid ]] && pid_matches "$pid" "$RMQ_HOME"; then echo "$pid"; fi
}
rmq_alive() { [[ -n "$(rmq_pid)" ]]; }
rmq_answers() {
    [[ -x $RMQ_BIN/rabbitmqctl ]] && port_open "$RABBITMQ_PORT" &&
        rmq timeout 15 "$RMQ_BIN/rabbitmqctl" -q await_startup --timeout 10 >/dev/null 2>&1
}

# The broker user arena, its password that of var/credentials, all rights on vhost /; and no
# guest, the user with the well-known password every node (one made by an older services.sh
# too) starts with. Idempotent. (rabbitmqctl takes the password as an argument: it shows in
# `ps` for the moment its command runs.)
rmq_ensure_user() {
    local users password
    password="$(credential RABBITMQ_PASSWORD)"
    users="$(rmq "$RMQ_BIN/rabbitmqctl" -q list_users --no-table-headers | cut -f1)"
    if ! grep -qx arena <<<"$users"; then
        log rabbitmq "adding user arena (its password: RABBITMQ_PASSWORD in var/credentials)"
        rmq "$RMQ_BIN/rabbitmqctl" -q add_user arena "$password" >/dev/null
    elif ! rmq "$RMQ_BIN/rabbitmqctl" -q authenticate_user arena "$password" >/dev/null 2>&1; then
        log rabbitmq "setting user arena's password to var/credentials' RABBITMQ_PASSWORD"
        rmq "$RMQ_BIN/rabbitmqctl" -q change_password arena "$password" >/dev/null
    fi
    rmq "$RMQ_BIN/rabbitmqctl" -q set_permissions -p / arena '.*' '.*' '.*' >/dev/null
    if grep -qx guest <<<"$users"; then
        log rabbitmq "deleting user guest"
        rmq "$RMQ_BIN/rabbitmqctl" -q delete_user guest >/dev/null
    fi
}

start_rabbitmq() {
    ensure_dirs
    rmq_ensure_installed
    if rmq_alive; then # ours: up, or still starting (never start a second node beside it)
        if ! rmq_answers; then
            log rabbitmq "pid $(rmq_pid) is starting; waiting for it"
            wait_for rabbitmq "$RABBITMQ_TIMEOUT" rmq_answers rmq_alive "$RMQ_LOG" "$RMQ_LOG_DIR/rabbitmq.log"
        fi
        rmq_ensure_user
        log rabbitmq "up on 127.0.0.1:$RABBITMQ_PORT (pid $(rmq_pid))"
        return 0
    fi
    ! port_open "$RABBITMQ_PORT" ||
        die rabbitmq "port $RABBITMQ_PORT is taken by another program; choose another RABBITMQ_PORT"
    rmq_write_conf
    log rabbitmq "starting on 127.0.0.1:$RABBITMQ_PORT (data $RMQ_HOME)"
    rm -f "$RMQ_PID"
    # setsid: the node outlives the shell (and its process group) that ran `up`.
    # The redirections are the subshell's: it waits for the node, and must not hold the caller's
    # stdout open meanwhile.
    (cd "$RMQ_HOME" && rmq nohup setsid "$RMQ_BIN/rabbitmq-server") >>"$RMQ_LOG" 2>&1 </dev/null &
    # rabbitmqctl wait: the pid file, then the node's applications running.
    rmq timeout "$RABBITMQ_TIMEOUT" "$RMQ_BIN/rabbitmqctl" -q wait --timeout "$RABBITMQ_TIMEOUT" \
        "$RMQ_PID" >>"$RMQ_LOG" 2>&1 || {
        show_tail "$RMQ_LOG" "$RMQ_LOG_DIR/rabbitmq.log"
        die rabbitmq "no answer within ${RABBITMQ_TIMEOUT}s (see $RMQ_LOG)"
    }
    wait_for rabbitmq "$RABBITMQ_TIMEOUT" rmq_answers rmq_alive "$RMQ_LOG" "$RMQ_LOG_DIR/rabbitmq.log"
    rmq_ensure_user
    log rabbitmq "up on 127.0.0.1:$RABBITMQ_PORT (pid $(rmq_pid))"
}

stop_rabbitmq() {
    local pid
    pid="$(rmq_pid || true)"
    if [[ -z $pid ]]; then
        log rabbitmq "not running"
        return 0
    fi
    log rabbitmq "stopping pid $pid (rabbitmqctl stop: queues and persistent messages are kept)"
    rmq timeout 60 "$RMQ_BIN/rabbitmqctl" -q stop "$RMQ_PID" >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    wait_exit rabbitmq "$pid" 30
    rm -f "$RMQ_PID"
    # The node started epmd (Erlang's port mapper, one per machine); stop it too once no node
    # is registered with it, so nothing of ours stays behind.
    if command -v epmd >/dev/null && ! epmd -names 2>/dev/null | grep -q '^name '; then
        epmd -kill >/dev/null 2>&1 || true
    fi
    log rabbitmq "stopped"
}

status_rabbitmq() {
    local state=down rc=1
    if rmq_alive && rmq_answers; then state=up rc=0; fi
    printf '%-9s %-5s 127.0.0.1:%-6s pid %s\n' rabbitmq "$state" "$RABBITMQ_PORT" "$(or_dash "$(rmq_pid || true)")"
    return "$rc"
}

# ---------------------------------------------------------------------------------------------
# Kafka: one combined broker+controller node (KRaft), the `single` topology of stack/topology.py.
# `python -m stack kafka` starts, stops and reports it, as it does the three nodes of
# `make cluster-kafka`: Java 17+ and the jars (Maven, once, into var/kafka/lib) on first use, the
# node's server.properties derived from the topology, its storage formatted once, the JVM in a
# session of its own, ready when it answers a real Metadata request. The package needs only the
# standard library, so the Python picked above runs it before .venv exists. KAFKA_PORT,
# KAFKA_HEAP, KAFKA_TIMEOUT and KAFKA_STOP_TIMEOUT reach it through the environment.

stack_kafka() {
    [[ -n $PYTHON ]] || die kafka "python3 (3.11+) is needed to run Kafka (python -m stack)"
    (cd "$ROOT" && "$PYTHON" -m stack kafka "$@" --topology single)
}
start_kafka() { stack_kafka up; }
stop_kafka() { stack_kafka down; }
status_kafka() { stack_kafka status; }

# ---------------------------------------------------------------------------------------------

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

# Debian's Chromium, for the browser tests (Playwright drives it; it never downloads a browser).
ensure_browser() {
    ensure_dirs
    if command -v chromium >/dev/null 2>&1; then
        log browser "$(chromium --version 2>/dev/null || echo chromium) at $(command -v chromium)"
        return 0
    fi
    apt_install chromium
    log browser "installed $(chromium --version 2>/dev/null || echo chromium)"
}

main() {
    local cmd="${1:-}" rc=0
    case "$cmd" in
    up)
        start_postgres
        start_rabbitmq
        start_redis readmodel "$READMODEL_REDIS_PORT"
        start_kafka
        ;;
    down)
        stop_kafka
        stop_redis readmodel "$READMODEL_REDIS_PORT"
        stop_rabbitmq
        stop_postgres
        ;;
    status)
        status_postgres || rc=3
        status_rabbitmq || rc=3
        status_redis readmodel "$READMODEL_REDIS_PORT" || rc=3
        status_kafka || rc=3
        return "$rc"
        ;;
    start-postgres) start_postgres ;;
    stop-postgres) stop_postgres ;;
    start-rabbitmq) start_rabbitmq ;;
    rabbitmqctl)
        shift
        rmq "$RMQ_BIN/rabbitmqctl" "$@"
        ;;
    stop-rabbitmq) stop_rabbitmq ;;
    start-readmodel) start_redis readmodel "$READMODEL_REDIS_PORT" ;;
    stop-readmodel) stop_redis readmodel "$READMODEL_REDIS_PORT" ;;
    start-kafka) start_kafka ;;
    stop-kafka) stop_kafka ;;
    browser) ensure_browser ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
