#!/usr/bin/env node
// kafkajs against the local broker, for tests/integration/test_clients.py.
//   node client.js produce BOOTSTRAP TOPIC         stdin: one {"key", "value"} JSON object a line
//   node client.js consume BOOTSTRAP TOPIC COUNT   stdout: one {"key", "value", "offset"} a line
// Exit status 0 when done, 1 with the reason on stderr otherwise.
'use strict';

const { Kafka, logLevel, Partitioners } = require('kafkajs');

const TIMEOUT_MS = 60000;

function fail(message) {
  process.stderr.write(`kafkajs: ${message}\n`);
  process.exit(1);
}

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on('data', (chunk) => chunks.push(chunk));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

async function produce(kafka, topic) {
  const lines = (await readStdin()).split('\n').filter((line) => line.length > 0);
  const messages = lines.map((line, i) => {
    try {
      const { key, value } = JSON.parse(line);
      return { key, value };
    } catch (err) {
      return fail(`stdin:${i + 1}: not a JSON object: ${err.message}`);
    }
  });
  // Naming the partitioner silences kafkajs's notice that its default changed in 2.0.
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    await producer.send({ topic, acks: -1, messages });
  } finally {
    await producer.disconnect();
  }
}

async function consume(kafka, topic, count) {
  // kafkajs reads only through a consumer group; a fresh group starts at the beginning. The
  // broker answers a group's first join after half the session timeout (15 s at kafkajs's
  // default 30 s), so a short-lived reader asks for a shorter one.
  const groupId = `matchstream-test-${process.pid}-${Date.now()}`;
  const consumer = kafka.consumer({
    groupId, sessionTimeout: 6000, heartbeatInterval: 1000, maxWaitTimeInMs: 200,
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  let seen = 0;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${topic}: ${seen} of ${count} messages after ${TIMEOUT_MS} ms`)),
      TIMEOUT_MS,
    );
    consumer
      .run({
        eachMessage: async ({ message }) => {
          if (seen >= count) return;
          seen += 1;
          process.stdout.write(`${JSON.stringify({
            key: message.key === null ? null : message.key.toString('utf8'),
            value: message.value === null ? null : message.value.toString('utf8'),
            offset: Number(message.offset),
          })}\n`);
          if (seen === count) {
            clearTimeout(timer);
            resolve();
          }
        },
      })
      .catch(reject);
  }).finally(() => consumer.disconnect());
}

async function main() {
  const [command, bootstrap, topic, count] = process.argv.slice(2);
  if (!bootstrap || !topic || !['produce', 'consume'].includes(command)) {
    fail('usage: client.js produce|consume BOOTSTRAP TOPIC [COUNT]');
  }
  const kafka = new Kafka({
    clientId: 'matchstream-test',
    brokers: [bootstrap],
    logLevel: logLevel.ERROR,
    retry: { retries: 3 },
  });
  if (command === 'produce') {
    await produce(kafka, topic);
  } else {
    const n = Number.parseInt(count, 10);
    if (!(n > 0)) fail(`COUNT ${count}: expected a positive number`);
    await consume(kafka, topic, n);
  }
}

main().catch((err) => fail(err.stack || String(err)));
