// The official Trigger.dev client's bulk actions (`runs.bulk.*`, @trigger.dev/sdk 4.x) against
// a trigger.do server. Run by tests/http/test_node_bulk.py with TRIGGER_API_URL and
// TRIGGER_SECRET_KEY set. Every response is validated by the client's own zod schemas
// (BulkActionObject, CreateBulkActionResponseBody, ...); the assertions are ours. The last
// line printed is a JSON report.
import assert from "node:assert/strict";
import { batch, configure, runs, tasks } from "@trigger.dev/sdk";

configure({ baseURL: process.env.TRIGGER_API_URL, accessToken: process.env.TRIGGER_SECRET_KEY });

const status = (code, pattern) => (err) =>
  err.status === code && (!pattern || pattern.test(err.message));
const report = {};
const tag = `bulk-node-${Date.now()}`;

// 250 runs an hour away: nothing starts them before the bulk cancel
const made = await tasks.batchTrigger(
  "add",
  Array.from({ length: 250 }, (_, i) => ({ payload: { a: i, b: 1 }, options: { delay: "1h", tags: [tag] } })),
);
const ids = (await batch.retrieve(made.batchId)).runs;
assert.equal(ids.length, 250);

// runs.bulk.cancel by filter, then runs.bulk.poll until it is no longer PENDING
const cancel = await runs.bulk.cancel({ filter: { tag, status: ["DELAYED"] }, name: "node cancel" });
assert.match(cancel.id, /^bulk_/);
const canceled = await runs.bulk.poll(cancel.id, { pollIntervalMs: 200 });
assert.equal(canceled.type, "CANCEL");
assert.equal(canceled.status, "COMPLETED");
assert.equal(canceled.name, "node cancel");
assert.deepEqual(canceled.counts, { total: 250, success: 250, failure: 0 });
assert.ok(canceled.createdAt instanceof Date && canceled.completedAt instanceof Date);
for (const id of [ids[0], ids[249]]) assert.equal((await runs.retrieve(id)).status, "CANCELED");
report.cancel = canceled.counts;

// runs.bulk.replay by ids (one of them unknown: a failure, counted)
const replay = await runs.bulk.replay({ runIds: [...ids.slice(0, 10), "run_doesnotexist"] });
const replayed = await runs.bulk.poll(replay.id, { pollIntervalMs: 200 });
assert.equal(replayed.type, "REPLAY");
assert.deepEqual(replayed.counts, { total: 11, success: 10, failure: 1 });
report.replay = replayed.counts;

// runs.bulk.retrieve, runs.bulk.list (auto-paginating one at a time)
assert.deepEqual((await runs.bulk.retrieve(cancel.id)).counts, canceled.counts);
const listed = [];
for await (const action of runs.bulk.list({ limit: 1 })) {
  listed.push(action.id);
  if (listed.includes(cancel.id) && listed.includes(replay.id)) break;
}
assert.deepEqual(listed.slice(0, 2), [replay.id, cancel.id]);
report.listed = listed.length;

// a filter with a Date (sent as an ISO string): both ended runs and the replays are selected
const dated = await runs.bulk.cancel({ filter: { tag, from: new Date(Date.now() - 3600_000) } });
const datedDone = await runs.bulk.poll(dated.id, { pollIntervalMs: 200 });
assert.equal(datedDone.counts.total, 260);
assert.equal(datedDone.counts.success + datedDone.counts.failure, 260);
assert.ok(datedDone.counts.failure >= 250, "the runs canceled before cannot be canceled again");

// runs.list({ bulkAction }): the runs an action marked (a replay's: the runs it made)
const byAction = (await runs.list({ bulkAction: replay.id, limit: 100 })).data;
assert.equal(byAction.length, 10);
assert.ok(byAction.every((r) => !ids.includes(r.id) && r.taskIdentifier === "add"));
const byCancel = (await runs.list({ bulkAction: cancel.id, limit: 100 })).data;
assert.ok(byCancel.length === 100 && byCancel.every((r) => ids.includes(r.id)));
report.listByBulkAction = byAction.length;

// errors: abort of an ended action, unknown action, bad requests (4xx: never retried)
await assert.rejects(runs.bulk.abort(cancel.id), status(400, /already COMPLETED/));
await assert.rejects(runs.bulk.retrieve("bulk_doesnotexist"), status(404));
await assert.rejects(
  runs.bulk.cancel({ filter: { queue: { type: "task", name: "add" } } }),
  status(422, /not supported/),
);
await assert.rejects(runs.bulk.replay({ runIds: [] }), status(422, /non-empty array/));
await assert.rejects(runs.bulk.cancel({ filter: { status: "NOPE" } }), status(422, /unknown status/));
report.errors = "ok";

console.log(JSON.stringify(report));
