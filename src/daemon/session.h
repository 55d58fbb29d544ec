/* session: one client connection, from greeting to close. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "config.h"
#include "conn.h"
#include "scoreboard.h"
#include "users.h"

/* Per-connection context, prepared by the worker. */
struct session_ctx {
	const struct config *conf;
	const int *share_fds;            /* root fd per conf->shares[i] */
	const struct users *users;       /* conf->users_file loaded; NULL: nobody */
	struct scoreboard_slot *slot;    /* may be NULL */
	/* Set asynchronously by the worker's signal handlers. */
	volatile sig_atomic_t *stop;     /* shut down: finish the request, close */
	/* Signal mask for waits: the worker's stop/retire signals are blocked
	 * except while waiting in ppoll() with this mask. */
	const sigset_t *wait_mask;
	/* True while clients queue for the pool and nobody takes them (NULL:
	 * never); at_once: as soon as one queues, without waiting to see
	 * that no idle worker takes it.  A session waiting for its client's
	 * next line then yields the worker, and a body below min_rate is
	 * judged early. */
	bool (*pressure)(void *arg, bool at_once);
	void *pressure_arg;
	/* Called before each request (NULL: never): may replace conf,
	 * share_fds and users with a reloaded configuration, which the
	 * connection then follows from that request on (a user no longer in
	 * the users file is logged out). */
	void (*refresh)(struct session_ctx *ctx, void *arg);
	void *refresh_arg;
};

/* Serves the connection c (taken over and closed: conn_init_plain for a
 * plain socket, tls_conn_accept for TLS; tls says which, for the auth=
 * offer and channel binding) from peer until the client quits, idles
 * out, breaks framing, or *stop is raised. */
void session_run(struct session_ctx *ctx, struct conn *c, bool tls,
		 const struct sockaddr_storage *peer);
