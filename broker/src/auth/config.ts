import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { staticToken, type ResolvedOptions } from '../config/options.js';
import { Authenticator, type AuthConfig, type StaticToken } from './authenticator.js';

// The broker's options as an Authenticator: the key and token files are read here, once, at start.

/** The authentication part of the broker's options; key files already read. */
function authConfigOf(
  o: Pick<ResolvedOptions, 'jwtSecret' | 'jwksUrl' | 'jwtAlgorithms' | 'jwtAudience' | 'jwtIssuer' | 'jwtClockTolerance' | 'jwtPublish' | 'jwtSubscribe' | 'tokens'>,
  files: { jwtKeys?: string; tokens?: StaticToken[] } = {},
): AuthConfig {
  return {
    ...(o.jwtSecret !== undefined ? { jwtSecret: o.jwtSecret } : {}),
    ...(files.jwtKeys !== undefined ? { jwtKeys: files.jwtKeys } : {}),
    ...(o.jwksUrl !== undefined ? { jwksUrl: o.jwksUrl } : {}),
    ...(o.jwtAlgorithms !== undefined ? { jwtAlgorithms: o.jwtAlgorithms } : {}),
    ...(o.jwtAudience !== undefined ? { jwtAudience: o.jwtAudience } : {}),
    ...(o.jwtIssuer !== undefined ? { jwtIssuer: o.jwtIssuer } : {}),
    jwtClockTolerance: o.jwtClockTolerance,
    jwtPublish: o.jwtPublish,
    jwtSubscribe: o.jwtSubscribe,
    tokens: [...o.tokens, ...(files.tokens ?? [])],
  };
}

/** The authenticator of a broker's options. Throws an Error naming the option when a file is unusable. */
export function createAuthenticator(o: ResolvedOptions, readFile: (path: string) => string = (p) => readFileSync(p, 'utf8')): Authenticator {
  const read = (key: string, path: string): string => {
    try {
      return readFile(path);
    } catch (err) {
      throw new TypeError(`createBroker: ${key}: cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const files: { jwtKeys?: string; tokens?: StaticToken[] } = {};
  if (o.jwtKeyFile !== undefined) files.jwtKeys = read('jwtKeyFile', o.jwtKeyFile);
  if (o.tokensFile !== undefined) {
    let json: unknown;
    try {
      json = JSON.parse(read('tokensFile', o.tokensFile));
    } catch (err) {
      if (err instanceof TypeError) throw err;
      throw new TypeError(`createBroker: tokensFile: ${o.tokensFile} is not valid JSON`);
    }
    const parsed = z.array(staticToken).safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new TypeError(`createBroker: tokensFile: ${o.tokensFile}: entry ${issue.path.map(String).join('.')}: ${issue.message}`);
    }
    files.tokens = parsed.data;
  }
  try {
    return new Authenticator(authConfigOf(o, files));
  } catch (err) {
    throw new TypeError(`createBroker: ${err instanceof Error ? err.message : String(err)}`);
  }
}
