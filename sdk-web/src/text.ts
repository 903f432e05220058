// The text helpers: encodeText and decodeText are exported by the core too; the whole module is the
// entry point `@crier/sdk-web/text` (with encodeJson and decodeJson, which the core leaves out).
const utf8Encoder = /* @__PURE__ */ new TextEncoder();
const utf8Decoder = /* @__PURE__ */ new TextDecoder();

/** UTF-8 bytes of a string, to publish text. */
export function encodeText(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

/** The string in UTF-8 bytes (invalid sequences become U+FFFD). */
export function decodeText(bytes: Uint8Array): string {
  return utf8Decoder.decode(bytes);
}

/** UTF-8 bytes of `JSON.stringify(value)`. Throws a `TypeError` for values JSON cannot hold. */
export function encodeJson(value: unknown): Uint8Array {
  const json = JSON.stringify(value) as string | undefined;
  if (json === undefined) throw new TypeError('encodeJson: no JSON form');
  return encodeText(json);
}

/** `JSON.parse` of UTF-8 bytes, typed as `T` (unchecked: validate untrusted data yourself). */
export function decodeJson<T = unknown>(bytes: Uint8Array): T {
  return JSON.parse(decodeText(bytes)) as T;
}
