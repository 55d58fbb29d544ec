/* worker: one preforked process; accepts and serves one connection at a
 * time until told to stop. */
#pragma once

#include <signal.h>

#include "config.h"
#include "listener.h"
#include "scoreboard.h"

/* Runs in the child after fork(); never returns.  Exit status: 0 after a
 * graceful stop or retirement, 70 (EX_SOFTWARE) when a share root cannot
 * be opened, 71 (EX_OSERR) when signal setup or ppoll() fails.  After
 * max_requests connections (plus jitter) it retires with status 0. */
_Noreturn void worker_run(const struct config *conf,
			  const struct listener_set *listeners,
			  struct scoreboard_slot *slot);
