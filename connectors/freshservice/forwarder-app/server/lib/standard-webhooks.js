'use strict';

/**
 * Standard Webhooks signing (https://www.standardwebhooks.com) for the rollcall forwarder.
 *
 * Pure Node.js: only the built-in `crypto` module. Nothing here logs, and no error message
 * ever contains the secret.
 */

const crypto = require('crypto');

const SECRET_PREFIX = 'whsec_';
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Keys the Freshworks platform adds to an event payload for the app itself (its settings,
 * which hold the signing secret). They are not part of the Freshservice event. */
const PLATFORM_KEYS = ['iparams', 'app_settings'];

/**
 * The HMAC key of a `whsec_<base64>` secret (the prefix is optional).
 * @param {string} secret
 * @returns {Buffer}
 */
function signingKey(secret) {
  if (typeof secret !== 'string' || secret.trim() === '') {
    throw new Error('the signing secret is not configured');
  }
  const text = secret.trim();
  const encoded = text.startsWith(SECRET_PREFIX) ? text.slice(SECRET_PREFIX.length) : text;
  if (!BASE64.test(encoded) || encoded.length % 4 !== 0) {
    throw new Error('the signing secret must be whsec_ followed by base64');
  }
  const key = Buffer.from(encoded, 'base64');
  if (key.length === 0) {
    throw new Error('the signing secret is empty');
  }
  return key;
}

/**
 * The Standard Webhooks headers for one message.
 * @param {string} secret `whsec_...`
 * @param {string} id the message id (`webhook-id`)
 * @param {number} timestamp epoch seconds, an integer
 * @param {string} body the exact body that is sent
 * @returns {{'webhook-id': string, 'webhook-timestamp': string, 'webhook-signature': string}}
 */
function sign(secret, id, timestamp, body) {
  const key = signingKey(secret);
  if (typeof id !== 'string' || id === '') {
    throw new Error('the webhook id must be a non-empty string');
  }
  if (!Number.isSafeInteger(timestamp)) {
    throw new Error('the webhook timestamp must be whole epoch seconds');
  }
  if (typeof body !== 'string') {
    throw new Error('the body must be the exact string that is sent');
  }
  const signed = `${id}.${timestamp}.${body}`;
  const mac = crypto.createHmac('sha256', key).update(signed, 'utf8').digest('base64');
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': `v1,${mac}`,
  };
}

/**
 * A message id that is the same every time the same product event is forwarded (so rollcall
 * drops retries), derived from the account, the event, the user and the payload's timestamp.
 * @param {object} payload the product event payload
 * @returns {string} `msg_` followed by 32 hex digits
 */
function webhookId(payload) {
  const event = payload || {};
  const user = (event.data && event.data.user) || {};
  const parts = [event.account_id, event.event, user.id, event.timestamp].map((part) =>
    part === undefined || part === null ? '' : String(part)
  );
  const digest = crypto.createHash('sha256').update(JSON.stringify(parts), 'utf8').digest('hex');
  return `msg_${digest.slice(0, 32)}`;
}

/**
 * The body rollcall receives: the product event payload exactly as Freshworks passed it to
 * the handler, minus only the app's own settings that the platform adds to it.
 * @param {object} payload
 * @returns {string}
 */
function forwardedBody(payload) {
  const forwarded = {};
  for (const [key, value] of Object.entries(payload || {})) {
    if (!PLATFORM_KEYS.includes(key)) {
      forwarded[key] = value;
    }
  }
  return JSON.stringify(forwarded);
}

/**
 * The body and signed headers for one product event.
 * @param {string} secret `whsec_...`
 * @param {object} payload the product event payload
 * @param {number} nowSeconds the signing time, epoch seconds
 * @returns {{body: string, headers: object}}
 */
function signDelivery(secret, payload, nowSeconds) {
  const body = forwardedBody(payload);
  const headers = sign(secret, webhookId(payload), Math.floor(nowSeconds), body);
  return { body, headers };
}

module.exports = { sign, signDelivery, webhookId, forwardedBody };
