/* worker: one preforked process; accepts and serves one connection at a
 * time until told to stop. */
#pragma once

#include <signal.h>

#include "access.h"
#include "confboard.h"
#include "config.h"
#include "listener.h"
#include "scoreboard.h"
#include "tls.h"
#include "users.h"

/* Runs in the child after fork(); never returns.  Every accepted
 * connection first passes admission (hosts_allow / hosts_deny, then
 * max_per_ip counted in access at index slot_no, the worker's scoreboard
 * slot); a refused one gets one ERR line and is closed.  A share root
 * that cannot be opened is logged and its fd passed to the session as -1;
 * the other shares are served.  Exit status: 0 after a graceful stop or
 * retirement, 71 (EX_OSERR) when memory, signal setup or ppoll() fails,
 * 70 (EX_SOFTWARE) at once when $TCPFILED_TEST_WORKER_EXIT is set (for
 * crash-loop tests only).  After max_requests connections (plus jitter)
 * it retires with status 0.  When the master publishes a reloaded
 * configuration on board, the connection in flight follows it from its
 * next request on, the users file included.  On a TLS listener the
 * handshake (within handshake_timeout) follows admission; a failed one is
 * logged and the connection closed. */
struct worker_args {
	const struct config *conf;
	const struct listener_set *listeners;
	struct scoreboard_slot *slot;
	struct access_table *access;
	size_t slot_no;                  /* the slot's index, for access */
	const struct confboard *board;
	unsigned generation;             /* conf's generation */
	SSL_CTX *tls_ctx;                /* for the TLS listeners; NULL without them */
	const struct users *users;       /* conf's users_file, NULL without one */
};
_Noreturn void worker_run(const struct worker_args *a);
