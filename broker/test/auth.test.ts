// The authenticator, door-independent: each credential kind, and each way a credential is refused,
// with the exact message a client sees (never the token itself).
import { createHash, generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, type JWTPayload } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { AuthFailure, Authenticator, type AuthConfig } from '../src/auth/authenticator.js';
import { Principal } from '../src/auth/principal.js';

const SECRET = 'a-test-secret-of-at-least-32-bytes!!';
const base: AuthConfig = { jwtClockTolerance: 0, jwtPublish: [], jwtSubscribe: [], tokens: [] };
const now = (): number => Math.floor(Date.now() / 1000);

function hs256(payload: JWTPayload, secret = SECRET, alg = 'HS256'): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg }).sign(new TextEncoder().encode(secret));
}

async function refusal(auth: Authenticator, credential: string | undefined): Promise<{ message: string; expired: boolean }> {
  try {
    await auth.authenticate(credential);
  } catch (err) {
    expect(err).toBeInstanceOf(AuthFailure);
    const e = err as AuthFailure;
    expect(e.code).toBe('unauthorized');
    if (credential) expect(e.message).not.toContain(credential);
    return { message: e.message, expired: e.expired };
  }
  throw new Error('the credential was accepted');
}

describe('no credential configured', () => {
  it('everyone is the anonymous principal, with every grant', async () => {
    const auth = new Authenticator(base);
    expect(auth.enabled).toBe(false);
    expect(await auth.authenticate(undefined)).toBe(Principal.ANONYMOUS);
    expect(Principal.ANONYMOUS.publish.allows('any.thing')).toBe(true);
  });
});

describe('HS256 JWTs', () => {
  const auth = new Authenticator({ ...base, jwtSecret: SECRET, jwtSubscribe: ['user.{sub}.>', 'public.>'] });

  it('a valid token is its subject, with the configured templates filled in, and its expiry', async () => {
    const exp = now() + 60;
    const p = await auth.authenticate(await hs256({ sub: '42', exp }));
    expect(p.id).toBe('jwt:42');
    expect(p.expiresAt).toBe(exp * 1000);
    expect(p.subscribe.covers('user.42.*')).toBe(true);
    expect(p.subscribe.covers('user.*')).toBe(false);
    expect(p.subscribe.covers('public.news')).toBe(true);
    expect(p.publish.allows('user.42.x')).toBe(false);
    expect(p.admin).toBe(false);
  });

  it('a crier claim gives its own grants and admin', async () => {
    const p = await auth.authenticate(await hs256({ sub: 'ops', exp: now() + 60, crier: { publish: ['ops.{sub}.>'], subscribe: ['>'], admin: true } }));
    expect(p.publish.allows('ops.ops.deploy')).toBe(true);
    expect(p.subscribe.covers('>')).toBe(true);
    expect(p.admin).toBe(true);
  });

  it('refuses each bad token with its own message', async () => {
    expect(await refusal(auth, undefined)).toEqual({ message: 'a credential is required (hello tk, Authorization: Bearer, or the token query parameter)', expired: false });
    expect(await refusal(auth, await hs256({ sub: '42', exp: now() - 10 }))).toEqual({ message: 'token expired', expired: true });
    expect((await refusal(auth, await hs256({ sub: '42', exp: now() + 60, nbf: now() + 30 }))).message).toBe('token not yet valid (nbf)');
    expect((await refusal(auth, await hs256({ sub: '42' }))).message).toBe('token has no "exp" claim');
    expect((await refusal(auth, await hs256({ exp: now() + 60 }))).message).toBe('token has no "sub" claim');
    expect((await refusal(auth, await hs256({ sub: '42', exp: now() + 60 }, 'another-secret-of-at-least-32-bytes')))).toEqual({ message: 'bad token signature', expired: false });
    expect((await refusal(auth, await hs256({ sub: '42', exp: now() + 60 }, SECRET + SECRET, 'HS512'))).message).toBe('token algorithm not allowed (allowed: HS256)');
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: '42', exp: now() + 60 })).toString('base64url')}.`;
    expect((await refusal(auth, unsigned)).message).toBe('token algorithm not allowed (allowed: HS256)');
    expect((await refusal(auth, 'e30.e30.e30')).message).toBe('malformed token');
    expect((await refusal(auth, 'not a token')).message).toBe('unknown token');
  });
});

describe('public keys', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const sign = (payload: JWTPayload, alg: string, key: typeof rsa.privateKey, kid?: string): Promise<string> =>
    new SignJWT(payload).setProtectedHeader({ alg, ...(kid ? { kid } : {}) }).sign(key);

  it('RS256 with a PEM public key; an HS256 token made with that key as secret is refused', async () => {
    const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const auth = new Authenticator({ ...base, jwtKeys: pem, jwtAudience: 'crier', jwtIssuer: 'https://issuer.test' });
    const claims = { sub: 'svc', exp: now() + 60, aud: 'crier', iss: 'https://issuer.test' };
    expect((await auth.authenticate(await sign(claims, 'RS256', rsa.privateKey))).id).toBe('jwt:svc');
    expect((await refusal(auth, await hs256(claims, pem))).message).toBe('token algorithm not allowed (allowed: RS256)');
    expect((await refusal(auth, await sign({ ...claims, aud: 'other' }, 'RS256', rsa.privateKey))).message).toBe('token audience not accepted (aud)');
    expect((await refusal(auth, await sign({ ...claims, iss: 'other' }, 'RS256', rsa.privateKey))).message).toBe('token issuer not accepted (iss)');
  });

  it('ES256 from a JWKS file, by kid', async () => {
    const jwk = { ...(await exportJWK(ec.publicKey)), kid: 'k1', alg: 'ES256' };
    const auth = new Authenticator({ ...base, jwtKeys: JSON.stringify({ keys: [jwk] }) });
    expect((await auth.authenticate(await sign({ sub: 'e', exp: now() + 60 }, 'ES256', ec.privateKey, 'k1'))).id).toBe('jwt:e');
    expect((await refusal(auth, await sign({ sub: 'e', exp: now() + 60 }, 'ES256', ec.privateKey, 'k2'))).message).toBe('no key matches the token (kid)');
  });

  describe('a JWKS URL (jose remote key set), served by a local HTTP server', () => {
    let server: Server;
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('verifies with the fetched keys', async () => {
      const jwk = { ...(await exportJWK(ec.publicKey)), kid: 'remote', alg: 'ES256' };
      let fetches = 0;
      server = createServer((_req, res) => {
        fetches++;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ keys: [jwk] }));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      const auth = new Authenticator({ ...base, jwksUrl: `http://127.0.0.1:${port}/jwks.json` });
      const token = await sign({ sub: 'r', exp: now() + 60 }, 'ES256', ec.privateKey, 'remote');
      const [a, b] = await Promise.all([auth.authenticate(token), auth.authenticate(token)]);
      expect([a.id, b.id]).toEqual(['jwt:r', 'jwt:r']);
      expect(fetches).toBe(1); // one fetch serves parallel verifies
    });
  });
});

describe('static tokens', () => {
  const sha = (t: string): string => createHash('sha256').update(t).digest('hex');
  const auth = new Authenticator({
    ...base,
    tokens: [
      { id: 'billing', sha256: sha('billing-token-1'), publish: ['billing.>'] },
      { id: 'ops', sha256: sha('ops-token-1'), subscribe: ['>'], admin: true },
    ],
  });

  it('a service token is its entry, with its grants; an unknown one is refused', async () => {
    const billing = await auth.authenticate('billing-token-1');
    expect(billing.id).toBe('token:billing');
    expect(billing.publish.allows('billing.invoice.paid')).toBe(true);
    expect(billing.publish.allows('user.created')).toBe(false);
    expect(billing.subscribe.covers('billing.>')).toBe(false);
    expect(billing.expiresAt).toBeUndefined();
    const ops = await auth.authenticate('ops-token-1');
    expect(ops.admin).toBe(true);
    expect(ops.publish.allows('anything.at.all')).toBe(true); // an admin holds every grant (the dashboard publishes)
    expect((await refusal(auth, 'billing-token-2')).message).toBe('unknown token');
  });
});
