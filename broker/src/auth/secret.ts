import { timingSafeEqual } from 'node:crypto';

/** Whether `given` is the secret `held`, compared in constant time. */
export function secretMatches(given: string | undefined, held: string | undefined): boolean {
  if (given === undefined || held === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(held);
  return a.length === b.length && timingSafeEqual(a, b);
}
