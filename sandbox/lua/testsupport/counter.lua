-- Test filter: counts messages and sums their numeric payloads; every `every`
-- messages (read_config) it emits "count=<n> sum=<s>" with inject_payload.
local every = read_config("every") or 5
count = 0
total = 0

function process_message()
    count = count + 1
    total = total + (tonumber(read_message("Payload")) or 0)
    if count % every == 0 then
        inject_payload("txt", "counter", string.format("count=%d sum=%d\n", count, total))
    end
    return 0
end

function timer_event(ns)
end
