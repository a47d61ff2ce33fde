--[[
Test driver for the alert module (sandbox/lua/tests/alert.toml): each message names an
alert call in Fields[call] (send, queue, send_queue, notify) with its arguments in
Fields[msg], Fields[id] and Fields[detail]; the time is the message Timestamp. A call
that the module refuses (throttled, empty) injects nothing. timer_event sends the queue.

Config: throttle (seconds; the module default when absent).
--]]

require "alert"

local throttle = read_config("throttle")
if throttle then
    alert.set_throttle(throttle * 1e9)
end

function process_message()
    local ns = read_message("Timestamp")
    local call = read_message("Fields[call]")
    local msg = read_message("Fields[msg]")
    if call == "send" then
        alert.send(ns, msg)
    elseif call == "queue" then
        alert.queue(ns, msg)
    elseif call == "send_queue" then
        alert.send_queue(ns)
    elseif call == "notify" then
        alert.notify(ns, read_message("Fields[id]"), msg, read_message("Fields[detail]"))
    else
        return -1, "unknown call"
    end
    return 0
end

function timer_event(ns)
    alert.send_queue(ns)
end
