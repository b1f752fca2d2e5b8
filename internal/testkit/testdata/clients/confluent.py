"""Drive Debian's python3-confluent-kafka (librdkafka) for internal/testkit.

Reads one JSON job on stdin:
  {"mode": "produce"|"consume", "bootstrap": "host:port", "topic": "...",
   "group": "...", "count": N, "timeout_ms": T,
   "sasl": {"mechanism": "PLAIN"|"SCRAM-SHA-256"|"SCRAM-SHA-512",
            "username": "...", "password": "..."} or null,
   "messages": [{"key": b64 or null, "value": b64 or null}]}
produce: sends the messages (acks=all, idempotent) and waits for every delivery.
consume: joins the group, reads N records from the earliest offset, commits
them synchronously and prints {"records": [{"key","value","partition","offset"}]}.
Any error: one line on stderr, exit 1.
"""
import base64
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer


def b64(b):
    return None if b is None else base64.b64encode(b).decode()


def unb64(s):
    return None if s is None else base64.b64decode(s)


def fail(msg):
    sys.stderr.write("confluent.py: %s\n" % msg)
    sys.exit(1)


def base_conf(job):
    conf = {"bootstrap.servers": job["bootstrap"], "client.id": "kafkagate-testkit-python"}
    sasl = job.get("sasl")
    if sasl:
        conf.update({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": sasl["mechanism"],
                     "sasl.username": sasl["username"], "sasl.password": sasl["password"]})

    def on_error(err):
        # Authentication failures are final; the rest librdkafka retries.
        if err.code() in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED) or err.fatal():
            fail("%s: %s" % (err.name(), err.str()))

    conf["error_cb"] = on_error
    return conf


def produce(job):
    conf = base_conf(job)
    conf.update({"acks": "all", "enable.idempotence": True, "message.timeout.ms": job["timeout_ms"]})
    p = Producer(conf)
    errors = []

    def delivered(err, msg):
        if err is not None:
            errors.append("%s: %s" % (err.name(), err.str()))

    for m in job["messages"]:
        p.produce(job["topic"], key=unb64(m.get("key")), value=unb64(m.get("value")), on_delivery=delivered)
        p.poll(0)
    left = p.flush(job["timeout_ms"] / 1000.0 + 5)
    if errors:
        fail("delivery failed: " + "; ".join(errors[:3]))
    if left:
        fail("%d messages not delivered in time" % left)
    print(json.dumps({"produced": len(job["messages"])}))


def consume(job):
    conf = base_conf(job)
    conf.update({"group.id": job["group"], "auto.offset.reset": "earliest", "enable.auto.commit": False,
                 "session.timeout.ms": 10000})
    c = Consumer(conf)
    c.subscribe([job["topic"]])
    out = []
    deadline = time.monotonic() + job["timeout_ms"] / 1000.0
    try:
        while len(out) < job["count"]:
            if time.monotonic() > deadline:
                fail("read %d of %d records in time" % (len(out), job["count"]))
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                fail("consume: %s" % msg.error().str())
            out.append({"key": b64(msg.key()), "value": b64(msg.value()),
                        "partition": msg.partition(), "offset": msg.offset()})
        c.commit(asynchronous=False)
    except KafkaException as e:
        fail("consume: %s" % e)
    finally:
        c.close()
    print(json.dumps({"records": out}))


def main():
    job = json.load(sys.stdin)
    {"produce": produce, "consume": consume}[job["mode"]](job)


if __name__ == "__main__":
    main()
