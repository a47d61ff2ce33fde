-- hekate: unknown [name.config] keys are errors
--[[
Heartbeat monitor (SandboxFilter).

Every matched message is a heartbeat of the service named by `key_field` (for example
the sending host, or `Fields[service]`). On each timer_event the filter compares each
service's silence (timer time minus the Timestamp of its last beat) with its timeouts
and moves it between three states:

  up    -- beating
  warn  -- silent for longer than the warn timeout
  down  -- silent for longer than the down timeout

It alerts (through the alert module, `require "alert"`) on every transition: up → warn
(`WARNING: ...`), → down (`CRITICAL: ...`), and warn/down → up when a beat arrives
(`OK: ...`, sent at once from process_message). The first beat of a service is no alert.
Each alert's id is `<service>:<state>` (its payload_name); `alert_throttle` applies per
id. When more than 9 services change state in one tick (a timer_event may inject 10
messages), they are reported in one alert with the id `heartbeat:many`.

Timeouts: `warn_timeout`/`down_timeout` in seconds. When one is 0 or absent, it is
automatic once the service has sent 6 beats: warn = 1.5 × the median interval of its
last 20 beats, down = 3 × that median (and never below the warn timeout). Until then,
an automatic timeout does not fire.

On every timer_event it injects a status document: `inject_payload("json", payload_name)`
with Payload
  {"time":<timer s>,"untracked":<n>,"services":[{"name":..,"state":"up"|"warn"|"down",
   "beats":n,"last_beat":<s>,"silence":<s>,"warn_timeout":<s>,"down_timeout":<s>}, ...]}
(services sorted by name; a timeout is absent while it is automatic and unknown).
The document takes about 110 bytes per service: the default `max_services` keeps it
under the default `output_limit` (64512) for names of up to ~20 characters; when
tracking more services, raise the filter's `output_limit` too, or the tick exceeds it
and terminates the sandbox.

The beat time is the message Timestamp: the input's receive time unless the decoder
sets one, so senders' clocks only matter when their messages carry a Timestamp.
Messages without the key field return -1 (a counted failure); so do new services
beyond `max_services` (also counted in "untracked"). State is kept in globals, so
`preserve_data = true` keeps it across restarts.

Config ([name.config]):
  key_field      = "Hostname"   -- what names a service: any read_message variable,
                                --   e.g. "Fields[service]" or "Logger"
  warn_timeout   = 0            -- seconds of silence before "warn" (0 = automatic)
  down_timeout   = 0            -- seconds of silence before "down" (0 = automatic)
  alert_throttle = 0            -- minimum seconds between alerts of one id
  max_services   = 500          -- services tracked at most
  payload_name   = "heartbeat"  -- payload_name of the status document

Example:
  [heartbeat]
  type = "SandboxFilter"
  filename = "lua_filters/heartbeat_monitor.lua"
  module_directory = "lua_modules"
  message_matcher = "Type == 'heartbeat'"
  ticker_interval = 5
  preserve_data = true
    [heartbeat.config]
    key_field = "Fields[service]"
    warn_timeout = 30
    down_timeout = 90
--]]

require "alert"
require "cjson"
require "string"
require "table"

local key_field = read_config("key_field") or "Hostname"
local warn_config = (read_config("warn_timeout") or 0) * 1e9
local down_config = (read_config("down_timeout") or 0) * 1e9
local max_services = read_config("max_services") or 500
local payload_name = read_config("payload_name") or "heartbeat"
alert.set_throttle((read_config("alert_throttle") or 0) * 1e9)

local AUTO_BEATS = 6
local AUTO_WARN = 1.5
local AUTO_DOWN = 3
local KEPT_INTERVALS = 20
local MAX_ALERTS_PER_TICK = 9
local RANK = { up = 0, warn = 1, down = 2 }

-- Preserved state: name -> {last = ns, beats = n, intervals = {ns...}, median = ns,
-- state = "up"}. The median is updated per beat, so a tick does not sort.
services = services or {}
service_count = service_count or 0
untracked = untracked or 0

local function median(values)
    local sorted = {}
    for i, v in ipairs(values) do sorted[i] = v end
    table.sort(sorted)
    local n = #sorted
    if n % 2 == 1 then
        return sorted[(n + 1) // 2]
    end
    return (sorted[n // 2] + sorted[n // 2 + 1]) / 2
end

-- The warn and down timeouts of a service in ns (nil while automatic and unknown).
local function timeouts(s)
    local auto
    if s.beats >= AUTO_BEATS then
        auto = s.median
    end
    local warn = warn_config > 0 and warn_config or (auto and auto * AUTO_WARN)
    local down = down_config
    if down <= 0 then
        down = auto and auto * AUTO_DOWN
        if down and warn and down < warn then down = warn end
    end
    return warn, down
end

local function seconds(ns)
    if ns == nil then return nil end
    return math.floor(ns / 1e6 + 0.5) / 1000
end

local function describe(s, now)
    local warn, down = timeouts(s)
    local parts = { string.format("no heartbeat for %g s", seconds(now - s.last)) }
    if warn then parts[#parts + 1] = string.format("warn after %g s", seconds(warn)) end
    if down then parts[#parts + 1] = string.format("down after %g s", seconds(down)) end
    parts[#parts + 1] = "last beat " .. os.date("!%Y-%m-%dT%H:%M:%SZ", s.last // 1000000000)
    return table.concat(parts, "; ")
end

local function add_interval(s, interval)
    local iv = s.intervals
    iv[#iv + 1] = interval
    if #iv > KEPT_INTERVALS then
        table.remove(iv, 1)
    end
    s.median = median(iv)
end

function process_message()
    local key = read_message(key_field)
    if key == nil or key == "" then
        return -1, "message has no " .. key_field
    end
    key = tostring(key)
    local ns = read_message("Timestamp")
    local s = services[key]
    if s == nil then
        if service_count >= max_services then
            untracked = untracked + 1
            return -1, "max_services reached; not tracking " .. key
        end
        services[key] = { last = ns, beats = 1, intervals = {}, state = "up" }
        service_count = service_count + 1
        return 0
    end
    s.beats = s.beats + 1
    local silence = ns - s.last
    if silence > 0 then
        add_interval(s, silence)
        s.last = ns
    end
    if s.state ~= "up" then
        local was = s.state
        s.state = "up"
        alert.notify(ns, key .. ":up", string.format("OK: %s heartbeat is back", key),
            string.format("beat received after %g s of silence (was %s)", seconds(silence), was))
    end
    return 0
end

local function transition_alert(ns, key, s)
    if s.state == "down" then
        return key .. ":down", string.format("CRITICAL: %s heartbeat lost", key), describe(s, ns)
    end
    return key .. ":warn", string.format("WARNING: %s heartbeat late", key), describe(s, ns)
end

local function status(ns)
    local names = {}
    for name in pairs(services) do names[#names + 1] = name end
    table.sort(names)
    local list = {}
    for i, name in ipairs(names) do
        local s = services[name]
        local warn, down = timeouts(s)
        list[i] = {
            name = name,
            state = s.state,
            beats = s.beats,
            last_beat = s.last // 1000000000,
            silence = seconds(math.max(0, ns - s.last)),
            warn_timeout = seconds(warn),
            down_timeout = seconds(down),
        }
    end
    return cjson.encode({ time = ns // 1000000000, untracked = untracked, services = list })
end

function timer_event(ns)
    local changed = {}
    for name, s in pairs(services) do
        local warn, down = timeouts(s)
        local silence = ns - s.last
        local state = "up"
        if down and silence > down then
            state = "down"
        elseif warn and silence > warn then
            state = "warn"
        end
        if RANK[state] > RANK[s.state] then
            s.state = state
            changed[#changed + 1] = name
        end
    end
    table.sort(changed)
    if #changed <= MAX_ALERTS_PER_TICK then
        for _, name in ipairs(changed) do
            alert.notify(ns, transition_alert(ns, name, services[name]))
        end
    else
        local lines = {}
        for _, name in ipairs(changed) do
            local _, summary, detail = transition_alert(ns, name, services[name])
            lines[#lines + 1] = summary .. " (" .. detail .. ")"
        end
        alert.notify(ns, "heartbeat:many",
            string.format("CRITICAL: %d heartbeats changed state", #changed),
            table.concat(lines, "\n"))
    end
    inject_payload("json", payload_name, status(ns))
end
