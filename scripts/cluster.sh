#!/usr/bin/env bash
# A 3-node Pigeon cluster on this machine, to try cluster mode: ZooKeeper, Redis and MariaDB on
# loopback (scripts/services.sh) and three pigeond nodes with every role, sharing them.
#
#   scripts/cluster.sh up       start everything (after `make build`), print where it listens
#   scripts/cluster.sh down     stop the nodes, then the engines
#   scripts/cluster.sh status   what is running
#
# Everything lives in $PIGEON_CLUSTER_DIR (default ./cluster): engine data, node logs (nN.log).
# Ports (override with the variables): HTTP/WebSocket 8081-8083, native TCP 9091-9093,
# ZooKeeper $PIGEON_ZK_PORT (12181), Redis $PIGEON_REDIS_PORT (16379), MariaDB
# $PIGEON_MYSQL_PORT (13306). Data survives `down`; delete the directory to start afresh.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${PIGEON_CLUSTER_DIR:-./cluster}
zk_port=${PIGEON_ZK_PORT:-12181}
redis_port=${PIGEON_REDIS_PORT:-16379}
mysql_port=${PIGEON_MYSQL_PORT:-13306}
pigeond=${PIGEOND:-build/release/apps/pigeond/pigeond}
services=scripts/services.sh
nodes=(1 2 3)

node_pid() { [[ -s $dir/n$1.pid ]] && cat "$dir/n$1.pid"; }
alive() { [[ -n ${1:-} && -d /proc/$1 && $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

up() {
  [[ -x $pigeond ]] || { echo "cluster.sh: $pigeond is missing: run 'make build' first" >&2; exit 1; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  echo "cluster.sh: starting ZooKeeper ($zk_port), Redis ($redis_port), MariaDB ($mysql_port) in $dir"
  $services ready zookeeper "$zk_port" || $services start zookeeper "$dir/zookeeper" "$zk_port" >/dev/null
  $services ready redis "$redis_port" || $services start redis "$dir/redis" "$redis_port" >/dev/null
  $services ready mariadb "$mysql_port" || $services start mariadb "$dir/mariadb" "$mysql_port" >/dev/null
  for n in "${nodes[@]}"; do
    if alive "$(node_pid "$n")"; then
      echo "cluster.sh: node $n runs already"
      continue
    fi
    rm -f "$dir/n$n.ready"
    nohup "$pigeond" --host 127.0.0.1 --advertise 127.0.0.1 \
      --http-port "808$n" --tcp-port "909$n" \
      --zookeeper "127.0.0.1:$zk_port" --redis "127.0.0.1:$redis_port" \
      --mysql "host=127.0.0.1 port=$mysql_port user=root db=pigeon" \
      --ready-file "$dir/n$n.ready" >"$dir/n$n.log" 2>&1 &
    echo $! >"$dir/n$n.pid"
  done
  for n in "${nodes[@]}"; do
    for _ in $(seq 1 300); do
      [[ -f $dir/n$n.ready ]] && break
      alive "$(node_pid "$n")" || { tail -n 20 "$dir/n$n.log" >&2; echo "cluster.sh: node $n exited" >&2; exit 1; }
      sleep 0.1
    done
    [[ -f $dir/n$n.ready ]] || { echo "cluster.sh: node $n did not start (see $dir/n$n.log)" >&2; exit 1; }
  done
  echo "cluster.sh: 3 nodes up"
  for n in "${nodes[@]}"; do
    echo "  node $n: http://127.0.0.1:808$n/ (web client and API), ws://127.0.0.1:808$n/ws, tcp://127.0.0.1:909$n"
  done
  echo "Log in through any node: it names the gateway node for you. 'scripts/cluster.sh down' stops it all."
}

down() {
  for n in "${nodes[@]}"; do
    local pid
    pid=$(node_pid "$n") || true
    if alive "$pid"; then
      kill -TERM "$pid"
      for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
      alive "$pid" && kill -KILL "$pid"
    fi
    rm -f "$dir/n$n.pid" "$dir/n$n.ready"
  done
  for s in mariadb redis zookeeper; do
    [[ -d $dir/$s ]] && $services stop "$dir/$s"
  done
  echo "cluster.sh: down (data kept in $dir)"
}

status() {
  for n in "${nodes[@]}"; do
    if alive "$(node_pid "$n")"; then echo "node $n: running (pid $(node_pid "$n"))"; else echo "node $n: stopped"; fi
  done
  $services ready zookeeper "$zk_port" && echo "zookeeper: running" || echo "zookeeper: stopped"
  $services ready redis "$redis_port" && echo "redis: running" || echo "redis: stopped"
  $services ready mariadb "$mysql_port" && echo "mariadb: running" || echo "mariadb: stopped"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: scripts/cluster.sh up|down|status" >&2; exit 2 ;;
esac
