#!/usr/bin/env bash
# Starts and stops the real engines a Pigeon cluster uses — Redis, ZooKeeper, MariaDB — on
# loopback, without systemd, each in a directory of its own. Used by the cluster tests, by
# scripts/cluster.sh and by hand. The packages come from scripts/install-deps.sh.
#
#   services.sh start redis|zookeeper|mariadb DIR PORT   start in DIR (created), wait until it
#                                                          answers (30 s at most), print its pid
#   services.sh stop DIR                                   stop what runs in DIR, wait until gone
#   services.sh kill DIR                                   the same with SIGKILL (a crash)
#   services.sh ready redis|zookeeper|mariadb PORT         exit 0 if it answers now
#
# Ports are the caller's: tests pick free ones. MariaDB gets a root user with no password
# (loopback only) and an empty database `pigeon`.
set -euo pipefail

die() {
  echo "services.sh: $*" >&2
  exit 1
}

ready() {
  local kind=$1 port=$2
  case $kind in
    redis) [[ $(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]] ;;
    zookeeper)
      # `ruok` answers before the server serves; `srvr` names its mode only once it does.
      local reply
      reply=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf srvr >&3 && cat <&3" 2>/dev/null) || return 1
      [[ $reply == *"Mode: standalone"* ]]
      ;;
    mariadb) mariadb-admin --no-defaults -h127.0.0.1 -P"$port" -uroot --connect-timeout=2 ping >/dev/null 2>&1 ;;
    *) die "unknown service '$kind'" ;;
  esac
}

wait_ready() {
  local kind=$1 port=$2 pid=$3 log=$4
  for _ in $(seq 1 300); do
    if ready "$kind" "$port"; then return 0; fi
    if [[ ! -d /proc/$pid ]]; then
      tail -n 30 "$log" >&2 || true
      die "$kind exited before it was ready (log: $log)"
    fi
    sleep 0.1
  done
  tail -n 30 "$log" >&2 || true
  die "$kind not ready on port $port after 30 s (log: $log)"
}

start_redis() {
  local dir=$1 port=$2
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize yes \
    --pidfile "$dir/service.pid" --logfile "$dir/redis.log" --save '' --appendonly no \
    >/dev/null
  for _ in $(seq 1 50); do [[ -s $dir/service.pid ]] && break; sleep 0.1; done
  [[ -s $dir/service.pid ]] || die "redis wrote no pid file (log: $dir/redis.log)"
  wait_ready redis "$port" "$(cat "$dir/service.pid")" "$dir/redis.log"
}

start_zookeeper() {
  local dir=$1 port=$2
  mkdir -p "$dir/data"
  cat >"$dir/zoo.cfg" <<EOF
tickTime=1000
minSessionTimeout=2000
maxSessionTimeout=60000
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,mntr,cons
EOF
  local cp=/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar
  cp+=:/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-simple.jar
  for jar in /usr/share/java/netty*.jar /usr/share/java/commons-io.jar /usr/share/java/jline.jar; do
    [[ -f $jar ]] && cp+=:$jar
  done
  nohup java -Xmx256m -XX:+UseSerialGC -Dzookeeper.jmx.log4j.disable=true -cp "$cp" \
    org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" >"$dir/zookeeper.log" 2>&1 &
  echo $! >"$dir/service.pid"
  wait_ready zookeeper "$port" "$!" "$dir/zookeeper.log"
}

start_mariadb() {
  local dir=$1 port=$2
  # mariadbd runs as `mysql`: its data directory and every parent must let it in.
  chmod 755 "$dir"
  mkdir -p "$dir/data"
  chown mysql:mysql "$dir/data"
  if [[ ! -d $dir/data/mysql ]]; then
    mariadb-install-db --no-defaults --datadir="$dir/data" --user=mysql \
      --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 ||
      { tail -n 30 "$dir/install.log" >&2; die "mariadb-install-db failed"; }
  fi
  # Settings for a test engine on a shared 2-core machine: durable commits (the default
  # innodb_flush_log_at_trx_commit=1), small buffers, no binary log, no DNS.
  nohup mariadbd --no-defaults --datadir="$dir/data" --user=mysql --port="$port" \
    --bind-address=127.0.0.1 --socket="$dir/data/s.sock" --pid-file="$dir/data/m.pid" \
    --skip-name-resolve --innodb-buffer-pool-size=256M --innodb-log-file-size=256M \
    --max-connections=500 --skip-log-bin --character-set-server=utf8mb4 \
    --collation-server=utf8mb4_bin >"$dir/mariadb.log" 2>&1 &
  echo $! >"$dir/service.pid"
  wait_ready mariadb "$port" "$!" "$dir/mariadb.log"
  mariadb --no-defaults -h127.0.0.1 -P"$port" -uroot -e 'CREATE DATABASE IF NOT EXISTS pigeon'
}

stop_dir() {
  local dir=$1 signal=$2
  [[ -s $dir/service.pid ]] || return 0
  local pid
  pid=$(cat "$dir/service.pid")
  kill "-$signal" "$pid" 2>/dev/null || true
  # /proc/PID goes once the process is reaped; a zombie of ours keeps it, so also check its state.
  for _ in $(seq 1 300); do
    [[ -d /proc/$pid ]] || break
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && break
    sleep 0.1
  done
  [[ -d /proc/$pid && $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] &&
    die "process $pid in $dir did not stop"
  rm -f "$dir/service.pid"
}

cmd=${1:-}
case $cmd in
  start)
    [[ $# -eq 4 ]] || die "usage: services.sh start redis|zookeeper|mariadb DIR PORT"
    kind=$2 dir=$3 port=$4
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    case $kind in
      redis) start_redis "$dir" "$port" ;;
      zookeeper) start_zookeeper "$dir" "$port" ;;
      mariadb) start_mariadb "$dir" "$port" ;;
      *) die "unknown service '$kind'" ;;
    esac
    cat "$dir/service.pid"
    ;;
  stop | kill)
    [[ $# -eq 2 ]] || die "usage: services.sh $cmd DIR"
    stop_dir "$2" "$([[ $cmd == kill ]] && echo KILL || echo TERM)"
    ;;
  ready)
    [[ $# -eq 3 ]] || die "usage: services.sh ready redis|zookeeper|mariadb PORT"
    ready "$2" "$3"
    ;;
  *) die "usage: services.sh start|stop|kill|ready … (see the header of this script)" ;;
esac
