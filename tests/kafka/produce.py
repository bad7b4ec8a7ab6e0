"""An idempotent librdkafka producer (confluent-kafka), driven by tests/kafka_*.rs.

Usage: produce.py BOOTSTRAP TOPIC COUNT GATE

Produces COUNT records "record-<i>" (key "key-<i>", one header) with acks=all and
enable.idempotence=true. After GATE acknowledgements it prints "GATE" and waits for a line on
stdin (the test breaks the cluster meanwhile; records are in flight), then produces the rest.
Records go to the partition librdkafka's partitioner picks for the key. At the end it prints
one JSON object: every acknowledged (offset, value, partition) in acknowledgement order, every delivery error, and how many times librdkafka logged a NOT_LEADER_OR_FOLLOWER
answer (the leader-change test asserts that the client's own retry went through one).
"""
import json
import sys
import threading

from confluent_kafka import Producer

NOT_LEADER_MARKS = ("NOT_LEADER_OR_FOLLOWER", "Not leader for partition")


def main():
    bootstrap, topic, count, gate = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    acked, errors, not_leader = [], [], [0]
    gate_reached = threading.Event()

    def on_log(logger, level, fac, message):
        if any(mark in message for mark in NOT_LEADER_MARKS):
            not_leader[0] += 1

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            # The broker takes at most 512 records per batch (docs/kafka.md).
            "batch.num.messages": 500,
            "linger.ms": 5,
            "message.timeout.ms": 120000,
            "retry.backoff.ms": 50,
            "topic.metadata.refresh.interval.ms": 1000,
            "debug": "msg,topic",
            "log_level": 7,
        },
        logger=LogSink(on_log),
    )

    def on_delivery(error, message):
        if error is not None:
            errors.append(str(error))
            return
        acked.append((message.offset(), message.value().decode(), message.partition()))
        if len(acked) >= gate:
            gate_reached.set()

    def produce(i):
        while True:
            try:
                producer.produce(
                    topic,
                    key=f"key-{i}",
                    value=f"record-{i}",
                    headers=[("index", str(i).encode())],
                    on_delivery=on_delivery,
                )
                return
            except BufferError:
                producer.poll(0.05)

    first = min(count, max(gate * 3, gate + 1))
    for i in range(first):
        produce(i)
        producer.poll(0)
    while not gate_reached.is_set():
        producer.poll(0.05)
    print("GATE", flush=True)
    sys.stdin.readline()
    for i in range(first, count):
        produce(i)
        producer.poll(0)
    left = producer.flush(150)
    print(json.dumps({"acked": acked, "errors": errors, "unflushed": left,
                      "not_leader_seen": not_leader[0]}), flush=True)


class LogSink:
    """A logging.Logger stand-in: librdkafka calls log(level, format, *args)."""

    def __init__(self, on_log):
        self.on_log = on_log

    def log(self, level, fmt, *args):
        message = fmt % args if args else fmt
        self.on_log(self, level, "", message)
        if level <= 4:
            sys.stderr.write(message + "\n")


if __name__ == "__main__":
    main()
