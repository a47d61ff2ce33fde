-- LPeg benchmark: an nginx "combined" access-log grammar in the style of lua_sandbox's
-- common_log_format (IPv4 address, CLF time to nanoseconds, typed numbers, quoted
-- strings) matched over LINES lines. Runs unchanged under lua5.4 with the C LPeg and
-- in a hekate sandbox (benches/lpeg.rs); prints "<lines> lines in <s> s".
local lpeg = require "lpeg"
local P, R, S, C, Cg, Ct, Cc = lpeg.P, lpeg.R, lpeg.S, lpeg.C, lpeg.Cg, lpeg.Ct, lpeg.Cc
local LINES = LINES or 1000000

local digit = R"09"
local octet = digit * digit^-2
local ipv4 = C(octet * "." * octet * "." * octet * "." * octet)
local months = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
                 Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }
local function num(n) local p = digit for _ = 2, n do p = p * digit end return C(p) / tonumber end
local month = C(R"AZ" * R"az" * R"az") / months
local offset = C(S"+-") * num(2) * num(2)
local function days(y, m, d)  -- days since 1970-01-01 (proleptic Gregorian)
  if m <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
end
local clf_time = (num(2) * "/" * month * "/" * num(4) * ":" * num(2) * ":" * num(2) * ":" * num(2) * " " * offset)
  / function(d, mo, y, h, mi, s, sign, oh, om)
      local t = ((days(y, mo, d) * 24 + h) * 60 + mi) * 60 + s
      local off = (oh * 60 + om) * 60
      if sign == "+" then t = t - off else t = t + off end
      return t * 1e9
    end
local quoted = P'"' * C((1 - P'"')^0) * P'"'
local field = C((1 - P" ")^1)
local number = C(digit^1) / tonumber

local grammar = Ct(
  Cg(ipv4, "remote_addr") * " - " *
  Cg(field, "remote_user") * " [" *
  Cg(clf_time, "Timestamp") * '] ' *
  Cg(quoted, "request") * " " *
  Cg(number, "status") * " " *
  Cg(Ct(Cg(number, "value") * Cg(Cc"B", "representation")), "body_bytes_sent") * " " *
  Cg(quoted, "http_referer") * " " *
  Cg(quoted, "http_user_agent") * P(-1))

local agents = { "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
                 "curl/8.4.0", "Googlebot/2.1 (+http://www.google.com/bot.html)" }
local lines = {}
for i = 1, 1000 do
  lines[i] = string.format('10.%d.%d.%d - - [%02d/Dec/2026:%02d:%02d:%02d +0100] "GET /api/v%d/items/%d?page=%d HTTP/1.1" %d %d "https://example.com/p/%d" "%s"',
    i % 250, (i * 7) % 250, (i * 13) % 250, 1 + i % 28, i % 24, i % 60, (i * 3) % 60,
    i % 3, i, i % 17, (i % 10 == 0) and 503 or 200, 100 + i * 37, i, agents[1 + i % 3])
end
assert((grammar:match(lines[1]) or {}).status == 200, "grammar must parse: " .. lines[1])

local t0 = os.clock()
local n, bytes = 0, 0
for i = 1, LINES do
  local t = grammar:match(lines[1 + i % 1000])
  if t then n = n + 1; bytes = bytes + t.body_bytes_sent.value end
end
local dt = os.clock() - t0
local out = string.format("%d lines in %.3f s (%d matched)", LINES, dt, n)
if inject_payload then inject_payload("txt", "", out) else print(out) end
