/**
 * The one zod every agent-side module imports: `zod/mini`, with the English messages.
 *
 * Why mini: a classic zod schema carries its API as closures on every instance, and classic's
 * module alone costs a process ~1.5 MiB of anonymous memory (compiled probes: 2.3 MiB bare, 4.2
 * with classic and one schema, 2.75 with mini). Every host process and the query and crypto workers
 * load this instead, so none of them loads classic (issue 21, Footprint); so does the supervisor,
 * whose control plane declares its routes with core/control/openapi-route.ts rather than
 * @hono/zod-openapi (which brings classic).
 *
 * Classic sets the English locale when it loads; mini sets none, and an error would read "Invalid
 * input" with no detail. Setting it here, where `z` comes from, gives every parse the messages
 * classic gives (tests compare them), whichever loads first.
 */

import * as z from "zod/mini";
import en from "zod/v4/locales/en.js";

z.config(en());

export { z };
