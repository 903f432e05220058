// The protocol package is pure and compiles without DOM or Node types; TextEncoder and
// TextDecoder exist in every runtime it targets (browsers, Node, Deno, Bun, workers).
declare class TextEncoder {
  encode(input?: string): Uint8Array<ArrayBuffer>;
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean });
  decode(input?: Uint8Array): string;
}
