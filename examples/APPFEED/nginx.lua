-- nginx (Debian: nginx, nginx-common). Proxy and FastCGI caches hold
-- upstream responses in short-lived temp files: scanning them on access
-- adds latency to every cached request. Cache paths come from the
-- configuration (proxy_cache_path, fastcgi_cache_path); Debian's default
-- temp root /var/lib/nginx is always excluded.
app {
  id = "nginx",
  description = "nginx web server: proxy and FastCGI cache directories",
  detect = function()
    local pkg = apps.get("nginx") or apps.get("nginx-core") or apps.get("nginx-light") or apps.get("nginx-full")
    if not pkg then return end
    local seen = {}
    local function cache(dir, why)
      if not seen[dir] then
        seen[dir] = true
        exclude { kind = "path", value = dir, scope = { "onAccess" }, reason = why }
      end
    end
    cache("/var/lib/nginx", "nginx temp files (Debian default, " .. pkg.version .. ")")
    local files = { "/etc/nginx/nginx.conf" }
    for _, dir in ipairs({ "/etc/nginx/conf.d", "/etc/nginx/sites-enabled" }) do
      for _, f in ipairs(fs.list(dir)) do files[#files + 1] = dir .. "/" .. f end
    end
    for _, f in ipairs(files) do
      local text = fs.read(f) or ""
      for dir in text:gmatch("[%w_]*cache_path%s+(/[^%s;]+)") do
        cache(dir:gsub("/+$", ""), "nginx cache configured in " .. f)
      end
    end
  end,
}
