// The official Trigger.dev client (@trigger.dev/sdk 4.x) against a trigger.do server.
// Run by tests/http/test_node_client.py with TRIGGER_API_URL and TRIGGER_SECRET_KEY set.
// Every response is validated by the client's own zod schemas; assertions are ours.
// Each client call made is recorded (`report.calls`): the README lists exactly those.
import assert from "node:assert/strict";
import * as sdk from "@trigger.dev/sdk";

sdk.configure({ baseURL: process.env.TRIGGER_API_URL, accessToken: process.env.TRIGGER_SECRET_KEY });

const called = new Set();

// `ns` with every function call recorded as `<prefix>.<name>`
function tracked(ns, prefix) {
  return new Proxy(ns, {
    get(target, prop) {
      const value = target[prop];
      if (typeof prop !== "string") return value;
      if (typeof value === "function") {
        return (...args) => {
          called.add(`${prefix}.${prop}`);
          return value.apply(target, args);
        };
      }
      return value;
    },
  });
}

const { tasks, runs, batch, queues, idempotencyKeys, auth } = Object.fromEntries(
  ["tasks", "runs", "batch", "queues", "idempotencyKeys", "auth"].map((n) => [n, tracked(sdk[n], n)]),
);

// a second client, authenticated by `accessToken` (a public access token)
function client(accessToken) {
  const c = new sdk.TriggerClient({ baseURL: process.env.TRIGGER_API_URL, accessToken });
  return Object.fromEntries(["tasks", "runs", "batch"].map((n) => [n, tracked(c[n], n)]));
}

const status = (code) => (err) => err.status === code;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function finished(id, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await runs.retrieve(id);
    if (run.isCompleted) return run;
    if (Date.now() > deadline) throw new Error(`run ${id} still ${run.status}`);
    await sleep(100);
  }
}

const report = {};

// tasks.trigger, then runs.retrieve until the output arrives
const handle = await tasks.trigger("add", { a: 2, b: 3 });
assert.match(handle.id, /^run_/);
assert.ok(handle.publicAccessToken, "the client signs a public token itself");
const done = await finished(handle.id);
assert.equal(done.status, "COMPLETED");
assert.equal(done.isSuccess, true);
assert.equal(done.isFailed, false);
assert.deepEqual(done.output, { sum: 5 });
assert.deepEqual(done.payload, { a: 2, b: 3 });
assert.equal(done.taskIdentifier, "add");
assert.equal(done.attemptCount, 1);
assert.ok(done.createdAt instanceof Date && done.finishedAt instanceof Date);
report.trigger = done.output;

// with delay and tags: DELAYED until then
const delayed = await tasks.trigger("add", { a: 1, b: 1 }, { delay: "1h", tags: ["node", "delayed"] });
const d = await runs.retrieve(delayed.id);
assert.equal(d.status, "DELAYED");
assert.equal(d.isQueued, true);
assert.ok(d.delayedUntil > new Date(Date.now() + 3500 * 1000));
assert.deepEqual(d.tags, ["node", "delayed"]);

// idempotencyKey: the second trigger returns the first run
const first = await tasks.trigger("add", { a: 1, b: 2 }, { idempotencyKey: "node-key-1" });
const again = await tasks.trigger("add", { a: 7, b: 7 }, { idempotencyKey: "node-key-1" });
assert.equal(again.id, first.id);
assert.deepEqual((await finished(first.id)).output, { sum: 3 });

// tasks.batchTrigger (v4's two-phase batch), then batch.retrieve for the run ids
const b1 = await tasks.batchTrigger("add", [
  { payload: { a: 1, b: 1 } },
  { payload: { a: 2, b: 2 }, options: { tags: ["batch-item"] } },
]);
assert.match(b1.batchId, /^batch_/);
assert.equal(b1.runCount, 2);
const r1 = await batch.retrieve(b1.batchId);
assert.equal(r1.runCount, 2);
assert.equal(r1.runs.length, 2);
assert.equal(r1.status, "COMPLETED");
const outs = [];
for (const id of r1.runs) outs.push((await finished(id)).output);
assert.deepEqual(outs, [{ sum: 2 }, { sum: 4 }]);
assert.deepEqual((await runs.retrieve(r1.runs[1])).tags, ["batch-item"]);
assert.equal((await runs.retrieve(r1.runs[0])).batchId, b1.batchId);
report.batchTrigger = outs;

// batch.trigger across tasks
const b2 = await batch.trigger([
  { id: "add", payload: { a: 10, b: 5 } },
  { id: "http-echo", payload: { hello: "world", when: new Date("2025-01-02T03:04:05Z") } },
]);
const r2 = await batch.retrieve(b2.batchId);
assert.equal(r2.runs.length, 2);
assert.deepEqual((await finished(r2.runs[0])).output, { sum: 15 });
const echoed = await finished(r2.runs[1]);
assert.deepEqual(echoed.output, { hello: "world", when: "2025-01-02T03:04:05.000Z" });
report.batchTrigger2 = echoed.output;

// runs.list with filters and pagination (cursor pages, auto-paginated iteration)
const tag = `page-${Date.now()}`;
const listed = [];
for (let i = 0; i < 5; i++) listed.push((await tasks.trigger("add", { a: i, b: 0 }, { tags: [tag] })).id);
for (const id of listed) await finished(id);
const page1 = await runs.list({ tag, limit: 2 });
assert.equal(page1.data.length, 2);
assert.ok(page1.hasNextPage());
assert.equal(page1.hasPreviousPage(), false);
assert.deepEqual(page1.data.map((r) => r.id), [listed[4], listed[3]]); // newest first
assert.equal(page1.data[0].env.name, "dev");
const page2 = await page1.getNextPage();
assert.deepEqual(page2.data.map((r) => r.id), [listed[2], listed[1]]);
assert.ok(page2.hasPreviousPage());
const back = await page2.getPreviousPage();
assert.deepEqual(back.data.map((r) => r.id), [listed[4], listed[3]]);
const all = [];
for await (const run of runs.list({ tag, limit: 2 })) all.push(run.id);
assert.deepEqual(all, [...listed].reverse());
const completedAdds = await runs.list({ taskIdentifier: "add", status: ["COMPLETED"], limit: 100 });
assert.ok(completedAdds.data.length >= 5);
assert.ok(completedAdds.data.every((r) => r.status === "COMPLETED" && r.taskIdentifier === "add"));
const delayedOnly = await runs.list({ status: "DELAYED", period: "1d" });
assert.deepEqual(delayedOnly.data.map((r) => r.id), [delayed.id]);
report.list = all.length;

// runs.cancel
const canceled = await runs.cancel(delayed.id);
assert.equal(canceled.id, delayed.id);
const c = await runs.retrieve(delayed.id);
assert.equal(c.status, "CANCELED");
assert.equal(c.isCancelled, true);
assert.equal(c.isCompleted, true);
assert.equal(c.isFailed, true);

// runs.replay: a new run with the same payload
const replayed = await runs.replay(handle.id);
assert.notEqual(replayed.id, handle.id);
assert.deepEqual((await finished(replayed.id)).output, { sum: 5 });

// runs.reschedule a delayed run
const later = await tasks.trigger("add", { a: 4, b: 4 }, { delay: "2h" });
const moved = await runs.reschedule(later.id, { delay: "3h" });
assert.equal(moved.status, "DELAYED");
assert.ok(moved.delayedUntil > new Date(Date.now() + 2.5 * 3600 * 1000));
await runs.cancel(later.id);

// a payload over 128 KiB: uploaded first (PUT /api/v2/packets, then the signed URL)
const big = "x".repeat(200 * 1024);
const large = await tasks.trigger("http-echo", { big });
const largeDone = await finished(large.id);
assert.equal(largeDone.output.big.length, big.length);
report.largePayload = largeDone.output.big.length;

// a failing run
const failed = await finished((await tasks.trigger("validate-order", { items: [] })).id);
assert.equal(failed.status, "FAILED");
assert.equal(failed.isFailed, true);
assert.equal(failed.error.name, "AbortTaskRunError");
assert.match(failed.error.message, /needs items/);

// errors: unknown task, unknown run
await assert.rejects(tasks.trigger("no-such-task", {}), (err) => err.status === 404);
await assert.rejects(runs.retrieve("run_doesnotexist"), (err) => err.status === 404);

// a null payload and a null output come back as null, not undefined
const nulls = await finished((await tasks.trigger("http-echo", null)).id);
assert.equal(nulls.status, "COMPLETED");
assert.equal(nulls.payload, null);
assert.equal(nulls.output, null);
report.nulls = [nulls.payload, nulls.output];

// idempotencyKeys.reset: the next trigger with the key makes a new run
const k1 = await tasks.trigger("add", { a: 1, b: 1 }, { idempotencyKey: "node-reset-1" });
assert.equal((await tasks.trigger("add", { a: 1, b: 1 }, { idempotencyKey: "node-reset-1" })).id, k1.id);
const reset = await idempotencyKeys.reset("add", "node-reset-1", { scope: "global" });
assert.equal(typeof reset.id, "string");
const k2 = await tasks.trigger("add", { a: 1, b: 1 }, { idempotencyKey: "node-reset-1" });
assert.notEqual(k2.id, k1.id);
const created = await idempotencyKeys.create("node-reset-2", { scope: "global" });
const k3 = await tasks.trigger("add", { a: 2, b: 2 }, { idempotencyKey: created });
assert.equal((await tasks.trigger("add", { a: 2, b: 2 }, { idempotencyKey: created })).id, k3.id);
await idempotencyKeys.reset("add", created);
assert.notEqual((await tasks.trigger("add", { a: 2, b: 2 }, { idempotencyKey: created })).id, k3.id);
await assert.rejects(idempotencyKeys.reset("add", "never-used", { scope: "global" }), status(404));
report.idempotencyReset = true;

// queues: every id that list returns works in every call that takes one; so do names
const listedQueues = await queues.list({ perPage: 100 });
const limitedQueue = listedQueues.data.find((q) => q.type === "task" && q.name === "http-limited");
assert.equal(limitedQueue.id, "queue_task/http-limited");
for (const q of listedQueues.data) assert.equal((await queues.retrieve(q.id)).id, q.id);
const byName = { type: "task", name: "http-limited" };
assert.equal((await queues.retrieve(byName)).id, limitedQueue.id);
for (const ref of [limitedQueue.id, byName]) {
  assert.equal((await queues.pause(ref)).paused, true);
  assert.equal((await queues.retrieve(limitedQueue.id)).paused, true);
  assert.equal((await queues.resume(ref)).paused, false);
  assert.equal((await queues.overrideConcurrencyLimit(ref, 5)).concurrencyLimit, 5);
  const back = await queues.resetConcurrencyLimit(ref);
  assert.equal(back.concurrencyLimit, 2);
  assert.equal(back.concurrency.override, null);
}
report.queues = listedQueues.data.length;

// runs.list by queue (applied, not ignored), per project, and an unsupported filter
const qtag = `queue-${Date.now()}`;
const onLimited = await tasks.trigger("http-limited", {}, { tags: [qtag] });
const onAdd = await tasks.trigger("add", { a: 1, b: 1 }, { tags: [qtag] });
const byQueue = await runs.list({ tag: qtag, queue: byName });
assert.deepEqual(byQueue.data.map((r) => r.id), [onLimited.id]);
const addQueue = await runs.list({ tag: qtag, queue: [{ type: "task", name: "add" }] });
assert.deepEqual(addQueue.data.map((r) => r.id), [onAdd.id]);
const projectRuns = await runs.list("proj_trigger_do", { tag: qtag });
assert.deepEqual(projectRuns.data.map((r) => r.id), [onAdd.id, onLimited.id]);
await assert.rejects(async () => await runs.list({ version: "20250101.1" }), (err) =>
  err.status === 400 && /filter\[version\]/.test(err.message));
report.listByQueue = byQueue.data.length;

// public access tokens: the one a trigger returns reads that run and nothing else
const otherRun = await tasks.trigger("add", { a: 5, b: 5 });
const reader = client(handle.publicAccessToken);
assert.equal((await reader.runs.retrieve(handle.id)).id, handle.id);
await assert.rejects(reader.runs.retrieve(otherRun.id), status(403));
await assert.rejects(reader.runs.cancel(handle.id), status(403));
await assert.rejects(reader.tasks.trigger("add", { a: 1, b: 1 }), status(403));

// auth.createPublicToken: read runs by tag, list only with that tag
const ptag = `pub-${Date.now()}`;
const tagged = await tasks.trigger("add", { a: 1, b: 2 }, { tags: [ptag] });
const tagReader = client(await auth.createPublicToken({ scopes: { read: { tags: [ptag] } } }));
assert.equal((await tagReader.runs.retrieve(tagged.id)).id, tagged.id);
await assert.rejects(tagReader.runs.retrieve(otherRun.id), status(403));
assert.deepEqual((await tagReader.runs.list({ tag: ptag })).data.map((r) => r.id), [tagged.id]);
await assert.rejects(async () => await tagReader.runs.list(), status(403));
await assert.rejects(async () => await tagReader.runs.list({ tag: "not-mine" }), status(403));
const allReader = client(await auth.createPublicToken({ scopes: { read: { runs: true } } }));
assert.equal((await allReader.runs.retrieve(otherRun.id)).id, otherRun.id);
const expired = client(
  await auth.createPublicToken({
    scopes: { read: { runs: [tagged.id] } },
    expirationTime: new Date(Date.now() - 60_000),
  }),
);
await assert.rejects(expired.runs.retrieve(tagged.id), status(401));

// auth.createTriggerPublicToken: triggers that task once, no other
const once = client(await auth.createTriggerPublicToken("add"));
await assert.rejects(once.tasks.trigger("http-echo", { x: 1 }), status(403));
const viaToken = await once.tasks.trigger("add", { a: 20, b: 22 });
assert.deepEqual((await finished(viaToken.id)).output, { sum: 42 });
assert.equal((await client(viaToken.publicAccessToken).runs.retrieve(viaToken.id)).id, viaToken.id);
await assert.rejects(once.tasks.trigger("add", { a: 1, b: 1 }), status(401));
const many = client(await auth.createTriggerPublicToken("add", { multipleUse: true }));
await many.tasks.trigger("add", { a: 1, b: 1 });
await many.tasks.trigger("add", { a: 1, b: 1 });

// auth.createBatchTriggerPublicToken: batch-triggers that task; its token reads the batch
const batcher = client(await auth.createBatchTriggerPublicToken("add"));
const tokenBatch = await batcher.tasks.batchTrigger("add", [{ payload: { a: 1, b: 2 } }]);
const batchReader = client(tokenBatch.publicAccessToken);
assert.equal((await batchReader.batch.retrieve(tokenBatch.batchId)).runs.length, 1);
await assert.rejects(batchReader.batch.retrieve(b1.batchId), status(403));
report.publicTokens = true;

report.calls = [...called].sort();
console.log(JSON.stringify(report));
