-- hekate: unknown [name.config] keys are errors
--[[
Threshold alerts (SandboxFilter).

Watches a numeric value in each matched message (`field`, e.g. `Fields[cpu]`) and keeps a
state per series: ok, warning or critical. A series is one value of `key_field` (e.g.
the Hostname), or a single series when `key_field` is unset. It alerts, through the alert
module (`require "alert"`), only when the state changes:

  → warning   `WARNING: [<series> ]<field> is <v> (<direction> warning <level>)`
  → critical  `CRITICAL: [<series> ]<field> is <v> (<direction> critical <level>)`
  → ok        `OK: [<series> ]<field> is <v> (back from <old state>)`

With `direction = "above"` a level is reached when the value is >= it; with "below",
when the value is <= it. Hysteresis: once reached, a level is left only when the value
is more than `hysteresis` back on the other side of it (its clear level is
`level - hysteresis` for "above", `level + hysteresis` for "below"), so a value hovering
around a threshold does not alert on every message. Going up a level is immediate.
Each alert's id (its payload_name) is `<series>:<state>` (the series is the field name
when there is no `key_field`); `alert_throttle` applies per id.

Messages without a numeric value (or without the key field) return -1, a counted
failure. New series beyond `max_series` are counted failures too. The per-series state
is kept in the global `series`, so `preserve_data = true` keeps it across restarts.

Config ([name.config]):
  field          = "Fields[value]"  -- the value: any read_message variable
  key_field      = ""       -- what names a series (e.g. "Hostname"); "" = one series
  direction      = "above"  -- "above" or "below": which side of the levels is bad
  warning        = nil      -- warning level (at least one of warning/critical)
  critical       = nil      -- critical level (beyond warning in `direction`)
  hysteresis     = 0        -- how far back past a level the value must go to leave it
  alert_throttle = 0        -- minimum seconds between alerts of one id
  max_series     = 1000     -- series tracked at most

Example:
  [cpu_threshold]
  type = "SandboxFilter"
  filename = "lua_filters/threshold.lua"
  module_directory = "lua_modules"
  message_matcher = "Type == 'stats.cpu'"
    [cpu_threshold.config]
    field = "Fields[cpu_percent]"
    key_field = "Hostname"
    warning = 80
    critical = 95
    hysteresis = 5
--]]

require "alert"
require "string"
require "table"

local field = read_config("field") or "Fields[value]"
local key_field = read_config("key_field") or ""
local direction = read_config("direction") or "above"
local warning = read_config("warning")
local critical = read_config("critical")
local hysteresis = read_config("hysteresis") or 0
local max_series = read_config("max_series") or 1000
alert.set_throttle((read_config("alert_throttle") or 0) * 1e9)

if direction ~= "above" and direction ~= "below" then
    error("direction must be \"above\" or \"below\", not " .. tostring(direction))
end
if warning == nil and critical == nil then
    error("set warning, critical or both")
end
if hysteresis < 0 then
    error("hysteresis must not be negative")
end
-- Compare on a scale where bigger is always worse.
local sign = direction == "above" and 1 or -1
if warning and critical and critical * sign < warning * sign then
    error("critical must be " .. direction .. " warning")
end

local NAMES = { [0] = "ok", "warning", "critical" }
local LEVELS = { warning, critical }

-- Preserved state: series name -> state (0 ok, 1 warning, 2 critical).
series = series or {}
series_count = series_count or 0

-- The new state of a series in `state` that now has value `v`.
local function next_state(v, state)
    local x = v * sign
    local new = 0
    for i = 1, 2 do
        local t = LEVELS[i] and LEVELS[i] * sign
        if t and (x >= t or (i <= state and x >= t - hysteresis)) then
            new = i
        end
    end
    return new
end

-- "<series> <field>", or just the field when there is one series.
local function subject(name)
    if key_field == "" then
        return field
    end
    return name .. " " .. field
end

local function summary(name, v, new, old)
    if new == 0 then
        return string.format("OK: %s is %g (back from %s)", subject(name), v, NAMES[old])
    end
    return string.format("%s: %s is %g (%s %s %g)", NAMES[new]:upper(), subject(name), v,
        direction, NAMES[new], LEVELS[new])
end

-- The configured levels, e.g. "warning 80, critical 90, hysteresis 5".
local LEVELS_TEXT = (function()
    local t = {}
    if warning then t[#t + 1] = string.format("warning %g", warning) end
    if critical then t[#t + 1] = string.format("critical %g", critical) end
    t[#t + 1] = string.format("hysteresis %g", hysteresis)
    return table.concat(t, ", ")
end)()

local function detail(ns, old)
    return string.format("previous state %s; %s; at %s", NAMES[old], LEVELS_TEXT,
        os.date("!%Y-%m-%dT%H:%M:%SZ", ns // 1000000000))
end

function process_message()
    local v = tonumber(read_message(field))
    if v == nil or v ~= v then
        return -1, "no numeric " .. field
    end
    local name = field
    if key_field ~= "" then
        local key = read_message(key_field)
        if key == nil or key == "" then
            return -1, "message has no " .. key_field
        end
        name = tostring(key)
    end
    local old = series[name]
    if old == nil then
        if series_count >= max_series then
            return -1, "max_series reached; not tracking " .. name
        end
        series_count = series_count + 1
        old = 0
    end
    local new = next_state(v, old)
    series[name] = new
    if new ~= old then
        local ns = read_message("Timestamp")
        alert.notify(ns, name .. ":" .. NAMES[new], summary(name, v, new, old), detail(ns, old))
    end
    return 0
end

function timer_event(ns)
end
