//! Lua scripts, so that presence decisions (first connection of a user anywhere, last one
//! gone) are atomic across nodes. A members hash maps `node|socket` to the JSON array
//! `[member key, user_id, user_info]`; presence channels are small (100 members by default), so
//! scanning one on a join or leave is cheap.

use redis::Script;

/// Every script, built once per adapter (redis-rs sends `EVALSHA` and loads on a miss).
pub struct Scripts {
    pub join: Script,
    pub leave: Script,
    pub reap: Script,
    pub decrement: Script,
    pub count_change: Script,
}

impl Scripts {
    pub fn load() -> Scripts {
        Scripts {
            join: join(),
            leave: leave(),
            reap: reap(),
            decrement: decrement(),
            count_change: count_change(),
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

/// KEYS[1] a counts hash; ARGV[1] field. Decrements and deletes the field at zero.
fn decrement() -> Script {
    Script::new(
        r#"
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n
"#,
    )
}

/// KEYS[1] this node's counts hash; ARGV: channel, delta, nodes set key, liveness key prefix,
/// counts key prefix (node id appended), this node's id. Applies the delta to this node's count
/// and returns the channel's subscriptions over every live node, in one atomic step, so that
/// exactly one node sees a channel become occupied (1) or vacated (0).
fn count_change() -> Script {
    Script::new(
        r#"
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
local total, seen_self = 0, false
local function add(node)
  local c = tonumber(redis.call('HGET', ARGV[5] .. node, ARGV[1]) or '0')
  if c and c > 0 then total = total + c end
end
for _, node in ipairs(redis.call('SMEMBERS', ARGV[3])) do
  if node == ARGV[6] then
    seen_self = true
    add(node)
  elseif redis.call('EXISTS', ARGV[4] .. node) == 1 then
    add(node)
  end
end
if not seen_self then add(ARGV[6]) end
return total
"#,
    )
}
