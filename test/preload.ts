// Tests observe logs through sinks; keep stderr quiet unless asked.
process.env.OUTPOST_LOG_QUIET ??= "1";
