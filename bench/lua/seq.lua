-- bench/lua/seq.lua - wrk script of `make bench`: GET /CODE for every code of the
-- file given after `--`, in file order, once each, then stops (warms a cache).
-- Usage: wrk -t1 ... -s bench/lua/seq.lua URL -- CODES_FILE
local codes = {}
local n, i, done = 0, 0, 0

function init(args)
        for line in io.lines(args[1]) do
                n = n + 1
                codes[n] = line
        end
end

function request()
        i = i + 1
        return wrk.format("GET", "/" .. codes[((i - 1) % n) + 1])
end

function response(status, headers, body)
        done = done + 1
        if done >= n then
                wrk.thread:stop()
        end
end
