describe{ title = "Burst of child processes", severity = "medium", mitre = "T1499" }

-- Only bursts reach the rule: the sensor drops the rest below 30 starts per 10 s per parent.
on("process.start", function(e)
  detect{ ppid = e.ppid, example = e.cmdline }
end, { min_rate = { count = 30, window = 10, key = { "ppid" } }, coalesce = { window = 1, key = { "ppid" } } })
