"""The producer workload of `insync bench --kafka`, the same against insync and Apache Kafka.

Usage: kafka_produce.py BOOTSTRAP TOPIC RECORDS SIZE [PARTITIONS [WARMUP_SECONDS]]

With PARTITIONS, the topic is first created with that many partitions and replication factor 3
through the AdminClient (CreateTopics); a topic that exists already (insync's, declared at
start with --topic NAME:P) is used as it is, if it has that many partitions. Records carry no
key, so librdkafka's sticky partitioner spreads batches over the partitions.

librdkafka (confluent-kafka) with acks=all and enable.idempotence=true sends RECORDS records
of SIZE bytes after a warm-up of the same workload for WARMUP_SECONDS (default 10), and at least
1,000 records, whose figures are discarded: it waits out topic creation on Kafka and lets the
JVM's JIT compiler warm up.
Latency is per record, from produce() to its delivery report. Prints one JSON object.
"""
import json
import sys
import time

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

WARMUP_RECORDS = 1000
WARMUP_SECONDS = 10.0


def main():
    bootstrap, topic, records, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if len(sys.argv) > 5:
        ensure_topic(bootstrap, topic, int(sys.argv[5]))
    warmup_seconds = float(sys.argv[6]) if len(sys.argv) > 6 else WARMUP_SECONDS
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            # insync takes at most 512 records per batch; Kafka runs with the same setting.
            "batch.num.messages": 500,
            "linger.ms": 5,
            "message.timeout.ms": 120000,
        }
    )
    value = b"x" * size
    latencies, errors = [], []

    def report(sent):
        def on_delivery(error, _message):
            if error is not None:
                errors.append(str(error))
            else:
                latencies.append(time.monotonic() - sent)
        return on_delivery

    def produce(count):
        for _ in range(count):
            while True:
                try:
                    producer.produce(topic, value=value, on_delivery=report(time.monotonic()))
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
        producer.flush(180)

    warm_until = time.monotonic() + warmup_seconds
    produce(WARMUP_RECORDS)
    while time.monotonic() < warm_until:
        produce(WARMUP_RECORDS)
    latencies.clear()
    errors.clear()
    started = time.monotonic()
    produce(records)
    seconds = time.monotonic() - started
    latencies.sort()

    def percentile(p):
        return 1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else None

    print(json.dumps({
        "acknowledged": len(latencies),
        "errors": len(errors),
        "seconds": seconds,
        "records_per_s": len(latencies) / seconds,
        "mb_per_s": len(latencies) * size / seconds / 1e6,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
    }), flush=True)


def ensure_topic(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    created = admin.create_topics([NewTopic(topic, partitions, 3)], operation_timeout=30)
    try:
        created[topic].result(60)
    except KafkaException as error:
        if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    for _ in range(600):
        described = admin.list_topics(topic, timeout=10).topics.get(topic)
        ready = described is not None and described.error is None and all(
            p.leader >= 0 for p in described.partitions.values())
        if ready and len(described.partitions) == partitions:
            return
        time.sleep(0.1)
    sys.exit(f"topic {topic}: not {partitions} partitions with leaders after 60 s")


if __name__ == "__main__":
    main()
