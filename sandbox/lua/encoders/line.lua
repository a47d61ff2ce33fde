-- hekate: unknown [name.config] keys are errors
--[[
Line encoder (SandboxEncoder).

Writes each message as one text line: `<Type> <Severity> <Payload>` (without a
trailing newline of the payload) followed by
the fields listed in `fields` as ` name=value`, then a newline. Messages of the
Types listed in `skip_types` produce no output (return -2).

Config ([name.config]):
  fields = ""       -- space-separated field names to append
  skip_types = ""   -- space-separated Types to drop

Example:
  [line_encoder]
  type = "SandboxEncoder"
  filename = "lua_encoders/line.lua"
    [line_encoder.config]
    fields = "status path"
--]]

local function words(s)
    local t = {}
    for w in (s or ""):gmatch("%S+") do t[#t + 1] = w end
    return t
end

local fields = words(read_config("fields"))
local skip = {}
for _, t in ipairs(words(read_config("skip_types"))) do skip[t] = true end

function process_message()
    local msg_type = read_message("Type")
    if skip[msg_type] then
        return -2
    end
    local payload = (read_message("Payload") or ""):gsub("\n$", "")
    add_to_payload(msg_type, " ", read_message("Severity"), " ", payload)
    for _, name in ipairs(fields) do
        local v = read_message("Fields[" .. name .. "]")
        if v ~= nil then
            add_to_payload(" ", name, "=", v)
        end
    end
    add_to_payload("\n")
    inject_payload()
    return 0
end
