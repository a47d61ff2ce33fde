--[[
Alert module (`require "alert"`), for SandboxFilters.

Sends alerts as `heka.sandbox-output` messages with `Fields[payload_type] = "alert"`,
the form Heka's alert module injected, so the usual matcher
`Type == 'heka.sandbox-output' && Fields[payload_type] == 'alert'` selects them and
`sandbox/lua/encoders/alert_mail.lua` renders them for SmtpOutput or HttpOutput.

Heka-compatible API (same names, arguments and return values as Heka's module):

  alert.send(ns, msg)          -- inject `msg` now unless throttled; true if sent
  alert.queue(ns, msg)         -- keep `msg` for the next send_queue; false if throttled
  alert.send_queue(ns)         -- send everything queued as one alert (lines joined by
                               --   "\n"); false if nothing was queued or throttled
  alert.set_throttle(ns_dur)   -- minimum nanoseconds between alerts (default one hour)
  alert.throttled(ns)          -- true if an alert at time `ns` would be throttled

  `ns` is the current time in nanoseconds (a message Timestamp or the timer_event
  argument); `ns = 0` bypasses the throttle. `msg` nil or "" is never sent. Heka-style
  alerts have an empty `payload_name`. The time of the last alert is kept in the global
  `_LAST_ALERT`, so `preserve_data = true` keeps the throttle across restarts. Unlike
  Heka, an alert is never throttled before the first one was sent.

hekate extension, for alerts about one thing (a host, a service, a metric):

  alert.notify(ns, id, summary[, detail]) -- inject an alert for `id`; true if sent
  alert.throttled(ns, id)                 -- would an alert for `id` be throttled?

  The throttle is kept per `id` (in the global `_ALERT_TIMES`; a throttle of 0 lets
  every notify through, even when `ns` goes backwards), so an alert about one
  host never suppresses another's; use an id per state ("web1:down", "web1:up") to keep
  a recovery from being suppressed by the outage alert before it. The alert's
  `payload_name` is `id`, and its Payload is `summary` (one line; newlines become
  spaces), then, when given, a newline and `detail`. By convention the summary starts
  with a level word and a colon (`CRITICAL: `, `WARNING: `, `OK: `, `INFO: `), which
  the alert encoder shows as the severity.

Injected message: Type `heka.sandbox-output`, Logger = the filter's name,
Fields[payload_type] = "alert", Fields[payload_name] = "" or the id, Payload = the text.
Each alert is one injection: mind `max_process_inject`/`max_timer_inject`.

Example (in a filter):

  require "alert"
  alert.set_throttle((read_config("alert_throttle") or 3600) * 1e9)

  function process_message()
      local ns = read_message("Timestamp")
      if read_message("Fields[errors]") > 100 then
          alert.send(ns, "too many errors")
      end
      return 0
  end
--]]

local M = {}

-- Globals, so preserve_data saves them. Loading the module keeps restored values.
_LAST_ALERT = _LAST_ALERT or 0
_ALERT_TIMES = _ALERT_TIMES or {}

local throttle = 3600 * 1e9 -- Heka's default: at most one alert per hour
local queued = nil          -- messages waiting for send_queue

local function is_throttled(ns, last)
    if ns == 0 or last == nil or last == 0 then
        return false
    end
    return ns < last or ns - last <= throttle
end

local function valid(msg)
    return msg ~= nil and msg ~= ""
end

function M.set_throttle(ns_duration)
    throttle = ns_duration
end

function M.throttled(ns, id)
    if id ~= nil then
        -- Without a throttle, per-id alerts always go, even with out-of-order times.
        return throttle > 0 and is_throttled(ns, _ALERT_TIMES[id])
    end
    return is_throttled(ns, _LAST_ALERT)
end

function M.send(ns, msg)
    if not valid(msg) or M.throttled(ns) then
        return false
    end
    inject_payload("alert", "", msg)
    if ns > _LAST_ALERT then
        _LAST_ALERT = ns
    end
    return true
end

function M.queue(ns, msg)
    if not valid(msg) or M.throttled(ns) then
        return false
    end
    queued = queued or {}
    queued[#queued + 1] = msg
    return true
end

function M.send_queue(ns)
    if queued == nil then
        return false
    end
    local msg = table.concat(queued, "\n")
    queued = nil
    return M.send(ns, msg)
end

function M.notify(ns, id, summary, detail)
    if id == nil or not valid(summary) or M.throttled(ns, id) then
        return false
    end
    local text = tostring(summary):gsub("[\r\n]+", " ")
    if detail ~= nil and detail ~= "" then
        text = text .. "\n" .. tostring(detail)
    end
    inject_payload("alert", tostring(id), text)
    local last = _ALERT_TIMES[id]
    if last == nil or ns > last then
        _ALERT_TIMES[id] = ns
    end
    return true
end

return M
