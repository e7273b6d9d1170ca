-- wrk script for benches/compare.sh: POSTs pre-generated SAMLResponse form
-- bodies to /saml/acs, one per request. Bodies are split between wrk
-- threads so no body is sent twice while the file lasts (trustgate's replay
-- protection would refuse a second use).
-- Usage: wrk -s benches/acs.lua URL -- BODIES_FILE THREADS USER_AGENT

local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  local file, threads = args[1], tonumber(args[2])
  ua = args[3]
  bodies = {}
  local i = 0
  for line in io.lines(file) do
    if i % threads == id then
      bodies[#bodies + 1] = line
    end
    i = i + 1
  end
  n = 0
end

function request()
  n = n + 1
  local body = bodies[((n - 1) % #bodies) + 1]
  return wrk.format("POST", "/saml/acs", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["User-Agent"] = ua,
  }, body)
end
