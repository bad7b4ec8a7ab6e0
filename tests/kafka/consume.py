"""A librdkafka consumer (confluent-kafka) with plain assign, no consumer group.

Usage: consume.py BOOTSTRAP TOPIC EXPECTED [PARTITIONS]

Assigns partitions 0..PARTITIONS (default 1) from offset 0 and polls until it has read
EXPECTED records and reached the end of every partition after that; prints one JSON object:
every record read as [offset, key, value, headers, partition], in the order read, and the
topic's partitions as Metadata describes them: {partition: {"leader": id, "isr": [ids]}}.
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition

DEADLINE_SECONDS = 60


def main():
    bootstrap, topic, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
    partitions = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "insync-test-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records, deadline = [], time.monotonic() + DEADLINE_SECONDS
    at_end = set()
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(message.partition())
                if len(records) >= expected and len(at_end) == partitions:
                    break
            continue
        at_end.discard(message.partition())
        headers = {k: v.decode() for k, v in (message.headers() or [])}
        records.append([message.offset(), message.key().decode(), message.value().decode(), headers,
                        message.partition()])
    described = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    metadata = {str(p): {"leader": d.leader, "isr": list(d.isrs)} for p, d in described.items()}
    consumer.close()
    print(json.dumps({"records": records, "metadata": metadata}), flush=True)


if __name__ == "__main__":
    main()
