#!/usr/bin/env bash
# A 3-broker Apache Kafka cluster (KRaft, combined broker+controller nodes) on loopback, for
# `insync bench --kafka`: the same librdkafka workload against Kafka on the same machine.
#
#   bench/kafka-cluster.sh start DIR   fetch the jars (once, into DIR/libs), format, start;
#                                      prints the bootstrap servers as the last stdout line
#   bench/kafka-cluster.sh stop DIR    stop the brokers started in DIR
#
# The jars come from Maven Central through `mvn dependency:copy-dependencies` (no Kafka
# tarball mirror is reachable from here). Needs java (17+) and mvn. Settings match the insync
# cluster's: replication factor 3, min.insync.replicas 2, the topic with 1 partition,
# Kafka's default (lazy) fsync.
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
TOPIC="${TOPIC:-insync}"
BASE_PORT="${KAFKA_BASE_PORT:-19092}"

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
command="$1"
dir="$(mkdir -p "$2" && cd "$2" && pwd)"

fetch_jars() {
  if [ -f "$dir/libs/.complete-$KAFKA_VERSION" ]; then return; fi
  command -v mvn >/dev/null || { echo "mvn is needed to fetch Kafka's jars" >&2; exit 1; }
  mkdir -p "$dir/pom"
  cat > "$dir/pom/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>insync.bench</groupId><artifactId>kafka-jars</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
POM
  rm -rf "$dir/libs"
  (cd "$dir/pom" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$dir/libs" -DincludeScope=runtime) >&2
  touch "$dir/libs/.complete-$KAFKA_VERSION"
}

node_port() { echo $((BASE_PORT + 2 * ($1 - 1))); }
controller_port() { echo $((BASE_PORT + 2 * ($1 - 1) + 1)); }

write_config() {
  local id="$1" voters="$2"
  mkdir -p "$dir/node-$id"
  cat > "$dir/node-$id/server.properties" <<PROPS
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(node_port "$id"),CONTROLLER://127.0.0.1:$(controller_port "$id")
advertised.listeners=PLAINTEXT://127.0.0.1:$(node_port "$id")
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/node-$id/data
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
PROPS
}

java_run() {
  java -Xms512m -Xmx512m -Dlog4j2.level=WARN -cp "$dir/libs/*" "$@"
}

wait_port() {
  for _ in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "Kafka did not listen on port $1; see $dir/node-*/out.log" >&2
  exit 1
}

start() {
  command -v java >/dev/null || { echo "java (17+) is needed to run Kafka" >&2; exit 1; }
  fetch_jars
  local voters="1@127.0.0.1:$(controller_port 1),2@127.0.0.1:$(controller_port 2),3@127.0.0.1:$(controller_port 3)"
  local cluster_id
  cluster_id="$(java_run kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
  for id in 1 2 3; do
    rm -rf "$dir/node-$id"
    write_config "$id" "$voters"
    java_run kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/node-$id/server.properties" >&2
  done
  for id in 1 2 3; do
    nohup java -Xms512m -Xmx512m -cp "$dir/libs/*" kafka.Kafka "$dir/node-$id/server.properties" \
      > "$dir/node-$id/out.log" 2>&1 &
    echo $! > "$dir/node-$id/pid"
  done
  for id in 1 2 3; do wait_port "$(node_port "$id")"; done
  echo "127.0.0.1:$(node_port 1),127.0.0.1:$(node_port 2),127.0.0.1:$(node_port 3)"
}

stop() {
  for id in 1 2 3; do
    local pidfile="$dir/node-$id/pid"
    [ -f "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  for id in 1 2 3; do
    local pidfile="$dir/node-$id/pid"
    [ -f "$pidfile" ] || continue
    local pid; pid="$(cat "$pidfile")"
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

case "$command" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
