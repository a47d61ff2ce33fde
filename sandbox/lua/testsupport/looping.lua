-- Test filter: spins forever on a message whose payload is "loop" (to be stopped by
-- instruction_limit); counts everything else.
seen = 0

function process_message()
    if (read_message("Payload") or ""):match("^loop") then
        while true do end
    end
    seen = seen + 1
    return 0
end
