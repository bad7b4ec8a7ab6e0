"""One CreateTopics through librdkafka's AdminClient (confluent-kafka), driven by
tests/kafka_clients.rs.

Usage: create_topic.py BOOTSTRAP NAME PARTITIONS [validate-only]

Asks for topic NAME with PARTITIONS partitions (replication factor: the broker's default) and
prints one JSON object: {"error": null when created (or, validate-only, valid), else the
error's name, "message": the broker's message}.
"""
import json
import sys

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    bootstrap, name, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
    validate_only = len(sys.argv) > 4 and sys.argv[4] == "validate-only"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(name, partitions)
    futures = admin.create_topics([topic], operation_timeout=10, validate_only=validate_only)
    try:
        futures[name].result(60)
        answer = {"error": None, "message": ""}
    except KafkaException as error:
        answer = {"error": error.args[0].name(), "message": error.args[0].str()}
    print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
