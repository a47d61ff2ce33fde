-- Test filter: re-injects every message it sees, appending its own tag to the
-- payload, so two instances feeding each other loop until max_message_loops.
local me = read_config("me") or "?"

function process_message()
    local payload = read_message("Payload"):gsub("\n$", "")
    inject_message({Type = "ping", Payload = payload .. "+" .. me})
    return 0
end
