// A user's TypeScript, checked with `tsc --noEmit` against the installed packages' types
// (copied into the temporary project as check.ts; never run). Strict, with skipLibCheck off, so
// a declaration that needs a package the user does not have fails too.
import { createServer } from 'node:http';
import { createBroker, type Broker, type BrokerEvent, type BrokerOptions } from '@crier/broker';
import { connect, type CrierClient, type CrierEvent, type PublishAck } from '@crier/sdk-web';
import { decodeJson, encodeJson } from '@crier/sdk-web/text';
import { connect as connectFromNode } from '@crier/sdk-node';

const options: BrokerOptions = { server: createServer(), path: '/crier' };
const broker: Broker = await createBroker(options);
broker.subscribe('user.*', (event: BrokerEvent) => console.log(event.channel, event.offset));

const client: CrierClient = connect('ws://127.0.0.1:10102');
client.subscribe('user.>', (event: CrierEvent) => console.log(decodeJson(event.data)));
const ack: PublishAck = await client.publish('user.created', encodeJson({ id: 42 }));
console.log(ack.offset);
const fromNode: CrierClient = connectFromNode(broker.url);

// The types are real, not `any`:
// @ts-expect-error the port is a number
await createBroker({ port: 'ten' });
// @ts-expect-error publish takes bytes, not a string
await client.publish('user.created', 'text');

await Promise.all([client.quit(), fromNode.quit(), broker.close()]);
