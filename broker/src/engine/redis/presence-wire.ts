import type { PresenceChange, PresenceNews } from '../engine.js';

// The messages of join/leave notices across nodes (presence-notices.ts), next to presence
// questions (presence.ts) on the same two channels. Channel names hold no space, `=` or `@`
// (A-Za-z0-9_-.), node instances no space.
//
//   on <prefix>w:           +<origin> <key> <channel>…     origin watches these now: answer your holders
//                           -<origin> <channel>…           origin no longer watches these (LINGER_MS after
//                                                          its last watcher left: one back sooner costs nothing)
//                           =<origin> <key> <channel>…     origin (re)starts: it watches exactly these;
//                                                          answer your holders and what you watch
//                           x<origin>                      origin closes: forget its watches and holders
//   on the origin's n:<i>:  !pS<key> <from> <channel>=<n>…              holders of `+`'s channels (n > 0 only)
//                           !pR<key> <from> <channel>=<n>… @<channel>…  the same for `=`, and what <from> watches
//                           !pC<from> [[<channel>, <n>, ["+<id>", "-", …], <more>?, <net>?], …]
//                                                          news: holders after the changes (ids of
//                                                          authenticated principals only, never uuids)

const S = 0x53; // 'S'
/** The third byte of an answer to `=` (`!pR`). */
export const ANSWER_R = 0x52; // 'R'
/** The third byte of news (`!pC`). */
export const NEWS = 0x43; // 'C'

/** Whether a presence message on a node's channel (`!p…`) is a notices' one: a sync answer or news (its third byte). */
export function isNoticeMessage(message: Buffer): boolean {
  return message[2] === S || message[2] === ANSWER_R || message[2] === NEWS;
}

/** One node's news of one channel as sent: `[channel, n, marks, more?, net?]`. */
export function encodeNews(news: PresenceNews): unknown[] {
  const entry: unknown[] = [news.channel, news.n, news.changes.map((c) => (c.j ? '+' : '-') + (c.m ?? ''))];
  if ((news.more ?? 0) > 0) entry.push(news.more, news.net ?? 0);
  return entry;
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/**
 * One entry of news as sent: undefined when it does not parse or its counts do not add up (more
 * below 0, net past more: they would make the count drift).
 */
export function parseNews(entry: unknown): PresenceNews | undefined {
  if (!Array.isArray(entry)) return undefined;
  const [channel, n, marks, more = 0, net = 0] = entry as unknown[];
  if (typeof channel !== 'string' || !isCount(n) || !Array.isArray(marks) || !isCount(more)) return undefined;
  if (!Number.isSafeInteger(net) || Math.abs(net as number) > more) return undefined;
  const changes: PresenceChange[] = [];
  for (const mark of marks) {
    if (typeof mark !== 'string' || (mark[0] !== '+' && mark[0] !== '-')) return undefined;
    changes.push(mark.length > 1 ? { j: mark[0] === '+', m: mark.slice(1) } : { j: mark[0] === '+' });
  }
  return more > 0 ? { channel, n, changes, more, net: net as number } : { channel, n, changes };
}

/** A sync answer after its `!pS`/`!pR`: the sync's key, the answering node, its holders per channel, what it watches (`!pR`). */
export interface SyncAnswer {
  key: string;
  from: string;
  reported: Map<string, number>;
  watched: string[];
}

/** `<key> <from> <channel>=<n>… @<channel>…`: undefined without its key and sender (words that do not parse are skipped). */
export function parseSyncAnswer(text: string): SyncAnswer | undefined {
  const words = text.split(' ');
  const [key, from] = words;
  if (key === undefined || from === undefined || key === '' || from === '') return undefined;
  const reported = new Map<string, number>();
  const watched: string[] = [];
  for (const word of words.slice(2)) {
    if (word.startsWith('@')) watched.push(word.slice(1));
    else {
      const eq = word.lastIndexOf('=');
      const n = Number(word.slice(eq + 1));
      if (eq > 0 && isCount(n)) reported.set(word.slice(0, eq), n);
    }
  }
  return { key, from, reported, watched };
}
