// The official Trigger.dev client (@trigger.dev/sdk 4.x) against a trigger.do server.
// Run by tests/http/test_node_client.py with TRIGGER_API_URL and TRIGGER_SECRET_KEY set.
// Every response is validated by the client's own zod schemas; assertions are ours.
import assert from "node:assert/strict";
import { batch, configure, runs, tasks } from "@trigger.dev/sdk";

configure({ baseURL: process.env.TRIGGER_API_URL, accessToken: process.env.TRIGGER_SECRET_KEY });

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

console.log(JSON.stringify(report));
