"""A librdkafka consumer (confluent-kafka) with plain assign, no consumer group.

Usage: consume.py BOOTSTRAP TOPIC EXPECTED

Assigns partition 0 from offset 0 and polls until it has read EXPECTED records or the end of
the partition twice in a row after that; prints one JSON object: every record read as
[offset, key, value, headers], in the order read.
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition

DEADLINE_SECONDS = 60


def main():
    bootstrap, topic, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "insync-test-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    records, deadline = [], time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF and len(records) >= expected:
                break
            continue
        headers = {k: v.decode() for k, v in (message.headers() or [])}
        records.append([message.offset(), message.key().decode(), message.value().decode(), headers])
    consumer.close()
    print(json.dumps({"records": records}), flush=True)


if __name__ == "__main__":
    main()
