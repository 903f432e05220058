import { isUtf8 } from 'node:buffer';

const BASE64_PREFIX = Buffer.from('base64:');

/**
 * An event's data as text, the one convention of every text door (SSE, `GET /history`): valid
 * UTF-8 that does not start with `base64:` is the text itself; anything else is
 * `base64:<standard base64>`. So a value starting with `base64:` always means base64, and a
 * reader decodes the rest.
 */
export function dataAsText(data: Uint8Array): string {
  const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return isUtf8(bytes) && !startsWith(bytes, BASE64_PREFIX) ? bytes.toString('utf8') : `base64:${bytes.toString('base64')}`;
}

function startsWith(bytes: Buffer, prefix: Buffer): boolean {
  return bytes.length >= prefix.length && bytes.subarray(0, prefix.length).equals(prefix);
}
