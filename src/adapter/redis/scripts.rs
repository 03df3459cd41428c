//! Lua scripts, so that presence decisions (first connection of a user anywhere, last one
//! gone) and the numbering of recorded channels (docs/recovery.md §3) are atomic across nodes. A members hash maps `node|socket` to the JSON array
//! `[member key, user_id, user_info]`; presence channels are small (100 members by default), so
//! scanning one on a join or leave is cheap.
//!
//! Every key a script touches comes in KEYS, and all of them are keys of one app (one hash
//! slot, `keys`), so each script runs as is on Redis Cluster. The pub/sub channel a script
//! publishes on is an argument, not a key; on Redis Cluster it is the app's sharded channel,
//! in the same slot, which Redis requires of `SPUBLISH` in a script. Which keys and arguments
//! each script gets is built in `script_calls`.

use redis::Script;

/// Every script, built once per adapter (redis-rs sends `EVALSHA` and loads on a miss).
pub struct Scripts {
    pub join: Script,
    pub leave: Script,
    pub reap: Script,
    pub count_change: Script,
    pub counts_read: Script,
    pub counts_assert: Script,
    pub counts_reap: Script,
    pub connection_change: Script,
    pub connections_read: Script,
    pub live_touch: Script,
    pub history_append: Script,
    pub history_read: Script,
    pub user_count: Script,
    pub users_assert: Script,
    pub users_reap: Script,
}

impl Scripts {
    pub fn load() -> Scripts {
        Scripts {
            join: join(),
            leave: leave(),
            reap: reap(),
            count_change: count_change(),
            counts_read: counts_read(),
            counts_assert: counts_assert(),
            counts_reap: counts_reap(),
            connection_change: connection_change(),
            connections_read: connections_read(),
            live_touch: live_touch(),
            history_append: history_append(),
            history_read: history_read(),
            user_count: user_count(),
            users_assert: users_assert(),
            users_reap: users_reap(),
        }
    }
}

/// KEYS[1] members; ARGV: field, value, member key, member limit (0 = none).
/// Returns `{-1, {}}` when the channel is full, else `{connections of this user, all values}`.
fn join() -> Script {
    Script::new(
        r#"
local vals = redis.call('HVALS', KEYS[1])
local limit = tonumber(ARGV[4])
if limit > 0 and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  local users, known = {}, false
  local distinct = 0
  for _, v in ipairs(vals) do
    local k = cjson.decode(v)[1]
    if k == ARGV[3] then known = true end
    if not users[k] then users[k] = true; distinct = distinct + 1 end
  end
  if not known and distinct >= limit then return {-1, {}} end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
vals = redis.call('HVALS', KEYS[1])
local n = 0
for _, v in ipairs(vals) do
  if cjson.decode(v)[1] == ARGV[3] then n = n + 1 end
end
return {n, vals}
"#,
    )
}

/// KEYS[1] members; ARGV: field, member key. Returns how many connections of that user are
/// left in the channel (0 means member_removed).
fn leave() -> Script {
    Script::new(
        r#"
redis.call('HDEL', KEYS[1], ARGV[1])
local n = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  if cjson.decode(v)[1] == ARGV[2] then n = n + 1 end
end
return n
"#,
    )
}

/// KEYS[1] members; ARGV[1] a dead node's field prefix (`node|`). Removes its members and
/// returns the values of the users who have no connection left anywhere.
fn reap() -> Script {
    Script::new(
        r#"
local all = redis.call('HGETALL', KEYS[1])
local removed = {}
for i = 1, #all, 2 do
  if string.sub(all[i], 1, #ARGV[1]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], all[i])
    table.insert(removed, all[i + 1])
  end
end
local left = {}
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do left[cjson.decode(v)[1]] = true end
local gone, out = {}, {}
for _, r in ipairs(removed) do
  local k = cjson.decode(r)[1]
  if not left[k] and not gone[k] then gone[k] = true; table.insert(out, r) end
end
return out
"#,
    )
}

/// Redis's clock in ms (`now_ms()`), and the nodes of one app alive by its `live` hash
/// (`live_nodes(key, now)`, a set): liveness is judged by the clock of the server holding the
/// app, never by the nodes' clocks. Shared by the count scripts.
const LIVE: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function live_nodes(key, now)
  local alive, l = {}, redis.call('HGETALL', key)
  for i = 1, #l, 2 do
    if tonumber(l[i + 1]) > now then alive[l[i]] = true end
  end
  return alive
end
"#;

/// KEYS: the app's counts, live, change counter; ARGV: channel, delta, this node's id, liveness
/// ttl ms. Marks this node alive for the app, applies the delta to its count and returns
/// `{subscriptions over every live node, change number}` in one atomic step, so that exactly
/// one node sees a channel become occupied (1) or vacated (0), and a later change always has
/// a higher number (for the live subscription count, docs/protocol.md §10.2).
fn count_change() -> Script {
    Script::new(&format!(
        r#"{LIVE}
local now = now_ms()
redis.call('HSET', KEYS[2], ARGV[3], now + tonumber(ARGV[4]))
local f = ARGV[3] .. '\n' .. ARGV[1]
local n = redis.call('HINCRBY', KEYS[1], f, ARGV[2])
if n <= 0 then redis.call('HDEL', KEYS[1], f) end
local total = 0
for node in pairs(live_nodes(KEYS[2], now)) do
  local c = tonumber(redis.call('HGET', KEYS[1], node .. '\n' .. ARGV[1]) or '0')
  if c and c > 0 then total = total + c end
end
return {{total, redis.call('INCR', KEYS[3])}}
"#
    ))
}

/// KEYS: the app's counts, live. Returns `channel, subscriptions` pairs summed over the live
/// nodes.
fn counts_read() -> Script {
    Script::new(&format!(
        r#"{LIVE}
local alive = live_nodes(KEYS[2], now_ms())
local totals, order = {{}}, {{}}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local node, ch = string.match(all[i], '^([^\n]*)\n(.*)$')
  local c = tonumber(all[i + 1])
  if node and alive[node] and c and c > 0 then
    if not totals[ch] then totals[ch] = 0; table.insert(order, ch) end
    totals[ch] = totals[ch] + c
  end
end
local out = {{}}
for _, ch in ipairs(order) do table.insert(out, ch); table.insert(out, totals[ch]) end
return out
"#
    ))
}

/// KEYS: the app's counts, connections, live; ARGV: node, liveness ttl ms, its connections,
/// then `channel, subscriptions` pairs: the node's whole truth for the app, replacing what
/// Redis held (after a restart, an outage).
fn counts_assert() -> Script {
    Script::new(&format!(
        r#"{LIVE}
local p = ARGV[1] .. '\n'
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, #p) == p then redis.call('HDEL', KEYS[1], f) end
end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], p .. ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], now_ms() + tonumber(ARGV[2]))
return 1
"#
    ))
}

/// KEYS: the app's counts, connections, live; ARGV: a dead node's id. Removes its counts,
/// connections and liveness for the app; returns the channels it had subscribers on.
fn counts_reap() -> Script {
    Script::new(
        r#"
local p = ARGV[1] .. '\n'
local out = {}
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, #p) == p then
    redis.call('HDEL', KEYS[1], f)
    table.insert(out, string.sub(f, #p + 1))
  end
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return out
"#,
    )
}

/// KEYS: the app's connections, live; ARGV: this node's id, delta, liveness ttl ms. Marks this
/// node alive for the app, moves its connection count (deleting it at zero) and returns the
/// app's connections over the live nodes.
fn connection_change() -> Script {
    Script::new(&format!(
        r#"{LIVE}
local now = now_ms()
redis.call('HSET', KEYS[2], ARGV[1], now + tonumber(ARGV[3]))
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
local total = 0
for node in pairs(live_nodes(KEYS[2], now)) do
  local c = tonumber(redis.call('HGET', KEYS[1], node) or '0')
  if c and c > 0 then total = total + c end
end
return total
"#
    ))
}

/// KEYS: the app's connections, live. Returns the app's connections over the live nodes.
fn connections_read() -> Script {
    Script::new(&format!(
        r#"{LIVE}
local total = 0
for node in pairs(live_nodes(KEYS[2], now_ms())) do
  local c = tonumber(redis.call('HGET', KEYS[1], node) or '0')
  if c and c > 0 then total = total + c end
end
return total
"#
    ))
}

/// KEYS: the app's live; ARGV: this node's id, liveness ttl ms. The heartbeat, per app.
fn live_touch() -> Script {
    Script::new(&format!(
        r#"{LIVE}
redis.call('HSET', KEYS[1], ARGV[1], now_ms() + tonumber(ARGV[2]))
return 1
"#
    ))
}

/// The history a recorded channel's meta (KEYS[1]) and log (KEYS[2]) hold, or a new one with
/// epoch ARGV[1] when there is none or it was numbered by another Redis process (a restart that
/// reloaded an older snapshot, a failover to a replica that lagged): its offsets would repeat
/// ones already handed out, so its epoch must not be trusted. Shared by both history scripts.
const OPEN_HISTORY: &str = r#"
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or ''
local m = redis.call('HMGET', KEYS[1], 'epoch', 'top', 'run')
local epoch, top = m[1], tonumber(m[2] or '0')
if not epoch or m[3] ~= run then
  epoch, top = ARGV[1], 0
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0, 'run', run)
  redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
end
"#;

/// KEYS: meta, log; ARGV: new epoch, ttl ms, history size, bus channel, bus message head,
/// entry head (`except\ntime_ms\n`), frame, publish command (`PUBLISH` or `SPUBLISH`). Numbers the event, appends it, keeps the last
/// `history size`, refreshes both TTLs (the log lives `ttl` after the last publish, the meta
/// twice that, so a late client learns `expired` rather than `epoch_changed`) and publishes it
/// on the bus: one step, so every node receives a channel's events in offset order.
/// Returns `{epoch, offset}`.
fn history_append() -> Script {
    Script::new(&format!(
        r#"{OPEN_HISTORY}
top = top + 1
redis.call('HSET', KEYS[1], 'top', top)
redis.call('RPUSH', KEYS[2], top .. '\n' .. ARGV[6] .. ARGV[7])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
redis.call(ARGV[8], ARGV[4], ARGV[5] .. epoch .. '\n' .. top .. '\n' .. ARGV[7])
return {{epoch, top}}
"#
    ))
}

/// KEYS: meta, log; ARGV: new epoch, ttl ms, after, limit. Returns `{epoch, top, held, items}`:
/// how many events the log holds (they end at `top`) and at most `limit` of them after
/// `after`, oldest first. Reading opens the history, so the epoch it returns is the one the
/// next publish numbers in.
fn history_read() -> Script {
    Script::new(&format!(
        r#"{OPEN_HISTORY}
local held = redis.call('LLEN', KEYS[2])
local after, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local items = {{}}
if held > 0 and limit > 0 and after < top then
  local oldest = top - held + 1
  local from = math.max(after + 1, oldest) - oldest
  items = redis.call('LRANGE', KEYS[2], from, from + limit - 1)
end
return {{epoch, top, held, items}}
"#
    ))
}

/// Moves a user's total (KEYS[1], the app's hash user → signed-in connections over the
/// cluster) by what changed in one node's hash (KEYS[2]), keeping the total the sum of the
/// nodes', and publishes the user's transition on the bus: ARGV[1] the publish command
/// (`PUBLISH`, `SPUBLISH`, or empty: the app has no watchlist events, nothing is published),
/// ARGV[2] the bus channel, ARGV[3] message head; the payload is `1`
/// (online) or `0` (offline) followed by the user id. Shared by the three user scripts.
const SET_USER: &str = r#"
local function set_user(user, n)
  local had = tonumber(redis.call('HGET', KEYS[2], user) or '0')
  if n > 0 then redis.call('HSET', KEYS[2], user, n) else redis.call('HDEL', KEYS[2], user); n = 0 end
  local d = n - had
  if d == 0 then return end
  local before = tonumber(redis.call('HGET', KEYS[1], user) or '0')
  local after = before + d
  if after > 0 then redis.call('HSET', KEYS[1], user, after) else redis.call('HDEL', KEYS[1], user) end
  if ARGV[1] == '' then return end
  if before <= 0 and after > 0 then redis.call(ARGV[1], ARGV[2], ARGV[3] .. '1' .. user)
  elseif before > 0 and after <= 0 then redis.call(ARGV[1], ARGV[2], ARGV[3] .. '0' .. user) end
end
"#;

/// KEYS: the app's users, this node's users; ARGV: publish command, bus channel, head, user,
/// delta. A sign-in
/// (+1) or sign-out (-1) here; the user's first connection anywhere is announced `online`, the
/// last one gone `offline` (docs/protocol.md §10.1), in one step with the count, so every node
/// hears one user's transitions in the order they happened.
fn user_count() -> Script {
    Script::new(&format!(
        r#"{SET_USER}
local n = tonumber(redis.call('HGET', KEYS[2], ARGV[4]) or '0') + tonumber(ARGV[5])
set_user(ARGV[4], n)
return 1
"#
    ))
}

/// KEYS: the app's users, this node's users; ARGV: publish command, bus channel, head, then
/// `user, count`
/// pairs: this node's whole truth. Users it no longer has are taken off (announced `offline`
/// when gone everywhere), new ones added (`online`), after a Redis restart or an outage.
fn users_assert() -> Script {
    Script::new(&format!(
        r#"{SET_USER}
local now = {{}}
for i = 4, #ARGV, 2 do now[ARGV[i]] = tonumber(ARGV[i + 1]) end
local old = redis.call('HKEYS', KEYS[2])
for _, user in ipairs(old) do
  if not now[user] then set_user(user, 0) end
end
for user, n in pairs(now) do set_user(user, n) end
return 1
"#
    ))
}

/// KEYS: the app's users, a dead node's users; ARGV: publish command, bus channel, head. Takes the dead node's
/// sign-ins off the totals (announcing users gone everywhere `offline`) and deletes its hash.
fn users_reap() -> Script {
    Script::new(&format!(
        r#"{SET_USER}
for _, user in ipairs(redis.call('HKEYS', KEYS[2])) do set_user(user, 0) end
redis.call('DEL', KEYS[2])
return 1
"#
    ))
}
