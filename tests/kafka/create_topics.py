"""CreateTopics through librdkafka's AdminClient (confluent-kafka), driven by tests/kafka_clients.rs:
Kafka's own checks, one case each, and one valid new topic, which is created.

Usage: create_topics.py BOOTSTRAP

Asks for one topic per case and prints one JSON object: {case: error name or "created"}.
"""
import json
import sys

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

CASES = {
    "bad_name": NewTopic("bad name!", 1, 3),
    "zero_partitions": NewTopic("zero", 0, 3),
    "too_many_partitions": NewTopic("many", 33, 3),
    "replication_factor_2": NewTopic("rf2", 1, 2),
    "manual_assignment": NewTopic("assigned", 1, replica_assignment=[[1, 2, 3]]),
    "served": NewTopic("orders", 1, 3),
    "new": NewTopic("fresh", 2, 3),
}


def main():
    admin = AdminClient({"bootstrap.servers": sys.argv[1]})
    answers = {}
    for case, topic in CASES.items():
        try:
            admin.create_topics([topic], operation_timeout=10)[topic.topic].result(30)
            answers[case] = "created"
        except KafkaException as error:
            answers[case] = error.args[0].name()
    print(json.dumps(answers), flush=True)


if __name__ == "__main__":
    main()
