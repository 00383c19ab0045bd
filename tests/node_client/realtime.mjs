// Realtime with the official Trigger.dev client (@trigger.dev/sdk 4.x) against a trigger.do
// server: runs.subscribeToRun (until the run completes), subscribeToRunsWithTag and
// subscribeToBatch (which never end on their own: we stop them). Run by
// tests/http/test_node_client.py with TRIGGER_API_URL and TRIGGER_SECRET_KEY set; the client
// parses every row with its own schema (SubscribeRunRawShape), assertions are ours.
import assert from "node:assert/strict";
import * as sdk from "@trigger.dev/sdk";

sdk.configure({ baseURL: process.env.TRIGGER_API_URL, accessToken: process.env.TRIGGER_SECRET_KEY });

const called = new Set();
function tracked(ns, prefix) {
  return new Proxy(ns, {
    get(target, prop) {
      const value = target[prop];
      if (typeof prop !== "string" || typeof value !== "function") return value;
      return (...args) => {
        called.add(`${prefix}.${prop}`);
        return value.apply(target, args);
      };
    },
  });
}
const { tasks, runs } = { tasks: sdk.tasks, runs: tracked(sdk.runs, "runs") };

// a subscription must not hang the test: fail after `ms`
function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const report = {};

// runs.subscribeToRun: every status and metadata change, then the loop ends by itself
const steps = await tasks.trigger("http-steps", { steps: 3, interval: 0.5 }, { tags: ["rt-node"] });
const seen = await within(60000, "subscribeToRun", (async () => {
  const out = [];
  for await (const run of runs.subscribeToRun(steps.id)) {
    assert.equal(run.id, steps.id);
    assert.equal(run.taskIdentifier, "http-steps");
    assert.ok(run.createdAt instanceof Date && !Number.isNaN(run.createdAt.getTime()));
    assert.deepEqual(run.tags, ["rt-node"]);
    assert.deepEqual(run.payload, { steps: 3, interval: 0.5 });
    out.push({ status: run.status, step: run.metadata?.step ?? null, output: run.output ?? null });
  }
  return out;
})());
const last = seen[seen.length - 1];
assert.equal(last.status, "COMPLETED");
assert.deepEqual(last.output, { steps: 3 });
const stepsSeen = [...new Set(seen.filter((s) => s.status === "EXECUTING").map((s) => s.step))];
assert.deepEqual(stepsSeen, [0, 1, 2], JSON.stringify(seen));
report.subscribeToRun = { statuses: [...new Set(seen.map((s) => s.status))], steps: stepsSeen };

// the same with the run's public access token, on a client of its own
const pub = new sdk.TriggerClient({ baseURL: process.env.TRIGGER_API_URL, accessToken: steps.publicAccessToken });
const viaToken = await within(30000, "subscribeToRun with a public token", (async () => {
  for await (const run of pub.runs.subscribeToRun(steps.id)) return run.status;
})());
assert.equal(viaToken, "COMPLETED");

// runs.subscribeToRunsWithTag: the runs tagged so far, then one triggered while subscribed
const tag = `rt-tag-${Date.now()}`;
const a = await tasks.trigger("add", { a: 1, b: 1 }, { tags: [tag] });
const b = await tasks.trigger("add", { a: 2, b: 2 }, { tags: [tag, "other"] });
const byTag = new Map();
let late;
await within(60000, "subscribeToRunsWithTag", (async () => {
  for await (const run of runs.subscribeToRunsWithTag(tag)) {
    byTag.set(run.id, run);
    if (!late && byTag.has(a.id) && byTag.has(b.id)) {
      late = await tasks.trigger("add", { a: 3, b: 3 }, { tags: [tag] });
    }
    const done = [...byTag.values()].filter((r) => r.status === "COMPLETED");
    if (late && done.length === 3) break; // never ends on its own: we stop it
  }
})());
assert.deepEqual(new Set(byTag.keys()), new Set([a.id, b.id, late.id]));
assert.deepEqual(byTag.get(late.id).output, { sum: 6 });
report.subscribeToRunsWithTag = byTag.size;

// runs.subscribeToBatch: the batch's runs until all completed
const batch = await tasks.batchTrigger("add", [
  { payload: { a: 1, b: 2 } },
  { payload: { a: 3, b: 4 } },
  { payload: { a: 5, b: 6 } },
]);
const inBatch = new Map();
await within(60000, "subscribeToBatch", (async () => {
  for await (const run of runs.subscribeToBatch(batch.batchId)) {
    inBatch.set(run.id, run);
    if (inBatch.size === 3 && [...inBatch.values()].every((r) => r.isCompleted)) break;
  }
})());
const sums = [...inBatch.values()].map((r) => r.output.sum).sort((x, y) => x - y);
assert.deepEqual(sums, [3, 7, 11]);
report.subscribeToBatch = sums;

// public access tokens: the batch's own (read:batch:<id>), and one for the tag
const scoped = async (token, what, subscription, count) => {
  const c = new sdk.TriggerClient({ baseURL: process.env.TRIGGER_API_URL, accessToken: token });
  const seenIds = new Set();
  await within(30000, what, (async () => {
    for await (const run of subscription(c)) {
      seenIds.add(run.id);
      if (seenIds.size === count) break;
    }
  })());
  return seenIds.size;
};
report.scopedBatch = await scoped(batch.publicAccessToken, "subscribeToBatch with its token",
  (c) => c.runs.subscribeToBatch(batch.batchId), 3);
const tagToken = await sdk.auth.createPublicToken({ scopes: { read: { tags: [tag] } } });
report.scopedTag = await scoped(tagToken, "subscribeToRunsWithTag with a tag token",
  (c) => c.runs.subscribeToRunsWithTag(tag), 3);

// a payload and an output over the server's packet threshold (512 KiB): the rows name them
// (`application/store`) and the client reads them through getRunPacketUrl
const big = { blob: "y".repeat(600 * 1024) };
const bigRun = await tasks.trigger("http-echo", big);
const bigLast = await within(60000, "subscribeToRun on an offloaded run", (async () => {
  let last;
  for await (const run of runs.subscribeToRun(bigRun.id)) last = run;
  return last;
})());
assert.deepEqual(bigLast.payload, big);
assert.deepEqual(bigLast.output, big);
report.offloaded = bigLast.output.blob.length;

report.calls = [...called].sort();
console.log(JSON.stringify(report));
