import { createHash, createPublicKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, type JWK, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { CrierError, ErrorCode } from '@crier/protocol';
import { Grants, Principal } from './principal.js';

// The one place a credential becomes a principal, for every door: a socket's hello (and its
// in-band refresh), an SSE stream, an HTTP publish, the admin endpoints.

/** A static token of the configuration: a service's credential, stored as its SHA-256. */
export interface StaticToken {
  /** The principal's name in logs and takeover rules: `token:<id>`. */
  id: string;
  /** Hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`): the token itself is never stored. */
  sha256: string;
  /** Patterns it may publish to. @default [] */
  publish?: string[];
  /** Patterns it may subscribe to (each subscription must be covered by one). @default [] */
  subscribe?: string[];
  /** May read /stats and the dashboard's data. @default false */
  admin?: boolean;
  /** Patterns whose subscribers' principal ids it may see (presence members). @default [] */
  presence?: string[];
}

/** Credentials the broker accepts. None configured: every client is anonymous, with every grant. */
export interface AuthConfig {
  /** HS256 shared secret for JWTs. */
  jwtSecret?: string;
  /** Public keys for JWTs, as file contents: one PEM public key, or a JWKS (JSON). */
  jwtKeys?: string;
  /** A JWKS URL, fetched (and cached) by jose's remote key set. */
  jwksUrl?: string;
  /** Algorithms accepted (default: HS256 with a secret; the key's own with a PEM key; RS256 and ES256 with a JWKS). */
  jwtAlgorithms?: string[];
  jwtAudience?: string;
  jwtIssuer?: string;
  /** Leeway for `exp`, `nbf` and `iat`, in ms. */
  jwtClockTolerance: number;
  /** Grant templates of a JWT without a `crier` claim (`user.{sub}.>`). */
  jwtPublish: string[];
  jwtSubscribe: string[];
  tokens: StaticToken[];
}

/** A refused credential: `unauthorized`, and whether it was only expired (4007) or bad (4008). */
export class AuthFailure extends CrierError {
  constructor(
    message: string,
    readonly expired = false,
  ) {
    super(ErrorCode.unauthorized, message);
  }
}

/** The `crier` claim of a JWT: its grants, templates allowed. */
interface CrierClaim {
  publish?: unknown;
  subscribe?: unknown;
  admin?: unknown;
  presence?: unknown;
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

export class Authenticator {
  /** Whether any credential is configured (otherwise everyone is {@link Principal.ANONYMOUS}). */
  readonly enabled: boolean;
  private readonly key: Uint8Array | KeyObject | JWTVerifyGetKey | undefined;
  private readonly algorithms: string[];
  private readonly tokens: { token: StaticToken; hash: Buffer; principal: Principal }[];

  constructor(private readonly config: AuthConfig) {
    const sources = [config.jwtSecret, config.jwtKeys, config.jwksUrl].filter((s) => s !== undefined);
    if (sources.length > 1) throw new Error('configure one JWT key source: jwtSecret, jwtKeyFile or jwksUrl');
    let defaults: string[] = [];
    if (config.jwtSecret !== undefined) {
      this.key = new TextEncoder().encode(config.jwtSecret);
      defaults = ['HS256'];
    } else if (config.jwtKeys !== undefined) {
      const text = config.jwtKeys.trim();
      if (text.startsWith('{')) {
        this.key = createLocalJWKSet(JSON.parse(text) as { keys: JWK[] });
        defaults = ['RS256', 'ES256'];
      } else {
        const key = createPublicKey(text);
        this.key = key;
        defaults = key.asymmetricKeyType === 'rsa' ? ['RS256'] : key.asymmetricKeyType === 'ec' ? ['ES256'] : ['EdDSA'];
      }
    } else if (config.jwksUrl !== undefined) {
      this.key = createRemoteJWKSet(new URL(config.jwksUrl));
      defaults = ['RS256', 'ES256'];
    }
    this.algorithms = config.jwtAlgorithms ?? defaults;
    this.tokens = config.tokens.map((token) => ({
      token,
      hash: Buffer.from(token.sha256, 'hex'),
      principal: new Principal(`token:${token.id}`, 'token', new Grants(token.publish ?? []), new Grants(token.subscribe ?? []), token.admin === true, undefined, new Grants(token.presence ?? [])),
    }));
    this.enabled = this.key !== undefined || this.tokens.length > 0;
  }

  /**
   * The principal of `credential`. Throws an {@link AuthFailure} saying what is wrong (missing,
   * unknown, malformed, bad signature, refused algorithm, expired, not yet valid), never echoing it.
   */
  async authenticate(credential: string | undefined): Promise<Principal> {
    if (!this.enabled) return Principal.ANONYMOUS;
    if (credential === undefined || credential === '') {
      throw new AuthFailure('a credential is required (hello tk, Authorization: Bearer, or the token query parameter)');
    }
    const byToken = this.staticToken(credential);
    if (byToken) return byToken;
    if (this.key === undefined || !JWT_SHAPE.test(credential)) throw new AuthFailure('unknown token');
    return this.verifyJwt(credential);
  }

  /** Compares the credential's hash with every configured one, each in constant time. */
  private staticToken(credential: string): Principal | undefined {
    if (this.tokens.length === 0) return undefined;
    const hash = createHash('sha256').update(credential).digest();
    let found: Principal | undefined;
    for (const t of this.tokens) if (timingSafeEqual(hash, t.hash)) found = t.principal;
    return found;
  }

  private async verifyJwt(jwt: string): Promise<Principal> {
    let payload: JWTPayload;
    try {
      const options = {
        algorithms: this.algorithms,
        requiredClaims: ['exp', 'sub'],
        clockTolerance: Math.round(this.config.jwtClockTolerance / 1000),
        ...(this.config.jwtAudience !== undefined ? { audience: this.config.jwtAudience } : {}),
        ...(this.config.jwtIssuer !== undefined ? { issuer: this.config.jwtIssuer } : {}),
      };
      const key = this.key!;
      payload = (typeof key === 'function' ? await jwtVerify(jwt, key, options) : await jwtVerify(jwt, key, options)).payload;
    } catch (err) {
      throw describeJwtFailure(err, this.algorithms);
    }
    const sub = payload.sub!;
    const claim = (payload as { crier?: CrierClaim }).crier;
    const list = (v: unknown, fallback: string[]): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : fallback);
    const publish = Grants.fromTemplates(list(claim?.publish, this.config.jwtPublish), { sub });
    const subscribe = Grants.fromTemplates(list(claim?.subscribe, this.config.jwtSubscribe), { sub });
    // Presence members only by the token's own claim: no configured default widens who sees whom.
    const presence = Grants.fromTemplates(list(claim?.presence, []), { sub });
    return new Principal(`jwt:${sub}`, 'jwt', publish, subscribe, claim?.admin === true, payload.exp! * 1000, presence);
  }
}

/** A jose failure as what the client is told. Any other failure (a TypeError, say) is a refusal too. */
function describeJwtFailure(err: unknown, algorithms: string[]): AuthFailure {
  const code = (err as { code?: unknown }).code;
  const claim = (err as { claim?: unknown }).claim;
  const reason = (err as { reason?: unknown }).reason;
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return new AuthFailure('token expired', true);
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (reason === 'missing') return new AuthFailure(`token has no "${String(claim)}" claim`);
      if (claim === 'nbf') return new AuthFailure('token not yet valid (nbf)');
      if (claim === 'iat') return new AuthFailure('token issued in the future (iat)');
      if (claim === 'aud') return new AuthFailure('token audience not accepted (aud)');
      if (claim === 'iss') return new AuthFailure('token issuer not accepted (iss)');
      return new AuthFailure(`token claim "${String(claim)}" refused`);
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return new AuthFailure('bad token signature');
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return new AuthFailure(`token algorithm not allowed (allowed: ${algorithms.join(', ')})`);
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return new AuthFailure('no key matches the token (kid)');
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JOSE_GENERIC':
      return new AuthFailure('the key set could not be fetched: try again later');
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
    case 'ERR_JWT_CLAIM_INVALID':
      return new AuthFailure('malformed token');
    default:
      return new AuthFailure('token refused');
  }
}
