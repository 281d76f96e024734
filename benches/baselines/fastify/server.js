'use strict';
// A hand-written Zendesk webhook receiver, the "no storage" baseline of
// `cargo xtask bench ingest --compare`: HMAC verify, parse, map to rollcall's unified user
// shape, encode the event as a sink would receive it, answer 202. Nothing is stored.
//
// Environment: BASELINE_SECRET (the Zendesk signing secret, required), BASELINE_LISTEN_HOST
// (default 127.0.0.1), BASELINE_PORT (default 0: the workers share one random port),
// BASELINE_WORKERS (default 2).
//
// The primary prints `fastify-baseline: listening on http://HOST:PORT` once every worker
// listens. On SIGTERM it asks each worker how many events it mapped, prints
// `fastify-baseline: mapped N events` and exits, so the bench can check its ledger.

const cluster = require('node:cluster');
const crypto = require('node:crypto');

const SECRET = process.env.BASELINE_SECRET;
const HOST = process.env.BASELINE_LISTEN_HOST || '127.0.0.1';
const PORT = Number(process.env.BASELINE_PORT || 0);
const WORKERS = Number(process.env.BASELINE_WORKERS || 2);
// Zendesk's replay window, as rollcall applies it: five minutes either side.
const TOLERANCE_MS = 300 * 1000;

if (!SECRET) {
  console.error('fastify-baseline: BASELINE_SECRET is required');
  process.exit(2);
}

if (cluster.isPrimary) {
  runPrimary();
} else {
  runWorker();
}

function runPrimary() {
  let listening = 0;
  let mapped = 0;
  let reported = 0;
  cluster.on('listening', (_worker, address) => {
    listening += 1;
    if (listening === WORKERS) {
      console.error(`fastify-baseline: listening on http://${HOST}:${address.port}`);
    }
  });
  cluster.on('message', (_worker, message) => {
    if (message && typeof message.mapped === 'number') {
      mapped += message.mapped;
      reported += 1;
    }
  });
  cluster.on('exit', () => {
    if (Object.keys(cluster.workers).length === 0) {
      console.error(`fastify-baseline: mapped ${mapped} events (${reported} of ${WORKERS} workers reported)`);
      process.exit(reported === WORKERS ? 0 : 1);
    }
  });
  process.on('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers)) {
      worker.send('stop');
    }
  });
  for (let i = 0; i < WORKERS; i += 1) {
    cluster.fork();
  }
}

function runWorker() {
  const fastify = require('fastify');
  const app = fastify({ logger: false });
  let mapped = 0;

  // The signature covers the raw bytes, so the body is taken as a buffer and parsed here.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.post('/hooks/:source', async (request, reply) => {
    const receivedAt = new Date();
    const body = request.body;
    if (!Buffer.isBuffer(body)) {
      return reply.code(400).send({ error: 'empty body' });
    }
    const verdict = verify(request.headers, body, receivedAt);
    if (verdict) {
      return reply.code(401).send({ error: verdict });
    }
    let payload;
    try {
      payload = JSON.parse(body);
    } catch {
      return reply.code(400).send({ error: 'not JSON' });
    }
    const event = mapEvent(request.params.source, payload, receivedAt);
    if (typeof event === 'string') {
      return reply.code(422).send({ error: event });
    }
    // Encoded as a sink would receive it, then dropped: this baseline stores nothing.
    JSON.stringify(event);
    mapped += 1;
    return reply.code(202).send({ accepted: 1, event_ids: [event.id] });
  });

  process.on('message', (message) => {
    if (message === 'stop') {
      app.close().then(() => {
        process.send({ mapped }, () => process.exit(0));
      });
    }
  });
  // The primary decides when the worker stops.
  process.on('SIGTERM', () => {});

  app.listen({ host: HOST, port: PORT }).catch((error) => {
    console.error(`fastify-baseline: ${error.message}`);
    process.exit(1);
  });
}

// `null` when the delivery is genuine and fresh, else why not.
function verify(headers, body, receivedAt) {
  const signature = headers['x-zendesk-webhook-signature'];
  const timestamp = headers['x-zendesk-webhook-signature-timestamp'];
  if (!signature || !timestamp) {
    return 'signature_missing';
  }
  const expected = crypto.createHmac('sha256', SECRET).update(timestamp).update(body).digest();
  const given = Buffer.from(signature, 'base64');
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
    return 'signature_invalid';
  }
  const signedAt = Date.parse(timestamp);
  if (Number.isNaN(signedAt) || Math.abs(receivedAt.getTime() - signedAt) > TOLERANCE_MS) {
    return 'timestamp_outside_window';
  }
  return null;
}

// Zendesk ids come as strings or numbers; "0" and "" mean none.
function zendeskId(value) {
  if (typeof value === 'number' && Number.isInteger(value)) {
    value = String(value);
  }
  if (typeof value !== 'string') {
    return undefined;
  }
  const id = value.trim();
  return id === '' || id === '0' ? undefined : id;
}

// Empty or blank strings mean "not set".
function text(value) {
  return typeof value === 'string' && value.trim() !== '' ? value : undefined;
}

// RFC 3339 time, re-encoded; undefined when absent or unreadable.
function time(value) {
  const parsed = typeof value === 'string' && value.trim() !== '' ? Date.parse(value) : NaN;
  // Whole seconds as Zendesk and rollcall write them, milliseconds when there are some.
  return Number.isNaN(parsed) ? undefined : new Date(parsed).toISOString().replace('.000Z', 'Z');
}

// The unified event of a webhook envelope, or a string saying why there is none.
function mapEvent(source, payload, receivedAt) {
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
    return 'body is not an object';
  }
  const type = typeof payload.type === 'string' ? payload.type.trim() : '';
  const match = /^zen:event-type[:/](user\..+)$/.exec(type);
  if (!match) {
    return `unsupported event type ${type}`;
  }
  const detail = payload.detail;
  if (detail === null || typeof detail !== 'object' || Array.isArray(detail)) {
    return 'missing user detail';
  }
  const subject = text(payload.subject);
  const fromSubject = subject && subject.startsWith('zen:user:') ? zendeskId(subject.slice(9)) : undefined;
  const userId = zendeskId(detail.id) || fromSubject;
  if (!userId) {
    return 'missing user id';
  }
  const user = userFromDetail(userId, detail);
  let eventType = 'user.updated';
  if (match[1] === 'user.created') {
    eventType = 'user.created';
  } else if (match[1] === 'user.deleted') {
    eventType = 'user.deleted';
    user.status = 'deleted';
  }
  const vendorEvent = { id: zendeskId(payload.id), type, occurred_at: time(payload.time) };
  return {
    id: crypto.randomUUID(),
    source,
    connector: 'zendesk',
    type: eventType,
    received_at: receivedAt.toISOString(),
    partial: true,
    vendor_event: vendorEvent,
    user,
  };
}

// The unified user for a webhook's `detail`, field by field as rollcall's Zendesk mapping.
function userFromDetail(id, detail) {
  const user = { id };
  const name = text(detail.name);
  if (name) user.name = name;
  const email = text(detail.email);
  if (email) user.emails = [{ email, is_primary: true }];
  const phone = text(detail.phone);
  if (phone) user.phones = [{ number: phone }];
  if (detail.active === false) user.status = 'deleted';
  else if (detail.suspended === true) user.status = 'inactive';
  else if (detail.active === true || detail.suspended === false) user.status = 'active';
  const role = text(detail.role);
  const customRole = zendeskId(detail.custom_role_id);
  if (role || customRole) user.roles = [{ id: customRole, name: role }];
  const organization = zendeskId(detail.organization_id);
  if (organization) user.organizations = [{ id: organization }];
  const group = zendeskId(detail.default_group_id);
  if (group) user.groups = [{ id: group }];
  const avatar = detail.photo && text(detail.photo.content_url);
  if (avatar) user.avatar = avatar;
  const timezone = text(detail.iana_time_zone) || text(detail.time_zone);
  if (timezone) user.timezone = timezone;
  const locale = text(detail.locale);
  if (locale) user.languages = [locale];
  const createdAt = time(detail.created_at);
  if (createdAt) user.created_at = createdAt;
  const updatedAt = time(detail.updated_at);
  if (updatedAt) user.updated_at = updatedAt;
  const url = text(detail.url);
  if (url) user.urls = [{ url, type: 'api' }];
  user.remote_data = detail;
  return user;
}
