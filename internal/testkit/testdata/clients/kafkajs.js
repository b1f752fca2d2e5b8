// Drive KafkaJS for internal/testkit. Reads one JSON job on stdin (the
// same shape as confluent.py): produce sends the messages (acks=all,
// idempotent) and waits for the acknowledgement; consume joins the group,
// reads count records from the earliest offset, commits them and prints
// {"records": [{key, value, partition, offset}]} (byte strings in base64).
// Any error: one line on stderr, exit 1.
'use strict';
const { Kafka, logLevel } = require('kafkajs');

function fail(msg) {
  process.stderr.write(`kafkajs.js: ${msg}\n`);
  process.exit(1);
}

const b64 = (b) => (b === null || b === undefined ? null : Buffer.from(b).toString('base64'));
const unb64 = (s) => (s === null || s === undefined ? null : Buffer.from(s, 'base64'));

function client(job) {
  const cfg = {
    clientId: 'kafkagate-testkit-kafkajs',
    brokers: [job.bootstrap],
    connectionTimeout: 10000,
    requestTimeout: job.timeout_ms,
    retry: { retries: 5 },
    logLevel: logLevel.ERROR,
    logCreator: () => ({ namespace, log }) => process.stderr.write(`kafkajs ${namespace}: ${log.message}\n`),
  };
  if (job.sasl) {
    cfg.sasl = { mechanism: job.sasl.mechanism.toLowerCase(), username: job.sasl.username, password: job.sasl.password };
  }
  return new Kafka(cfg);
}

async function produce(job) {
  const p = client(job).producer({ idempotent: true, maxInFlightRequests: 1 });
  await p.connect();
  try {
    await p.send({
      topic: job.topic,
      acks: -1,
      messages: job.messages.map((m) => ({ key: unb64(m.key), value: unb64(m.value) })),
    });
  } finally {
    await p.disconnect();
  }
  process.stdout.write(JSON.stringify({ produced: job.messages.length }) + '\n');
}

async function consume(job) {
  const c = client(job).consumer({ groupId: job.group, sessionTimeout: 10000, heartbeatInterval: 1000 });
  const out = [];
  await c.connect();
  let timer;
  try {
    await c.subscribe({ topic: job.topic, fromBeginning: true });
    await new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`read ${out.length} of ${job.count} records in time`)), job.timeout_ms);
      c.on(c.events.CRASH, (e) => reject(e.payload.error));
      c.run({
        autoCommit: false,
        eachMessage: async ({ topic, partition, message }) => {
          if (out.length >= job.count) return;
          out.push({ key: b64(message.key), value: b64(message.value), partition, offset: Number(message.offset) });
          await c.commitOffsets([{ topic, partition, offset: (BigInt(message.offset) + 1n).toString() }]);
          if (out.length >= job.count) resolve();
        },
      }).catch(reject);
    });
  } finally {
    clearTimeout(timer);
    await c.disconnect();
  }
  process.stdout.write(JSON.stringify({ records: out }) + '\n');
}

let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const job = JSON.parse(input);
  const run = { produce, consume }[job.mode];
  run(job).then(() => process.exit(0), (e) => fail(e && e.message ? e.message : String(e)));
});
