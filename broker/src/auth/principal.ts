import { expandGrant, matchPattern, patternCovers, type GrantClaims } from '@crier/protocol';

// Who is on the other end of a connection, an SSE stream or an HTTP publish, and what it may do.

/** Patterns a principal may publish to, or subscribe to. */
export class Grants {
  /** Everything (`>`): the one check on the publish path is a boolean. */
  static readonly ALL = new Grants(['>']);
  static readonly NONE = new Grants([]);

  private readonly all: boolean;

  constructor(readonly patterns: readonly string[]) {
    this.all = patterns.includes('>');
  }

  /** Grant templates with `{sub}` filled; a template that cannot be filled safely is dropped. */
  static fromTemplates(templates: readonly string[], claims: GrantClaims): Grants {
    const patterns: string[] = [];
    for (const t of templates) {
      const grant = expandGrant(t, claims);
      if (grant !== undefined) patterns.push(grant);
    }
    return new Grants(patterns);
  }

  /** A publish to `channel` is allowed when a grant matches it. */
  allows(channel: string): boolean {
    if (this.all) return true;
    for (const p of this.patterns) if (matchPattern(p, channel)) return true;
    return false;
  }

  /** A subscription to `pattern` is allowed when one grant covers all of it. */
  covers(pattern: string): boolean {
    if (this.all) return true;
    for (const p of this.patterns) if (patternCovers(p, pattern)) return true;
    return false;
  }
}

export type PrincipalKind = 'anonymous' | 'jwt' | 'token';

export class Principal {
  readonly publish: Grants;
  readonly subscribe: Grants;
  /**
   * Channels and patterns whose subscribers' principal ids it may see (presence members, and the
   * id in a join/leave notice), on top of the subscribe grant that asking needs at all. None unless
   * the credential says so (a token's `presence`, a JWT's `crier.presence`): who is here is more
   * than how many. An admin sees every one.
   */
  readonly presence: Grants;

  constructor(
    /** `anonymous`, `jwt:<sub>` or `token:<id>`: what logs and takeover rules know it by. */
    readonly id: string,
    readonly kind: PrincipalKind,
    publish: Grants,
    subscribe: Grants,
    /**
     * May read `/stats` and `/stats/top`, and, through the dashboard's live tail and publish form,
     * every channel: an admin holds every grant whatever else it was given.
     */
    readonly admin: boolean,
    /** When its credential expires, ms since the Unix epoch (`undefined`: never). */
    readonly expiresAt: number | undefined,
    presence: Grants = Grants.NONE,
  ) {
    this.publish = admin ? Grants.ALL : publish;
    this.subscribe = admin ? Grants.ALL : subscribe;
    this.presence = admin ? Grants.ALL : presence;
  }

  /** Anyone, with every grant: a broker with no credential configured, on loopback. */
  static readonly ANONYMOUS = new Principal('anonymous', 'anonymous', Grants.ALL, Grants.ALL, true, undefined);
  /** Anyone from elsewhere, let in by `allowAnonymous`: every grant, but not the admin's. */
  static readonly ANONYMOUS_REMOTE = new Principal('anonymous', 'anonymous', Grants.ALL, Grants.ALL, false, undefined);

  /** Whether this principal and `other` are the same identity (never true for anonymous ones). */
  sameAs(other: Principal): boolean {
    return this.kind !== 'anonymous' && this.kind === other.kind && this.id === other.id;
  }
}
