-- hekate: unknown [name.config] keys are errors
--[[
Key/value decoder (SandboxDecoder).

Parses records of space-separated `key=value` pairs into message fields, e.g.
`status=200 path=/index bytes=512` gives Fields[status]=200, Fields[path]="/index",
Fields[bytes]=512. Values that read as numbers become numeric fields; others are
strings. The original record stays in Payload and the input's headers are kept.

A record without any pair is a decode failure (counted by the input).

Config ([name.config]):
  type = ""          -- sets the message Type when not empty
  keep_payload = true  -- false clears Payload after parsing

Example:
  [kv_decoder]
  type = "SandboxDecoder"
  filename = "lua_decoders/key_value.lua"
    [kv_decoder.config]
    type = "app.kv"
--]]

local msg_type = read_config("type") or ""
local keep_payload = read_config("keep_payload")
if keep_payload == nil then keep_payload = true end

function process_message()
    local record = read_message("Payload") or ""
    local found = 0
    for key, value in record:gmatch("([%w_%.%-]+)=(%S*)") do
        write_message("Fields[" .. key .. "]", tonumber(value) or value)
        found = found + 1
    end
    if found == 0 then
        return -1, "no key=value pairs"
    end
    if msg_type ~= "" then
        write_message("Type", msg_type)
    end
    if not keep_payload then
        write_message("Payload", "")
    end
    return 0
end
