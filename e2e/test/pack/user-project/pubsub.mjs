// A user's script: subscribes and publishes through @crier/sdk-node, as installed from the
// tarballs. Usage: node pubsub.mjs <broker url>. Prints one JSON line: the ack and the event.
import { connect, decodeJson, encodeJson } from '@crier/sdk-node';

const client = connect(process.argv[2]);
let deliver;
const received = new Promise((resolve) => {
  deliver = resolve;
});
const subscription = client.subscribe('packed.*', (event) => {
  deliver({ channel: event.channel, offset: event.offset, data: decodeJson(event.data) });
});
await subscription.ready;
const ack = await client.publish('packed.hello', encodeJson({ from: 'sdk-node' }));
const event = await received;
await client.quit();
console.log(JSON.stringify({ ack: { offset: ack.offset }, event }));
