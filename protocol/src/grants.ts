import { channelProblem } from './channel.js';

// Grants: which channels a principal may publish to or subscribe to, as crier patterns. A grant
// allows a publish when it matches the channel (`matchPattern`), and a subscription only when it
// covers the whole pattern: every channel the pattern can match, the grant matches too.

/**
 * Whether every channel that `pattern` matches is also matched by `grant` (both valid patterns or
 * names). `user.42.>` covers `user.42.*` and `user.42.x.y`, but not `user.*` or `user.>`, which
 * match channels of other users too. Linear in the lengths of both.
 */
export function patternCovers(grant: string, pattern: string): boolean {
  const g = grant.split('.');
  const p = pattern.split('.');
  for (let i = 0; i < g.length; i++) {
    const gs = g[i]!;
    // `>` takes one or more trailing segments: the pattern must still have at least one here.
    if (gs === '>') return i < p.length;
    const ps = p[i];
    // The pattern ended, or takes any number of segments where the grant wants exactly these.
    if (ps === undefined || ps === '>') return false;
    // `*` takes any one segment (a name, or the pattern's own `*`); a name takes only itself.
    if (gs !== '*' && gs !== ps) return false;
  }
  return g.length === p.length;
}

/** What a grant template may be filled with: claims of the principal's token. */
export interface GrantClaims {
  /** The token's subject (`sub`). */
  sub?: string;
}

const PLACEHOLDER = /\{([a-z]+)\}/g;

/**
 * A grant template with its placeholders filled: `user.{sub}.>` with `sub` 42 is `user.42.>`.
 * Returns `undefined` (the grant is dropped, never widened) when a placeholder is unknown or its
 * value is not exactly one plain segment: a `sub` of `*`, `>`, `a.b` or `` would otherwise grant
 * channels of other principals. Throws nothing.
 */
export function expandGrant(template: string, claims: GrantClaims): string | undefined {
  let failed = false;
  const grant = template.replace(PLACEHOLDER, (_, name: string) => {
    const value = name === 'sub' ? claims.sub : undefined;
    if (value === undefined || value === '' || value.includes('.') || channelProblem(value, false) !== undefined) {
      failed = true;
      return '';
    }
    return value;
  });
  if (failed || channelProblem(grant, true) !== undefined) return undefined;
  return grant;
}

/** A grant template's problem (bad pattern, unknown placeholder), or `undefined` when it is valid. */
export function grantTemplateProblem(template: string): string | undefined {
  for (const [, name] of template.matchAll(PLACEHOLDER)) {
    if (name !== 'sub') return `unknown placeholder {${name}} (known: {sub})`;
  }
  // Check the pattern with each placeholder as a plain segment.
  return channelProblem(template.replace(PLACEHOLDER, 'x'), true);
}
