// The official Trigger.dev client's wait tokens (@trigger.dev/sdk 4.x) against a trigger.do
// server, called as a backend would: run by tests/tokens/test_node_client.py with
// TRIGGER_API_URL and TRIGGER_SECRET_KEY set. Every response is validated by the client's
// own zod schemas; assertions are ours.
import assert from "node:assert/strict";
import * as sdk from "@trigger.dev/sdk";

sdk.configure({ baseURL: process.env.TRIGGER_API_URL, accessToken: process.env.TRIGGER_SECRET_KEY });
const { wait } = sdk;
const report = { calls: [] };
const called = (name) => report.calls.includes(name) || report.calls.push(name);
const status = (code) => (err) => err.status === code;

// createToken: an id, a callback URL, a public access token the client signs itself
called("wait.createToken");
const token = await wait.createToken({ timeout: "1h", tags: ["node", "approval:1"] });
assert.match(token.id, /^waitpoint_/);
assert.equal(token.isCached, false);
assert.match(token.url, new RegExp(`/api/v1/waitpoints/tokens/${token.id}/callback/[0-9a-f]{64}$`));
assert.ok(token.publicAccessToken);

// the same idempotency key: the same token, before and after it completes
const keyed = await wait.createToken({ idempotencyKey: "node-approve-1", idempotencyKeyTTL: "1h" });
const again = await wait.createToken({ idempotencyKey: "node-approve-1" });
assert.equal(again.id, keyed.id);
assert.equal(again.isCached, true);

// retrieveToken while it waits
called("wait.retrieveToken");
const waiting = await wait.retrieveToken(token.id);
assert.equal(waiting.status, "WAITING");
assert.deepEqual(waiting.tags, ["node", "approval:1"]);
assert.ok(waiting.timeoutAt instanceof Date);
assert.equal(waiting.output, undefined);

// completeToken, then its output; again: success, no change
called("wait.completeToken");
assert.deepEqual(await wait.completeToken(token, { approved: true, by: "node" }), { success: true });
assert.deepEqual(await wait.completeToken(token.id, { approved: false }), { success: true });
const done = await wait.retrieveToken(token);
assert.equal(done.status, "COMPLETED");
assert.deepEqual(done.output, { approved: true, by: "node" });
assert.equal(done.error, undefined);
assert.ok(done.completedAt instanceof Date);

await wait.completeToken(keyed, "yes");
const cached = await wait.createToken({ idempotencyKey: "node-approve-1" });
assert.equal(cached.id, keyed.id);
assert.equal(cached.isCached, true);
assert.equal((await wait.retrieveToken(keyed)).output, "yes");

// the callback URL, as a third party calls it: no key, the raw body is the output
const viaUrl = await wait.createToken({ tags: ["node"] });
const bad = await fetch(viaUrl.url.replace(/[0-9a-f]{4}$/, "zzzz"), { method: "POST", body: "{}" });
assert.equal(bad.status, 401);
const good = await fetch(viaUrl.url, { method: "POST", body: JSON.stringify({ from: "webhook" }) });
assert.equal(good.status, 200);
assert.deepEqual((await wait.retrieveToken(viaUrl)).output, { from: "webhook" });

// a public access token completes its own token (what a frontend does)
const pub = await wait.createToken({});
await sdk.auth.withAuth({ accessToken: pub.publicAccessToken }, async () => {
  await wait.completeToken(pub, { from: "browser" });
  await assert.rejects(wait.completeToken(keyed, 1), status(403));
});
assert.deepEqual((await wait.retrieveToken(pub)).output, { from: "browser" });

// a timeout: TIMED_OUT, and the client's own WaitpointTimeoutError
const short = await wait.createToken({ timeout: "1s", tags: ["short"] });
let timedOut;
for (let i = 0; i < 100; i++) {
  timedOut = await wait.retrieveToken(short);
  if (timedOut.status !== "WAITING") break;
  await new Promise((r) => setTimeout(r, 100));
}
assert.equal(timedOut.status, "TIMED_OUT");
assert.equal(timedOut.output, undefined);
assert.equal(timedOut.error.name, "WaitpointTimeoutError");
assert.match(timedOut.error.message, /^Waitpoint timed out at \d{4}-\d\d-\d\dT/);

// listTokens: filters, and every page by the client's own iteration
called("wait.listTokens");
const all = [];
for await (const t of wait.listTokens({ limit: 2 })) all.push(t.id);
assert.equal(all.length, 5);
assert.equal(new Set(all).size, 5);
assert.equal(all[0], short.id); // newest first
const page = await wait.listTokens({ limit: 2 });
assert.equal(page.data.length, 2);
assert.ok(page.hasNextPage());
const completed = [];
for await (const t of wait.listTokens({ status: "COMPLETED" })) completed.push(t.id);
assert.deepEqual(new Set(completed), new Set([token.id, keyed.id, viaUrl.id, pub.id]));
const timed = [];
for await (const t of wait.listTokens({ status: ["TIMED_OUT"], tags: "short" })) timed.push(t.id);
assert.deepEqual(timed, [short.id]);
const byKey = [];
for await (const t of wait.listTokens({ idempotencyKey: "node-approve-1", period: "1h" })) byKey.push(t);
assert.equal(byKey.length, 1);
assert.equal(byKey[0].idempotencyKey, "node-approve-1");
assert.ok(byKey[0].idempotencyKeyExpiresAt instanceof Date);
const since = [];
for await (const t of wait.listTokens({ from: new Date(Date.now() - 3600_000), to: new Date(Date.now() + 60_000) })) since.push(t.id);
assert.equal(since.length, 5);

// errors the client surfaces
await assert.rejects(wait.retrieveToken("waitpoint_nope"), status(404));
await assert.rejects(wait.completeToken("waitpoint_nope", 1), status(404));
await assert.rejects(wait.createToken({ timeout: "soon" }), status(422));

report.ok = true;
console.log(JSON.stringify(report));
