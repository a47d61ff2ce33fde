-- hekate: unknown [name.config] keys are errors
--[[
HTTP status graph (SandboxFilter).

Counts HTTP responses per status class over time, one row per `sec_per_row`
seconds, and emits the circular buffer as a `cbuf` payload named `title` on
every timer event (graph it with the dashboard or any cbuf consumer).

Reads `Fields[status]` (a number or numeric string); each message is counted
in the row of its Timestamp. Columns: HTTP_100, HTTP_200, HTTP_300, HTTP_400,
HTTP_500 and HTTP_UNKNOWN (missing status, or outside 100..599).

Config ([name.config]):
  sec_per_row = 60      -- seconds per row (the graph's resolution)
  rows        = 1440    -- rows kept (1440 x 60 s = one day)
  title       = "HTTP Status"   -- payload name of the output

Example:
  [http_status]
  type = "SandboxFilter"
  filename = "lua_filters/http_status_graph.lua"
  message_matcher = "Type == 'nginx.access'"
  ticker_interval = 60
  preserve_data = true
    [http_status.config]
    sec_per_row = 60
    rows = 1440
--]]

require "circular_buffer"

local sec_per_row = read_config("sec_per_row") or 60
local rows = read_config("rows") or 1440
local title = read_config("title") or "HTTP Status"

local UNKNOWN = 6

status = circular_buffer.new(rows, 6, sec_per_row)
for i, name in ipairs({"HTTP_100", "HTTP_200", "HTTP_300", "HTTP_400", "HTTP_500", "HTTP_UNKNOWN"}) do
    status:set_header(i, name, "count")
end

-- The column of a status code: 1..5 for 1xx..5xx, UNKNOWN otherwise.
local function column(code)
    code = tonumber(code)
    if not code or code < 100 or code >= 600 then
        return UNKNOWN
    end
    return math.floor(code / 100)
end

function process_message()
    local ts = read_message("Timestamp")
    status:add(ts, column(read_message("Fields[status]")), 1)
    return 0
end

function timer_event(ns)
    inject_payload("cbuf", title, status)
end
