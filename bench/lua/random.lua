-- bench/lua/random.lua - wrk script of `make bench`: GET /CODE with a code drawn
-- uniformly at random per request from the file given after `--`, one code a line.
-- Usage: wrk ... -s bench/lua/random.lua URL -- CODES_FILE
local reqs = {}
local codes = {}
local n = 0

function init(args)
        for line in io.lines(args[1]) do
                n = n + 1
                codes[n] = line
        end
        math.randomseed(os.time() + (tonumber(tostring({}):sub(8)) or 0))
end

-- Requests are formatted once per code and then reused.
function request()
        local i = math.random(n)
        local r = reqs[i]
        if not r then
                r = wrk.format("GET", "/" .. codes[i])
                reqs[i] = r
        end
        return r
end
