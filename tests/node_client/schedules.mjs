// The official Trigger.dev client's schedules (@trigger.dev/sdk 4.x) against a trigger.do
// server: run by tests/schedules/test_node_client.py with TRIGGER_API_URL and
// TRIGGER_SECRET_KEY set, and SCHEDULED_RUN / SCHEDULE_ID: a run a schedule started.
// Every response is validated by the client's own zod schemas; assertions are ours.
import assert from "node:assert/strict";
import * as sdk from "@trigger.dev/sdk";

sdk.configure({ baseURL: process.env.TRIGGER_API_URL, accessToken: process.env.TRIGGER_SECRET_KEY });
const { schedules, runs } = sdk;
const report = { calls: [] };
const called = (name) => report.calls.push(name);

// timezones: sent without a key
called("schedules.timezones");
const { timezones } = await schedules.timezones();
assert.equal(timezones[0], "UTC");
assert.ok(timezones.includes("Europe/Paris"));
const noUtc = await schedules.timezones({ excludeUtc: true });
assert.ok(!noUtc.timezones.includes("UTC"));

// create (the same deduplicationKey again updates that schedule)
called("schedules.create");
const made = await schedules.create({
  task: "sched-report",
  cron: "0 9 * * 1-5",
  deduplicationKey: "node-user-1",
  externalId: "user-1",
  timezone: "Europe/Paris",
});
assert.match(made.id, /^sched_/);
assert.equal(made.type, "IMPERATIVE");
assert.equal(made.task, "sched-report");
assert.equal(made.active, true);
assert.equal(made.externalId, "user-1");
assert.equal(made.deduplicationKey, "node-user-1");
assert.deepEqual(made.generator, {
  type: "CRON",
  expression: "0 9 * * 1-5",
  description: "At 09:00 AM, Monday through Friday",
});
assert.equal(made.timezone, "Europe/Paris");
assert.ok(made.nextRun instanceof Date && made.nextRun > new Date());
assert.equal(made.environments.length, 1);
const again = await schedules.create({
  task: "sched-report",
  cron: "0 10 * * 1-5",
  deduplicationKey: "node-user-1",
  externalId: "user-1",
  timezone: "Europe/Paris",
});
assert.equal(again.id, made.id);
assert.equal(again.generator.expression, "0 10 * * 1-5");

// retrieve
called("schedules.retrieve");
const got = await schedules.retrieve(made.id);
assert.equal(got.id, made.id);
assert.equal(got.nextRun.getTime(), again.nextRun.getTime());

// list: pages of perPage, iterated by the client
called("schedules.list");
for (let i = 0; i < 3; i++) {
  await schedules.create({ task: "sched-report", cron: "0 0 * * *", deduplicationKey: `node-list-${i}` });
}
const page = await schedules.list({ perPage: 2 });
assert.equal(page.data.length, 2);
assert.ok(page.pagination.totalPages >= 2 && page.pagination.count >= 4);
const seen = [];
for await (const s of schedules.list({ perPage: 2 })) seen.push(s.id);
assert.equal(seen.length, page.pagination.count);
assert.equal(new Set(seen).size, seen.length);
const declarative = (await schedules.list({ perPage: 100 })).data.filter((s) => s.type === "DECLARATIVE");
assert.equal(declarative.length, 4);

// update, deactivate, activate
called("schedules.update");
const updated = await schedules.update(made.id, { task: "sched-report", cron: "30 8 * * *", timezone: "Asia/Tokyo" });
assert.equal(updated.generator.expression, "30 8 * * *");
assert.equal(updated.timezone, "Asia/Tokyo");
assert.equal(updated.externalId, undefined);
called("schedules.deactivate");
const off = await schedules.deactivate(made.id);
assert.equal(off.active, false);
assert.equal(off.nextRun, undefined);
called("schedules.activate");
const on = await schedules.activate(made.id);
assert.equal(on.active, true);
assert.ok(on.nextRun > new Date());

// errors: 422 for what cannot be, 404 for what is not
const status = (code, text) => (err) => err.status === code && (!text || err.message.includes(text));
await assert.rejects(
  schedules.create({ task: "sched-report", cron: "* * * * * *", deduplicationKey: "bad" }),
  status(422, "seconds are not supported"),
);
await assert.rejects(
  schedules.create({ task: "sched-report", cron: "0 0 * * *", deduplicationKey: "bad", timezone: "Nope/Zone" }),
  status(422, "unknown timezone"),
);
await assert.rejects(
  schedules.create({ task: "sched-plain", cron: "0 0 * * *", deduplicationKey: "bad" }),
  status(422, "not a scheduled task"),
);
await assert.rejects(
  schedules.update(declarative[0].id, { task: declarative[0].task, cron: "0 4 * * *" }),
  status(422, "Cannot update a declarative schedule"),
);

// del, then it is gone
called("schedules.del");
const gone = await schedules.del(made.id);
assert.equal(gone.id, made.id);
await assert.rejects(schedules.retrieve(made.id), status(404, "Schedule not found"));

// a run a schedule started carries it; runs.list filters by it
const run = await runs.retrieve(process.env.SCHEDULED_RUN);
assert.equal(run.schedule.id, process.env.SCHEDULE_ID);
assert.equal(run.schedule.generator.expression, "*/5 * * * *");
assert.equal(run.payload.scheduleId, process.env.SCHEDULE_ID);
assert.equal(run.payload.type, "IMPERATIVE");
const listed = [];
for await (const r of runs.list({ schedule: process.env.SCHEDULE_ID })) listed.push(r.id);
assert.deepEqual(listed, [process.env.SCHEDULED_RUN]);

report.ok = true;
console.log(JSON.stringify(report));
