// BullMQ's side of the bullmq cases (benchmarks/cases/bullmq.py), run by benchmarks/node.py:
//
//   node bench.mjs MODULES CONNECTION COUNT CONCURRENCY
//
// MODULES: the folder whose node_modules holds bullmq (the benchmark's cache);
// CONNECTION: ioredis options as JSON ({"path": "/…/redis.sock"} or host, port,
// db, username, password); COUNT jobs; CONCURRENCY of the Worker, or 0 to only
// fill the queue.
//
// Fills the queue "bench" with COUNT jobs of 100-byte payloads, with random
// priorities, by Queue.addBulk of 1000 (as psaddmany sends 1000 per call), each
// job with removeOnComplete: true; then, unless CONCURRENCY is 0, runs a Worker
// with a no-op processor at CONCURRENCY until all COUNT are completed. Prints one
// JSON line: {"bullmq": version, "add": {"items", "seconds"}, "work": {"items",
// "seconds"}}. Each part is timed here, without Node's start or the connections
// (the Worker is made with autorun: false and timed from run() once ready).

import { createRequire } from "node:module";
import { join } from "node:path";

const [modules, connectionJson, countText, concurrencyText] = process.argv.slice(2);
const require = createRequire(join(modules, "package.json"));
const { Queue, Worker } = require("bullmq");
const version = require("bullmq/package.json").version;

const connection = JSON.parse(connectionJson);
const count = Number(countText);
const concurrency = Number(concurrencyText);
const NAME = "bench";
const CHUNK = 1000;
const VALUE_SIZE = 100;

// psctl's items have random integer scores in [-1e6, 1e6], the highest first;
// a BullMQ priority runs from 1 (first) to 2,097,151: the same spread, reversed
function priorities(n, seed) {
  let state = seed >>> 0; // mulberry32: a small seeded generator, the same run to run
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Array.from({ length: n }, () => 1 + Math.floor(next() * 2_000_001));
}

function jobs() {
  const pad = "v".repeat(VALUE_SIZE - 12);
  const ranks = priorities(count, 5);
  return ranks.map((priority, i) => ({
    name: "job",
    data: String(i).padStart(12, "0") + pad,
    opts: { priority, removeOnComplete: true },
  }));
}

async function fill() {
  const queue = new Queue(NAME, { connection });
  await queue.waitUntilReady();
  const all = jobs();
  const start = performance.now();
  for (let i = 0; i < all.length; i += CHUNK) {
    await queue.addBulk(all.slice(i, i + CHUNK));
  }
  const seconds = (performance.now() - start) / 1000;
  await queue.close();
  return { items: all.length, seconds };
}

async function work() {
  let completed = 0;
  let start = 0;
  let finished;
  const allDone = new Promise((resolve) => (finished = resolve));
  const worker = new Worker(NAME, async () => {}, { connection, concurrency, autorun: false });
  worker.on("completed", () => {
    completed += 1;
    if (completed === count) finished(performance.now());
  });
  worker.on("failed", (job, error) => {
    console.error(`job ${job?.id} failed: ${error}`);
    process.exitCode = 1;
    finished(performance.now());
  });
  await worker.waitUntilReady();
  start = performance.now();
  const running = worker.run();
  const end = await allDone;
  await worker.close();
  await running;
  return { items: completed, seconds: (end - start) / 1000 };
}

const out = { bullmq: version, add: await fill() };
if (concurrency > 0) out.work = await work();
console.log(JSON.stringify(out));
