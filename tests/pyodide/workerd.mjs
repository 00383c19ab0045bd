// Stand-ins for the Cloudflare Workers runtime (workerd) that a Python Worker's bindings are
// made of, as JS classes with workerd's own class names, so that the real Python Workers SDK
// (`workers-runtime-sdk`, which wraps every binding and converts every value that crosses) sees
// exactly what it sees in production. Read from workerd @6552d99 (2026-08-22):
//   src/workerd/api/queue.h        WorkerQueue, QueueController, QueueMessage
//   src/workerd/api/sql.h, .c++    SqlStorage, Cursor, RawIterator; bindings are
//                                  `Maybe<OneOf<Array<byte>, String, double>>` (a number is
//                                  always bound as a double; a boolean is coerced to a string),
//                                  every INTEGER comes back as a JS number, a BLOB as ArrayBuffer
//   src/workerd/api/actor-state.h  DurableObjectStorage (sql, transactionSync, alarms),
//                                  DurableObjectState (acceptWebSocket, getWebSockets, ...)
//   src/workerd/api/actor.h        DurableObjectNamespace, DurableObjectId, DurableObject (stub)
//   src/workerd/api/r2-bucket.h    R2Bucket, HeadResult (R2Object), GetResult (R2ObjectBody)
//   src/workerd/api/web-socket.h   WebSocketPair, WebSocket (hibernation attachments)
//   src/pyodide/python-entrypoint-helper.ts
//                                  how the runtime builds Python entrypoint classes and calls
//                                  their methods (see `Entrypoint` below)
// SQL runs on real SQLite (sql.js, SQLite compiled to wasm); limits from
// https://developers.cloudflare.com/durable-objects/platform/limits/ and
// https://developers.cloudflare.com/queues/platform/limits/.
import initSqlJs from "sql.js/dist/sql-wasm-debug.js";

const SQL = await initSqlJs();
// workerd binds every JS number with sqlite3_bind_double (util/sqlite.c++ Query::bind); sql.js
// would bind integral ones as integers, which hides integer-vs-real differences (JSON functions,
// division, typeof). Its unminified build keeps the method name to override.
const bindDouble = SQL.cwrap("sqlite3_bind_double", "number", ["number", "number", "number"]);
{
  const probe = new SQL.Database();
  const proto = Object.getPrototypeOf(probe.prepare("SELECT 1"));
  proto.bindNumber = function bindNumber(num, pos) {
    if (pos == null) {
      pos = this.pos;
      this.pos += 1;
    }
    this.db.handleError(bindDouble(this.stmt, pos, num));
    return true;
  };
  probe.close();
}

// --- time ------------------------------------------------------------------------------------

export const clock = {
  offsetMs: 0,
  nowMs() {
    return Date.now() + this.offsetMs;
  },
  advance(seconds) {
    this.offsetMs += seconds * 1000;
  },
};

// --- ctx.storage.sql ------------------------------------------------------------------------

const LIMITS = { variables: 100, valueBytes: 2_000_000, statementBytes: 100_000 };
const TRANSACTION_ERROR =
  "To execute a transaction, please use the state.storage.transaction() or " +
  "state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT " +
  "statements. The JavaScript API is safer because it will automatically roll back on " +
  "exceptions, and because it interacts correctly with Durable Objects' automatic atomic " +
  "write coalescing.";
const TRANSACTION_STATEMENT = /^\s*(BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\b/i;
const encoder = new TextEncoder();

function sqlError(message) {
  return new Error(`${message}: SQLITE_ERROR`);
}

// A binding as workerd's `BindingValue` takes it: null/undefined, ArrayBuffer(View) bytes,
// a string (anything else that is not a number is coerced to one, as JSG does for kj::String),
// or a number (bound as a double).
function binding(value) {
  if (value === null || value === undefined) return null;
  if (typeof value === "number") return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  const text = String(value);
  if (encoder.encode(text).length > LIMITS.valueBytes) throw new Error("string or blob too big: SQLITE_TOOBIG");
  return text;
}

function resultValue(value) {
  if (typeof value === "bigint") {
    const n = Number(value);
    if (!Number.isSafeInteger(n)) {
      // workerd coerces int64 to double (sql.c++ rowIteratorNext): precision is lost past 2**53
      return n;
    }
    return n;
  }
  if (value instanceof Uint8Array) return value.slice().buffer; // wrapBytes: an ArrayBuffer
  return value; // number (REAL), string, null
}

export class RawIterator {
  #rows;
  #i = 0;
  constructor(rows) {
    this.#rows = rows;
  }
  next() {
    return this.#i < this.#rows.length ? { done: false, value: this.#rows[this.#i++] } : { done: true, value: undefined };
  }
  [Symbol.iterator]() {
    return this;
  }
}

export class Cursor {
  #columns;
  #rows;
  #i = 0;
  #read;
  #written;
  constructor(columns, rows, read, written) {
    this.#columns = columns;
    this.#rows = rows;
    this.#read = read;
    this.#written = written;
  }
  get columnNames() {
    return [...this.#columns];
  }
  get rowsRead() {
    return this.#read;
  }
  get rowsWritten() {
    return this.#written;
  }
  #object(row) {
    return Object.fromEntries(this.#columns.map((c, i) => [c, row[i]]));
  }
  next() {
    return this.#i < this.#rows.length
      ? { done: false, value: this.#object(this.#rows[this.#i++]) }
      : { done: true, value: undefined };
  }
  toArray() {
    const out = this.#rows.slice(this.#i).map((r) => this.#object(r));
    this.#i = this.#rows.length;
    return out;
  }
  one() {
    const rest = this.#rows.slice(this.#i);
    if (rest.length !== 1) {
      throw new Error(`Expected exactly one result from SQL query, but got ${rest.length ? "more than one row" : "no results"}.`);
    }
    this.#i = this.#rows.length;
    return this.#object(rest[0]);
  }
  raw() {
    const rest = this.#rows.slice(this.#i);
    this.#i = this.#rows.length;
    return new RawIterator(rest.map((r) => [...r]));
  }
  [Symbol.iterator]() {
    return this;
  }
}

export class SqlStorage {
  #db;
  constructor(db) {
    this.#db = db;
    this.statements = 0; // for the tests' inspection
  }
  exec(query, ...bindings) {
    query = String(query);
    if (encoder.encode(query).length > LIMITS.statementBytes) throw sqlError("statement too long");
    if (bindings.length > LIMITS.variables) throw sqlError("too many SQL variables");
    if (TRANSACTION_STATEMENT.test(query)) throw new Error(TRANSACTION_ERROR);
    if (/\b_cf_/i.test(query)) throw new Error("access to _cf_ tables is not allowed: SQLITE_AUTH");
    const params = bindings.map(binding);
    const before = this.#db.getRowsModified();
    let stmt;
    try {
      stmt = this.#db.prepare(query);
    } catch (e) {
      throw sqlError(String(e.message ?? e));
    }
    const rows = [];
    let columns = [];
    try {
      if (params.length) stmt.bind(params);
      columns = stmt.getColumnNames();
      while (stmt.step()) rows.push(stmt.get(null, { useBigInt: true }).map(resultValue));
    } catch (e) {
      throw sqlError(String(e.message ?? e));
    } finally {
      stmt.free();
    }
    this.statements += 1;
    const written = columns.length ? 0 : this.#db.getRowsModified();
    void before;
    return new Cursor(columns, rows, Math.max(rows.length, columns.length ? 1 : 0), written);
  }
  get databaseSize() {
    const [[pages]] = this.#db.exec("PRAGMA page_count")[0].values;
    const [[size]] = this.#db.exec("PRAGMA page_size")[0].values;
    return pages * size;
  }
  // internal (the storage's transactions)
  _run(text) {
    this.#db.run(text);
  }
}

// --- ctx.storage: transactionSync and alarms -------------------------------------------------

export class DurableObjectStorage {
  #sql;
  #depth = 0;
  constructor(db) {
    this.#sql = new SqlStorage(db);
    this.alarmMs = null;
    this.transactions = 0;
  }
  get sql() {
    return this.#sql;
  }
  transactionSync(callback) {
    const name = `tx${this.#depth}`;
    this.#sql._run(this.#depth === 0 ? "BEGIN" : `SAVEPOINT ${name}`);
    this.#depth += 1;
    let result;
    try {
      result = callback();
    } catch (e) {
      this.#depth -= 1;
      this.#sql._run(this.#depth === 0 ? "ROLLBACK" : `ROLLBACK TO ${name}`);
      throw e;
    }
    this.#depth -= 1;
    this.#sql._run(this.#depth === 0 ? "COMMIT" : `RELEASE ${name}`);
    this.transactions += 1;
    return result;
  }
  async getAlarm() {
    return this.alarmMs;
  }
  async setAlarm(scheduledTime) {
    const ms = scheduledTime instanceof Date ? scheduledTime.getTime() : scheduledTime;
    if (typeof ms !== "number" || Number.isNaN(ms)) throw new TypeError("setAlarm() takes a Date or epoch milliseconds");
    this.alarmMs = ms;
  }
  async deleteAlarm() {
    this.alarmMs = null;
  }
}

// --- WebSockets and the Hibernation API ----------------------------------------------------

const ATTACHMENT_LIMIT = 16_384;
const CLOSE_CODES = new Set([1000, 1001, 1002, 1003]);
for (let c = 1007; c < 1015; c++) CLOSE_CODES.add(c);

export class WebSocket {
  constructor(role) {
    this.role = role;
    this.peer = null;
    this.accepted = false;
    this.hub = null; // the object's socket hub once accepted with the Hibernation API
    this.closed = null; // [code, reason] this end sent or received
    this.received = []; // messages that arrived at this end (the test reads the client's)
    this._attachment = null;
  }
  accept() {
    if (this.accepted) throw new TypeError("WebSocket already accepted");
    this.accepted = true;
  }
  send(message) {
    if (this.role === "server" && !this.accepted) throw new TypeError("You must call accept() on this WebSocket before sending");
    if (this.closed) throw new TypeError("Can't call WebSocket send() after close().");
    if (typeof message !== "string" && !(message instanceof ArrayBuffer) && !ArrayBuffer.isView(message)) {
      throw new TypeError("WebSocket send() takes a string or an ArrayBuffer");
    }
    this.peer.received.push(message);
    if (this.peer.hub) this.peer.hub.events.push(["message", this.peer, message]);
  }
  close(code = 1000, reason = "") {
    if (!(CLOSE_CODES.has(code) || (code >= 3000 && code <= 4999))) throw new TypeError(`Invalid WebSocket close code: ${code}.`);
    if (encoder.encode(String(reason)).length > 123) throw new TypeError("the close reason is longer than 123 bytes");
    if (this.closed) return;
    this.closed = [code, String(reason)];
    if (!this.peer.closed) {
      this.peer.closed = [code, String(reason)];
      if (this.peer.hub) this.peer.hub.events.push(["close", this.peer, code, String(reason)]);
    }
  }
  serializeAttachment(value) {
    const text = JSON.stringify(structuredClone(value));
    if (encoder.encode(text).length > ATTACHMENT_LIMIT) throw new Error(`serializeAttachment: over ${ATTACHMENT_LIMIT} bytes`);
    this._attachment = text;
  }
  deserializeAttachment() {
    return this._attachment === null ? null : JSON.parse(this._attachment);
  }
}

export class WebSocketPair {
  constructor() {
    const client = new WebSocket("client");
    const server = new WebSocket("server");
    client.peer = server;
    server.peer = client;
    this[0] = client;
    this[1] = server;
  }
}

export function newDatabase() {
  return new SQL.Database();
}

export function newSocketHub() {
  return new SocketHub();
}

class SocketHub {
  constructor() {
    this.sockets = []; // [ws, tags]
    this.events = []; // client messages and closes not yet delivered to the object
  }
  live(tag) {
    return this.sockets.filter(([ws, tags]) => !ws.closed && (tag == null || tags.includes(tag))).map(([ws]) => ws);
  }
}

export class DurableObjectState {
  #hub;
  constructor(id, storage, hub) {
    this.id = id;
    this.storage = storage;
    this.#hub = hub;
  }
  waitUntil(promise) {
    pending.push(promise);
  }
  acceptWebSocket(ws, tags = []) {
    if (!(ws instanceof WebSocket) || ws.role !== "server") throw new TypeError("acceptWebSocket() takes the server end of a WebSocketPair");
    if (ws.accepted) throw new TypeError("this WebSocket was already accepted");
    if (!Array.isArray(tags)) throw new TypeError("acceptWebSocket(): tags must be an array of strings");
    if (tags.length > 10 || tags.some((t) => typeof t !== "string" || t.length > 256)) {
      throw new TypeError("acceptWebSocket(): at most 10 tags of at most 256 characters");
    }
    ws.accepted = true;
    ws.hub = this.#hub;
    this.#hub.sockets.push([ws, [...tags]]);
  }
  getWebSockets(tag) {
    return this.#hub.live(tag);
  }
  getTags(ws) {
    const found = this.#hub.sockets.find(([s]) => s === ws);
    if (!found) throw new TypeError("getTags() of a WebSocket this object did not accept");
    return [...found[1]];
  }
}

// --- the runtime's entrypoint machinery ------------------------------------------------------
// python-entrypoint-helper.ts: an entrypoint class is built by calling the Python class with the
// JS (ctx, env); `fetch` and every RPC method (and `queue`, `scheduled`) go through
// introspection.py's `wrapper_func` (python_from_rpc on each argument, python_to_rpc on the
// result); a Durable Object's `alarm` and `webSocket*` handlers are called directly with the
// raw JS arguments. `dispatch` is the Python side of that (tests/pyodide/sdk_cloud.py).

export const pending = []; // promises handed to waitUntil; the driver settles them per event

export class ExecutionContext {
  get [Symbol.toStringTag]() {
    return "ExecutionContext";
  }
  waitUntil(promise) {
    pending.push(promise);
  }
  passThroughOnException() {}
}

export async function settle() {
  while (pending.length) {
    const batch = pending.splice(0);
    await Promise.allSettled(batch);
  }
}

export class Entrypoint {
  // A WorkerEntrypoint (Default): a new Python instance per event, as workerd makes one.
  constructor(pyClass, env, dispatch) {
    this.pyClass = pyClass;
    this.env = env;
    this.dispatch = dispatch;
  }
  instance() {
    return this.pyClass(new ExecutionContext(), this.env);
  }
  async call(method, ...args) {
    const inst = this.instance();
    try {
      return await this.dispatch(method === "fetch", inst, method, ...args);
    } finally {
      inst.destroy?.();
    }
  }
}

// --- Durable Object namespaces and stubs ----------------------------------------------------

const RPC_LIMIT = 32 * 1024 * 1024;

export class DurableObjectId {
  #hex;
  #name;
  constructor(namespace, name) {
    this.#name = name;
    let h = 0n;
    for (const c of `${namespace}:${name}`) h = (h * 131n + BigInt(c.codePointAt(0))) % (1n << 128n);
    this.#hex = h.toString(16).padStart(32, "0") + "00".repeat(16);
  }
  get name() {
    return this.#name;
  }
  toString() {
    return this.#hex;
  }
  equals(other) {
    return other instanceof DurableObjectId && other.toString() === this.#hex;
  }
}

function rpcClone(value) {
  const cloned = structuredClone(value); // functions and PyProxies throw DataCloneError
  if (typeof cloned === "string" && cloned.length > RPC_LIMIT) throw new RangeError("RPC message too large");
  return cloned;
}

export class DurableObject {
  // The stub `namespace.get(id)` returns: `fetch`, and any other property is an RPC method.
  constructor(namespace, id) {
    this.id = id;
    this.name = id.name;
    this.fetch = async (request) =>
      namespace.event(id, (o) => o.dispatch(true, o.instance, "fetch", request));
    return new Proxy(this, {
      get(obj, prop, receiver) {
        if (typeof prop !== "string" || prop in obj || prop === "then") return Reflect.get(obj, prop, receiver);
        return async (...args) => {
          const cloned = args.map(rpcClone);
          namespace.rpcLog.push([prop, cloned]);
          return rpcClone(await namespace.event(id, (o) => o.dispatch(false, o.instance, prop, ...cloned)));
        };
      },
    });
  }
}

export class DurableObjectNamespace {
  constructor(name, pyClass, env, dispatch) {
    this.bindingName = name;
    this.pyClass = pyClass;
    this.env = env;
    this.dispatch = dispatch;
    this.objects = new Map(); // id hex -> {id, db, storage, hub, instance, running}
    this.calls = 0;
    this.rpcLog = [];
    this.evictBetweenEvents = false; // hibernation at its most eager
    this.cpuMicros = 0; // CPU spent in this namespace's objects (they run elsewhere on Workers)
  }
  idFromName(name) {
    return new DurableObjectId(this.bindingName, String(name));
  }
  get(id) {
    return new DurableObject(this, id);
  }
  getByName(name) {
    return this.get(this.idFromName(name));
  }
  record(id) {
    let rec = this.objects.get(id.toString());
    if (!rec) {
      const db = new SQL.Database();
      rec = { id, db, storage: new DurableObjectStorage(db), hub: new SocketHub(), instance: null, running: 0 };
      this.objects.set(id.toString(), rec);
    }
    if (!rec.instance) {
      rec.instance = this.pyClass(new DurableObjectState(id, rec.storage, rec.hub), this.env);
    }
    return rec;
  }
  async event(id, fn) {
    const started = process.cpuUsage();
    const rec = this.record(id);
    rec.running += 1;
    this.calls += 1;
    try {
      return await fn({ instance: rec.instance, dispatch: this.dispatch });
    } finally {
      const used = process.cpuUsage(started);
      this.cpuMicros += used.user + used.system;
      rec.running -= 1;
      if (this.evictBetweenEvents && !rec.running) this.evict(rec);
    }
  }
  evict(rec) {
    rec.instance?.destroy?.();
    rec.instance = null;
  }
  liveInstances() {
    return [...this.objects.values()].filter((rec) => rec.instance).length;
  }
  evictAll() {
    for (const rec of this.objects.values()) this.evict(rec);
  }
  async fireAlarms() {
    let fired = 0;
    for (const rec of [...this.objects.values()]) {
      if (rec.storage.alarmMs !== null && rec.storage.alarmMs <= clock.nowMs()) {
        rec.storage.alarmMs = null;
        await this.event(rec.id, (o) => o.instance.alarm.callRelaxed({ retryCount: 0, isRetry: false }));
        fired += 1;
      }
    }
    return fired;
  }
  async deliverSocketEvents() {
    let delivered = 0;
    for (const rec of [...this.objects.values()]) {
      const events = rec.hub.events.splice(0);
      for (const [kind, ws, ...rest] of events) {
        await this.event(rec.id, (o) =>
          kind === "close"
            ? o.instance.webSocketClose.callRelaxed(ws, rest[0], rest[1], true)
            : o.instance.webSocketMessage.callRelaxed(ws, rest[0]),
        );
        delivered += 1;
      }
    }
    return delivered;
  }
  tableRows(table) {
    // for the tests: how many rows `table` holds in each object
    return [...this.objects.values()].map((rec) => rec.db.exec(`SELECT count(*) FROM ${table}`)[0].values[0][0]);
  }
}

// --- Queues ---------------------------------------------------------------------------------

const MAX_MESSAGE_BYTES = 128_000;
const MAX_BATCH_MESSAGES = 100;
const MAX_BATCH_BYTES = 256_000;
const MAX_DELAY_SECONDS = 43_200;
const CONTENT_TYPES = new Set(["json", "text", "bytes", "v8"]);
let messageIds = 0;

function delayOf(options, fallback = 0) {
  const delay = options?.delaySeconds ?? fallback;
  if (typeof delay !== "number") throw new TypeError("delaySeconds must be a number");
  if (delay < 0 || delay > MAX_DELAY_SECONDS) throw new RangeError(`delaySeconds must be between 0 and ${MAX_DELAY_SECONDS}`);
  return delay;
}

function encodeBody(body, contentType = "v8") {
  if (!CONTENT_TYPES.has(contentType)) throw new TypeError(`Unknown contentType ${contentType}`);
  let stored;
  let size;
  if (contentType === "json") {
    stored = JSON.stringify(body); // undefined members vanish, as with the real JSON encoding
    size = encoder.encode(stored).length;
  } else if (contentType === "text") {
    if (typeof body !== "string") throw new TypeError("contentType text takes a string");
    stored = body;
    size = encoder.encode(body).length;
  } else {
    stored = structuredClone(body);
    size = encoder.encode(JSON.stringify(body) ?? "").length;
  }
  if (size > MAX_MESSAGE_BYTES) throw new Error(`Queue send failed: message length of ${size} bytes exceeds limit of ${MAX_MESSAGE_BYTES}`);
  return { contentType, stored, size };
}

function decodeBody({ contentType, stored }) {
  return contentType === "json" ? JSON.parse(stored) : structuredClone(stored);
}

export class WorkerQueue {
  constructor(service, name) {
    this.service = service;
    this.name = name;
    this.messages = [];
    this.sendCalls = 0;
  }
  store(encoded, delay) {
    const now = clock.nowMs();
    this.messages.push({ id: `msg-${++messageIds}`, encoded, enqueuedMs: now, visibleAt: now + delay * 1000, attempts: 0 });
  }
  async send(body, options) {
    const encoded = encodeBody(body, options?.contentType);
    this.sendCalls += 1;
    this.store(encoded, delayOf(options));
  }
  async sendBatch(messages, options) {
    if (!Array.isArray(messages)) throw new TypeError("sendBatch() takes an array");
    if (messages.length > MAX_BATCH_MESSAGES) throw new RangeError(`sendBatch takes at most ${MAX_BATCH_MESSAGES} messages`);
    const fallback = delayOf(options);
    const items = messages.map((m) => [encodeBody(m.body, m.contentType), delayOf(m, fallback)]);
    const total = items.reduce((n, [e]) => n + e.size, 0);
    if (total > MAX_BATCH_BYTES) throw new RangeError(`sendBatch: ${total} bytes exceeds ${MAX_BATCH_BYTES}`);
    this.sendCalls += 1;
    for (const [encoded, delay] of items) this.store(encoded, delay);
  }
  visible() {
    const now = clock.nowMs();
    return this.messages.filter((m) => m.visibleAt <= now);
  }
}

export class QueueMessage {
  #stored;
  constructor(stored) {
    this.#stored = stored;
    this.outcome = null;
  }
  get id() {
    return this.#stored.id;
  }
  get timestamp() {
    return new Date(this.#stored.enqueuedMs);
  }
  get body() {
    return decodeBody(this.#stored.encoded);
  }
  get attempts() {
    return this.#stored.attempts;
  }
  ack() {
    this.outcome = ["ack", 0];
  }
  retry(options) {
    this.outcome = ["retry", delayOf(options)];
  }
}

export class QueueController {
  #queue;
  #messages;
  constructor(queue, messages) {
    this.#queue = queue;
    this.#messages = messages;
  }
  get queue() {
    return this.#queue;
  }
  get messages() {
    return [...this.#messages];
  }
  ackAll() {
    for (const m of this.#messages) m.ack();
  }
  retryAll(options) {
    for (const m of this.#messages) m.retry(options);
  }
}

export class Queues {
  constructor() {
    this.queues = new Map();
    this.consumers = new Map();
    this.deliveries = 0;
  }
  queue(name) {
    if (!this.queues.has(name)) this.queues.set(name, new WorkerQueue(this, name));
    return this.queues.get(name);
  }
  consume(name, config) {
    this.queue(name);
    this.consumers.set(name, { maxBatchSize: 100, maxRetries: 3, deadLetterQueue: null, retryDelay: 0, ...config });
    if (config.deadLetterQueue) this.queue(config.deadLetterQueue);
  }
  // One batch of queue `name`'s visible messages to `handler(batch)`; a message neither acked
  // nor retried is acked when the handler returns and retried when it throws; after
  // maxRetries retries it goes to the dead-letter queue. Returns how many were delivered.
  async deliver(name, handler) {
    const queue = this.queues.get(name);
    const config = this.consumers.get(name);
    const picked = queue.visible().slice(0, config.maxBatchSize);
    if (!picked.length) return 0;
    for (const s of picked) {
      s.attempts += 1;
      s.visibleAt = Infinity;
    }
    const messages = picked.map((s) => new QueueMessage(s));
    let threw = false;
    try {
      await handler(new QueueController(name, messages));
    } catch (e) {
      threw = true;
      this.lastError = e;
    }
    await settle();
    this.deliveries += 1;
    const now = clock.nowMs();
    messages.forEach((m, i) => {
      const stored = picked[i];
      const [kind, delay] = m.outcome ?? (threw ? ["retry", config.retryDelay] : ["ack", 0]);
      if (kind === "ack") {
        queue.messages.splice(queue.messages.indexOf(stored), 1);
      } else if (stored.attempts > config.maxRetries) {
        queue.messages.splice(queue.messages.indexOf(stored), 1);
        if (config.deadLetterQueue) this.queue(config.deadLetterQueue).store(stored.encoded, 0);
      } else {
        stored.visibleAt = now + delay * 1000;
      }
    });
    return messages.length;
  }
  pending() {
    return Object.fromEntries([...this.queues].map(([name, q]) => [name, q.messages.length]));
  }
  nextVisibleMs() {
    let next = Infinity;
    for (const q of this.queues.values()) for (const m of q.messages) next = Math.min(next, m.visibleAt);
    return next;
  }
}

// --- R2 -------------------------------------------------------------------------------------

export class HeadResult {
  constructor(key, size, httpMetadata) {
    this.key = key;
    this.size = size;
    this.httpMetadata = httpMetadata;
    this.uploaded = new Date(clock.nowMs());
  }
}

export class GetResult extends HeadResult {
  #data;
  constructor(key, data, httpMetadata) {
    super(key, data.byteLength, httpMetadata);
    this.#data = data;
  }
  async arrayBuffer() {
    return this.#data.slice().buffer;
  }
  async bytes() {
    return this.#data.slice();
  }
  async text() {
    return new TextDecoder().decode(this.#data);
  }
  async json() {
    return JSON.parse(await this.text());
  }
}

export class R2Bucket {
  constructor() {
    this.objects = new Map();
  }
  async put(key, value, options) {
    key = String(key);
    if (encoder.encode(key).length > 1024) throw new Error("R2 keys are at most 1024 bytes");
    let data;
    if (value instanceof ArrayBuffer) data = new Uint8Array(value.slice(0));
    else if (ArrayBuffer.isView(value)) data = new Uint8Array(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength));
    else if (typeof value === "string") data = encoder.encode(value);
    else if (value === null) data = new Uint8Array();
    else throw new TypeError("put(): the value must be a ReadableStream, ArrayBuffer(View), string, Blob or null");
    const meta = { ...(options?.httpMetadata ?? {}) };
    this.objects.set(key, { data, meta });
    return new HeadResult(key, data.byteLength, meta);
  }
  async get(key) {
    const found = this.objects.get(String(key));
    return found ? new GetResult(String(key), found.data, found.meta) : null;
  }
  async head(key) {
    const found = this.objects.get(String(key));
    return found ? new HeadResult(String(key), found.data.byteLength, found.meta) : null;
  }
  async delete(keys) {
    for (const key of Array.isArray(keys) ? keys : [keys]) this.objects.delete(String(key));
  }
}

// --- Response with a WebSocket (status 101) --------------------------------------------------
// workerd's Response takes `{status: 101, webSocket}`; Node's refuses a status under 200.

const NodeResponse = globalThis.Response;
const UPGRADE = Symbol("upgrade");
export class Response extends NodeResponse {
  constructor(body, init = {}) {
    if (init && init.status === 101) {
      if (!(init.webSocket instanceof WebSocket)) throw new RangeError("Responses may only be constructed with status 101 if they have a webSocket");
      super(null, { ...init, status: 200 });
      this[UPGRADE] = init.webSocket;
    } else {
      super(body, init);
    }
  }
  get status() {
    return this[UPGRADE] ? 101 : super.status;
  }
  get webSocket() {
    return this[UPGRADE] ?? null;
  }
}

export class ScheduledController {
  constructor(cron) {
    this.cron = cron;
    this.scheduledTime = clock.nowMs();
  }
  noRetry() {}
}

// --- the modules the runtime registers for the SDK --------------------------------------------

export const cloudflareWorkers = { env: {}, waitUntil: (p) => void pending.push(p) };

export const entrypointHelper = {
  cloudflareWorkersModule: cloudflareWorkers,
  cloudflareSocketsModule: {},
  patchWaitUntil(_ctx) {},
  async doAnImport(name) {
    if (name === "cloudflare:workers") return cloudflareWorkers;
    throw new Error(`Cannot import ${name} here`);
  },
};

export function install(globals = globalThis) {
  globals.WebSocketPair = WebSocketPair;
  globals.Response = Response;
}

// `_cloudflare_compat_flags` (the runtime registers its COMPATIBILITY_FLAGS object): the Python
// flags the SDK reads, as the repository's wrangler.toml (2026-11-01, ["python_workers"]) sets
// them in workerd 1.20261117 (compatibility-date.capnp): preserve_commas by its enable date
// (2026-02-17), implicit_dependencies implied by python_workers after 2026-02-25. That this
// config selects Pyodide 314.0.6, the harness's version, is tests/cloudflare/test_cf_wrangler.py.
export const compatibilityFlags = {
  python_workers: true,
  python_workers_314: true,
  python_request_headers_preserve_commas: true,
  python_workflows_implicit_dependencies: true,
};
