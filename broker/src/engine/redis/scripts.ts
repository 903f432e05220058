// The Redis engine's Lua scripts: each runs atomically on the Redis server, so sequencing,
// retention and the bounds hold whatever the number of broker nodes.
//
// Keys, under the configured prefix P:
//   P s          hash   the stream: epoch, seq (the last seq given), bytes (history held), forgot
//                       (the newest seq of the forgotten channels no longer remembered in P gone)
//   P c:<name>   hash   a channel: epoch, offset, lost/lseq (offset and seq of the newest event it
//                       no longer retains), bytes (its history)
//   P l:<name>   stream a channel's history: entry id `<seq>-0`, fields t (publish time), m (message)
//   P chans      zset   channels held, by the seq of their last event (oldest first: eviction order)
//   P busy       zset   channels held, by their offset (the busiest ranking)
//   P gone       zset   channels forgotten whole, by the seq of their last event (bounded)
//   P i:<scope>  string an idempotent publish: `<at>|<header>`
//   P x:<uuid>   string a parked session; P xs zset: parked uuids by expiry (wall ms)
//   P q:<node>   hash   a node's queue group members per `<name> <pattern>` (see groups.ts)
// Pub/sub: P e:<name> carries each event's message; P n:<node> tells a node its own publish went
// through (in stream order, behind the event), so it hands the event over even without interest.
//
// A message is `<seq> <offset> <channel epoch> <time>|` followed by the publisher's payload.

/** Shared by the scripts that trim: a channel's oldest events out, its bytes and loss recorded. */
const TRIM = `
local function shift(S, C, L)
  local e = redis.call('XRANGE', L, '-', '+', 'COUNT', 1)[1]
  if not e then return false end
  redis.call('XDEL', L, e[1])
  local msg = e[2][4]
  local cost = #msg + OVERHEAD
  redis.call('HINCRBY', C, 'bytes', -cost)
  redis.call('HINCRBY', S, 'bytes', -cost)
  local seq, offset = string.match(msg, '^(%d+) (%d+) ')
  redis.call('HSET', C, 'lost', offset, 'lseq', seq)
  return true
end
local function trimExpired(S, C, L, now, ttl)
  local oldest = now - ttl
  while true do
    local e = redis.call('XRANGE', L, '-', '+', 'COUNT', 1)[1]
    if not e or tonumber(e[2][2]) >= oldest then return end
    shift(S, C, L)
  end
end
`;

const OVERHEAD = 64; // the memory engine's RETAINED_OVERHEAD: the same byte bounds on both engines

/**
 * Publish. ARGV: prefix, channel, payload, now, a new stream epoch (used if none is set), node,
 * publish id, historySize, historyBytes, historyTtl, historyTotalBytes, channelCacheSize,
 * idempotency key ('' for none), idempotencyWindow, remembered evictions, and `s` on a Redis
 * Cluster (sharded pub/sub: the event also goes to `p:<first segment>` and `all`, the channels
 * patterns are subscribed through there, sharded pub/sub having no globs).
 * Answers {1, header} (published) or {0, header} (a repeat within the window: nothing published).
 */
export const PUBLISH = `
local OVERHEAD = ${OVERHEAD}
${TRIM}
local P, ch, payload = ARGV[1], ARGV[2], ARGV[3]
local now = tonumber(ARGV[4])
local size, maxBytes, ttl, total = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local cacheSize, idem, window, remembered = tonumber(ARGV[12]), ARGV[13], tonumber(ARGV[14]), tonumber(ARGV[15])
local S = P .. 's'
if idem ~= '' then
  local seen = redis.call('GET', P .. 'i:' .. idem)
  if seen then
    local at, header = string.match(seen, '^(%d+)|(.*)$')
    if at and now - tonumber(at) <= window then return {0, header} end
  end
end
local epoch = redis.call('HGET', S, 'epoch')
if not epoch then
  epoch = ARGV[5]
  redis.call('HSET', S, 'epoch', epoch)
end
local seq = redis.call('HINCRBY', S, 'seq', 1)
local CH = P .. 'chans'
local function forget(name)
  local C, L = P .. 'c:' .. name, P .. 'l:' .. name
  local bytes = tonumber(redis.call('HGET', C, 'bytes') or '0')
  redis.call('HINCRBY', S, 'bytes', -bytes)
  local last = redis.call('ZSCORE', CH, name)
  redis.call('DEL', C, L)
  redis.call('ZREM', CH, name)
  redis.call('ZREM', P .. 'busy', name)
  local G = P .. 'gone'
  redis.call('ZADD', G, last, name)
  if redis.call('ZCARD', G) > remembered then
    local popped = redis.call('ZPOPMIN', G)
    local forgot = tonumber(redis.call('HGET', S, 'forgot') or '0')
    if tonumber(popped[2]) > forgot then redis.call('HSET', S, 'forgot', popped[2]) end
  end
end
local C, L = P .. 'c:' .. ch, P .. 'l:' .. ch
local gen = redis.call('HGET', S, 'gen') or '0'
local meta = redis.call('HMGET', C, 'epoch', 'gen', 'bytes')
local cepoch = meta[1]
if cepoch and (meta[2] or '0') ~= gen then
  -- A channel of a stream Redis went back on (see INIT): it starts again.
  redis.call('HINCRBY', S, 'bytes', -tonumber(meta[3] or '0'))
  cepoch = false
end
if not cepoch then
  cepoch = epoch .. '.' .. seq
  redis.call('HSET', C, 'epoch', cepoch, 'offset', 0, 'lost', 0, 'lseq', 0, 'bytes', 0, 'gen', gen)
  redis.call('DEL', L)
  local held = redis.call('ZCARD', CH)
  while held >= cacheSize and held > 0 do
    forget(redis.call('ZRANGE', CH, 0, 0)[1])
    held = held - 1
  end
end
local offset = redis.call('HINCRBY', C, 'offset', 1)
redis.call('ZADD', CH, seq, ch)
redis.call('ZADD', P .. 'busy', offset, ch)
local header = seq .. ' ' .. offset .. ' ' .. cepoch .. ' ' .. ARGV[4] .. '|'
local msg = header .. payload
if size > 0 and maxBytes > 0 and ttl > 0 then
  redis.call('XADD', L, seq .. '-0', 't', ARGV[4], 'm', msg)
  local cost = #msg + OVERHEAD
  local bytes = redis.call('HINCRBY', C, 'bytes', cost)
  redis.call('HINCRBY', S, 'bytes', cost)
  local len = redis.call('XLEN', L)
  while len > size or (bytes > maxBytes and len > 1) do
    shift(S, C, L)
    len = len - 1
    bytes = tonumber(redis.call('HGET', C, 'bytes'))
  end
  trimExpired(S, C, L, now, ttl)
  while tonumber(redis.call('HGET', S, 'bytes')) > total do
    local oldest = redis.call('ZRANGE', CH, 0, 0)[1]
    if oldest ~= ch then forget(oldest)
    elseif redis.call('XLEN', L) > 1 then shift(S, C, L)
    else break end
  end
else
  redis.call('HSET', C, 'lost', offset, 'lseq', seq)
end
if ARGV[16] == 's' then
  redis.call('SPUBLISH', P .. 'e:' .. ch, msg)
  redis.call('SPUBLISH', P .. 'p:' .. string.match(ch, '^[^.]+'), msg)
  redis.call('SPUBLISH', P .. 'all', msg)
  redis.call('SPUBLISH', P .. 'n:' .. ARGV[6], ARGV[7] .. ' ' .. header)
else
  redis.call('PUBLISH', P .. 'e:' .. ch, msg)
  redis.call('PUBLISH', P .. 'n:' .. ARGV[6], ARGV[7] .. ' ' .. header)
end
if idem ~= '' then redis.call('SET', P .. 'i:' .. idem, ARGV[4] .. '|' .. header, 'PX', window + 60000) end
return {1, header}
`;

/**
 * Reads channels. ARGV: prefix, now, historyTtl, mode ('after': entries with seq in (since,
 * upTo], oldest first; 'newest': the newest, newest first; 'all': every retained, oldest first),
 * since, upTo (0: no bound), count per channel (0: no bound), then the channel names.
 * Answers {seq, forgot, [name, exists, epoch, offset, lost, lseq, gone, {seq, msg, ...}]...}.
 */
export const READ = `
local OVERHEAD = ${OVERHEAD}
${TRIM}
local P = ARGV[1]
local now, ttl, mode = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local since, upTo, count = ARGV[5], ARGV[6], tonumber(ARGV[7])
local S = P .. 's'
local gen = redis.call('HGET', S, 'gen') or '0'
local out = {tonumber(redis.call('HGET', S, 'seq') or '0'), tonumber(redis.call('HGET', S, 'forgot') or '0')}
for i = 8, #ARGV do
  local name = ARGV[i]
  local C, L = P .. 'c:' .. name, P .. 'l:' .. name
  local meta = redis.call('HMGET', C, 'epoch', 'offset', 'lost', 'lseq', 'gen')
  local gone = tonumber(redis.call('ZSCORE', P .. 'gone', name) or '0')
  if not meta[1] or (meta[5] or '0') ~= gen then
    out[#out + 1] = {name, 0, '', 0, 0, 0, gone, {}}
  else
    if ttl > 0 then trimExpired(S, C, L, now, ttl) end
    meta = redis.call('HMGET', C, 'epoch', 'offset', 'lost', 'lseq')
    local entries
    if mode == 'after' then
      local to = '+'
      if upTo ~= '0' then to = upTo .. '-0' end
      if count > 0 then entries = redis.call('XRANGE', L, '(' .. since .. '-0', to, 'COUNT', count)
      else entries = redis.call('XRANGE', L, '(' .. since .. '-0', to) end
    elseif mode == 'newest' then
      if count > 0 then entries = redis.call('XREVRANGE', L, '+', '-', 'COUNT', count)
      else entries = redis.call('XREVRANGE', L, '+', '-') end
    else
      entries = redis.call('XRANGE', L, '-', '+')
    end
    local msgs = {}
    for j = 1, #entries do msgs[#msgs + 1] = entries[j][2][4] end
    out[#out + 1] = {name, 1, meta[1], tonumber(meta[2]), tonumber(meta[3]), tonumber(meta[4]), gone, msgs}
  end
end
return out
`;

/**
 * The stream's epoch (set to ARGV[2] if none) and seq. ARGV: prefix, a new epoch, the highest seq
 * the calling node knows and its epoch (optional). Redis behind what a node saw in the same epoch
 * (restarted from an older snapshot, failed over to a lagging replica) starts a new stream: a new
 * epoch, and a new generation, so that every channel starts again at its next publish.
 */
export const INIT = `
local S = ARGV[1] .. 's'
redis.call('HSETNX', S, 'epoch', ARGV[2])
local seq = tonumber(redis.call('HGET', S, 'seq') or '0')
if ARGV[4] and redis.call('HGET', S, 'epoch') == ARGV[4] and tonumber(ARGV[3]) > seq then
  redis.call('HSET', S, 'epoch', ARGV[2])
  redis.call('HINCRBY', S, 'gen', 1)
end
return {redis.call('HGET', S, 'epoch'), seq}
`;

/** Frees a session's record and its place in the parked and live indexes. */
const FORGET = `
local function forget(P, uuid)
  local K = P .. 'x:' .. uuid
  local v = redis.call('GET', K)
  if v then
    local ok, rec = pcall(cjson.decode, v)
    if ok and rec.n then redis.call('SREM', P .. 'xl:' .. rec.n, uuid) end
  end
  redis.call('DEL', K)
  redis.call('ZREM', P .. 'xs', uuid)
end
`;

/**
 * Parks a session. ARGV: prefix, uuid, the record (`{"s": session}`), expiry (wall ms), now (wall
 * ms), ttl (ms), sessions kept at most. The oldest to expire are freed first past the bound.
 * A session record is `{"s": session}` when parked (its expiry in P xs), `{"s": session, "n":
 * node, "t": ttl}` while its stream is live on node n (listed in P xl:<n>): if n dies, it is
 * resumable for t after n's last heartbeat (P nodes).
 */
export const PARK = `
${FORGET}
local P, uuid = ARGV[1], ARGV[2]
local X = P .. 'xs'
local expired = redis.call('ZRANGEBYSCORE', X, '-inf', ARGV[5])
for i = 1, #expired do redis.call('DEL', P .. 'x:' .. expired[i]) end
redis.call('ZREMRANGEBYSCORE', X, '-inf', ARGV[5])
forget(P, uuid)
while redis.call('ZCARD', X) >= tonumber(ARGV[7]) do
  local oldest = redis.call('ZPOPMIN', X)
  redis.call('DEL', P .. 'x:' .. oldest[1])
end
redis.call('SET', P .. 'x:' .. uuid, ARGV[3], 'PX', tonumber(ARGV[6]) + 60000)
redis.call('ZADD', X, ARGV[4], uuid)
return 1
`;

/** Records the session of a live stream. ARGV: prefix, uuid, the record (`{"s":…,"n":…,"t":…}`), node. */
export const SAVE = `
local P, uuid = ARGV[1], ARGV[2]
redis.call('ZREM', P .. 'xs', uuid)
redis.call('SET', P .. 'x:' .. uuid, ARGV[3])
redis.call('SADD', P .. 'xl:' .. ARGV[4], uuid)
return 1
`;

/**
 * Reads a session record and when it stops being resumable: its parked expiry, or for a live
 * one its node's last heartbeat (0: none). ARGV: prefix, uuid. Answers {record, expiry, beat} or {}.
 */
export const PEEK = `
local v = redis.call('GET', ARGV[1] .. 'x:' .. ARGV[2])
if not v then return {} end
local beat = '0'
local ok, rec = pcall(cjson.decode, v)
if ok and rec.n then beat = redis.call('ZSCORE', ARGV[1] .. 'nodes', rec.n) or '0' end
return {v, redis.call('ZSCORE', ARGV[1] .. 'xs', ARGV[2]) or '0', beat}
`;

/** Takes a session record if it is still the one read. ARGV: prefix, uuid, the record read. Answers 1 or 0. */
export const TAKE = `
${FORGET}
if redis.call('GET', ARGV[1] .. 'x:' .. ARGV[2]) ~= ARGV[3] then return 0 end
forget(ARGV[1], ARGV[2])
return 1
`;

/** Forgets a session. ARGV: prefix, uuid. */
export const DROP = `
${FORGET}
forget(ARGV[1], ARGV[2])
return 1
`;

/** Sessions parked now (expired ones freed first). ARGV: prefix, now (wall ms). */
export const PARKED = `
local X = ARGV[1] .. 'xs'
local expired = redis.call('ZRANGEBYSCORE', X, '-inf', ARGV[2])
for i = 1, #expired do redis.call('DEL', ARGV[1] .. 'x:' .. expired[i]) end
redis.call('ZREMRANGEBYSCORE', X, '-inf', ARGV[2])
return redis.call('ZCARD', X)
`;

/**
 * A node's heartbeat: alive for 5 s (P node:<name>), its last beat in P nodes; and a sweep of
 * nodes that stopped beating: the live sessions they recorded are freed once past their ttl
 * (at most 1,000 a sweep). ARGV: prefix, node instance (its name and a start id: unique even when
 * two nodes share a name, and a node restarted under its name is another), now (wall ms).
 */
export const HEARTBEAT = `
local P, instance, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
redis.call('SET', P .. 'node:' .. instance, '1', 'PX', 5000)
redis.call('ZADD', P .. 'nodes', now, instance)
local budget = 1000
local dead = redis.call('ZRANGEBYSCORE', P .. 'nodes', '-inf', now - 10000, 'LIMIT', 0, 10)
for i = 1, #dead do
  local n = dead[i]
  local beat = tonumber(redis.call('ZSCORE', P .. 'nodes', n))
  local L = P .. 'xl:' .. n
  redis.call('DEL', P .. 'q:' .. n) -- its queue group members (groups.ts): gone with it
  local uuids = redis.call('SRANDMEMBER', L, budget)
  for j = 1, #uuids do
    local K = P .. 'x:' .. uuids[j]
    local v = redis.call('GET', K)
    local ok, rec = false, nil
    if v then ok, rec = pcall(cjson.decode, v) end
    if not ok or not rec.n or rec.n ~= n then
      redis.call('SREM', L, uuids[j])
    elseif now - beat > tonumber(rec.t) then
      redis.call('DEL', K)
      redis.call('SREM', L, uuids[j])
    end
  end
  budget = budget - #uuids
  if redis.call('SCARD', L) == 0 then redis.call('ZREM', P .. 'nodes', n) end
  if budget <= 0 then break end
end
return 1
`;

/**
 * The node holding a live stream, if another node that is alive. ARGV: prefix, uuid, this node.
 * A node is alive while its `P node:<name>` key is (refreshed every second, 5 s to live).
 */
export const OWNER = `
local v = redis.call('GET', ARGV[1] .. 'u:' .. ARGV[2])
if not v or v == ARGV[3] then return false end
if redis.call('EXISTS', ARGV[1] .. 'node:' .. v) == 0 then return false end
return v
`;

/** Forgets that this node holds a stream, unless another holds it now. ARGV: prefix, uuid, this node. */
export const DISOWN = `
local K = ARGV[1] .. 'u:' .. ARGV[2]
if redis.call('GET', K) == ARGV[3] then redis.call('DEL', K) end
return 1
`;
