-- hekate: unknown [name.config] keys are errors
--[[
Alert encoder (SandboxEncoder), the AlertEncoder of hekate: renders alert messages as a
short plain-text mail for SmtpOutput (with `subject_from_body = true`) or a text body
for HttpOutput.

Output, for an alert from the alert module (`sandbox/lua/modules/alert.lua`):

  <subject_prefix><summary>            <- subject line: the first Payload line
                                       <- blank line
  Time:     2026-11-23 01:02:03 UTC    <- message Timestamp
  Severity: CRITICAL                   <- the summary's level word, else the syslog name
  Host:     web-monitor                <- Hostname
  Filter:   heartbeat                  <- Logger (the filter that sent it)
  Alert:    web1:down                  <- Fields[payload_name], when not empty
  Summary:  web1 heartbeat lost        <- the summary without its level word

  <detail>                             <- the rest of the Payload, when there is one

The summary is the first line of the Payload and the detail the remaining lines. When
the summary starts with `CRITICAL: `, `WARNING: `, `OK: ` or `INFO: `, that word is the
severity; otherwise it is the message Severity (`debug` for sandbox output, which Heka
left at 7). A `heka.sandbox-terminated` message becomes
`CRITICAL: sandbox <Fields[plugin]> terminated` with the reason as detail, so the same
output can report crashed filters. Messages of the types listed in `skip_types` produce
no output (return -2, counted by the output).

Config ([name.config]):
  subject_prefix = ""   -- text put before the subject line, e.g. "[hekate] "
  skip_types     = ""   -- space-separated Types to drop

Example:
  [AlertEncoder]
  type = "SandboxEncoder"
  filename = "lua_encoders/alert_mail.lua"
    [AlertEncoder.config]
    subject_prefix = "[hekate] "

  [alert_mail]
  type = "SmtpOutput"
  message_matcher = "(Type == 'heka.sandbox-output' && Fields[payload_type] == 'alert') || Type == 'heka.sandbox-terminated'"
  encoder = "AlertEncoder"
  subject_from_body = true
  send_to = ["oncall@example.com"]
--]]

require "string"

local prefix = read_config("subject_prefix") or ""
local skip = {}
for t in (read_config("skip_types") or ""):gmatch("%S+") do skip[t] = true end

local LEVELS = { CRITICAL = true, WARNING = true, OK = true, INFO = true }
local SYSLOG = { [0] = "emergency", "alert", "critical", "error", "warning", "notice", "info", "debug" }

-- Summary and detail of a message.
local function parts(msg_type, payload)
    if msg_type == "heka.sandbox-terminated" then
        local plugin = read_message("Fields[plugin]") or "?"
        return "CRITICAL: sandbox " .. tostring(plugin) .. " terminated", payload
    end
    local summary, detail = payload:match("^([^\n]*)\n?(.*)$")
    return summary, (detail:gsub("\n+$", ""))
end

-- The severity word and the summary without it.
local function severity(summary)
    local level, rest = summary:match("^(%u+): (.*)$")
    if level and LEVELS[level] then
        return level, rest
    end
    local sev = read_message("Severity")
    return SYSLOG[sev] or tostring(sev), summary
end

local function or_dash(s)
    if s == nil or s == "" then return "-" end
    return tostring(s)
end

function process_message()
    local msg_type = read_message("Type")
    if skip[msg_type] then
        return -2
    end
    local summary, detail = parts(msg_type, read_message("Payload") or "")
    if summary == "" then
        summary = "(empty alert)"
    end
    local level, text = severity(summary)
    local ts = read_message("Timestamp") // 1000000000
    add_to_payload(prefix, summary, "\n\n")
    add_to_payload("Time:     ", os.date("!%Y-%m-%d %H:%M:%S UTC", ts), "\n")
    add_to_payload("Severity: ", level, "\n")
    add_to_payload("Host:     ", or_dash(read_message("Hostname")), "\n")
    add_to_payload("Filter:   ", or_dash(read_message("Logger")), "\n")
    local id = read_message("Fields[payload_name]")
    if id ~= nil and id ~= "" then
        add_to_payload("Alert:    ", id, "\n")
    end
    add_to_payload("Summary:  ", text, "\n")
    if detail ~= "" then
        add_to_payload("\n", detail, "\n")
    end
    inject_payload()
    return 0
end
