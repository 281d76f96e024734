/**
 * rollcall forwarder: POSTs every Freshservice user event, signed, to a rollcall source.
 *
 * The body is the event payload exactly as Freshworks passed it to the handler (without the
 * app's own installation parameters, which the platform adds and which hold the secret).
 * Logs name the event and its webhook-id, never the payload (personal data) or the secret.
 */

const { signDelivery } = require('./lib/standard-webhooks');

async function forwardToRollcall(payload) {
  const event = payload && payload.event;
  const iparams = (payload && payload.iparams) || {};
  let delivery;
  try {
    delivery = signDelivery(iparams.signing_secret, payload, Math.floor(Date.now() / 1000));
  } catch (error) {
    // signDelivery's messages never contain the secret.
    console.error(`rollcall forwarder: cannot sign ${event}: ${error.message}`);
    throw new Error(`cannot sign ${event}: ${error.message}`);
  }
  const id = delivery.headers['webhook-id'];
  try {
    const response = await $request.invokeTemplate('forwardToRollcall', {
      context: {
        webhook_id: delivery.headers['webhook-id'],
        webhook_timestamp: delivery.headers['webhook-timestamp'],
        webhook_signature: delivery.headers['webhook-signature'],
      },
      body: delivery.body,
    });
    console.info(`rollcall forwarder: ${event} ${id} delivered, HTTP ${response && response.status}`);
  } catch (error) {
    const status = error && error.status;
    console.error(`rollcall forwarder: ${event} ${id} not delivered, HTTP ${status}`);
    throw new Error(`rollcall did not accept ${event} ${id} (HTTP ${status})`);
  }
}

exports = {
  onUserCreateHandler: forwardToRollcall,
  onUserUpdateHandler: forwardToRollcall,
  onUserDeleteHandler: forwardToRollcall,
};
