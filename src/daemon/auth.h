/* auth: the server side of a SCRAM-SHA-256(-PLUS) login, driven through GNU
 * SASL from stored verifiers only; no I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "users.h"

#define AUTH_MECH_SCRAM       "SCRAM-SHA-256"
#define AUTH_MECH_SCRAM_PLUS  "SCRAM-SHA-256-PLUS"
#define AUTH_CB_MAX           64        /* bytes of channel binding data */

enum auth_result {
	AUTH_CONTINUE,  /* send *out as a challenge, wait for the next response */
	AUTH_SUCCESS,   /* send *out (server-final, the server's proof) with the OK */
	AUTH_FAILURE,   /* answer the one failure reply; *out is NULL */
};

/* Process-wide set-up: GNU SASL and the random key that makes up salts for
 * unknown names.  Call once in the master before forking, so that every
 * worker shows the same made-up salt for the same unknown name (a salt that
 * changed from one connection to the next would give the name away).
 * Returns 0 or -errno.  auth_done() undoes it. */
int auth_init(void);
void auth_done(void);
/* Whether auth_init() has succeeded in this process (or the master it was
 * forked from): a worker must not start logins without it. */
bool auth_ready(void);

/* The mechanism a connection offers: -PLUS with channel binding (TLS),
 * plain SCRAM-SHA-256 without. */
const char *auth_mechanism(bool channel_binding);

/* Starts one exchange.  cb/cblen: the connection's tls-exporter bytes
 * (RFC 9266), or NULL/0 on a plain connection.  With channel binding only
 * SCRAM-SHA-256-PLUS is accepted, without it only SCRAM-SHA-256: any other
 * mech gives -EPROTONOSUPPORT.  users may be NULL (nobody can log in; every
 * name gets a made-up exchange) and must outlive the exchange.
 * Returns 0, -EPROTONOSUPPORT, -EINVAL (cblen too large) or -ENOMEM. */
struct auth;
int auth_start(struct auth **out, const char *mech, const struct users *users,
	       const unsigned char *cb, size_t cblen);

/* Feeds one client message (the initial response of AUTH, then each
 * response; may be empty) and returns what to answer.  *out (*outlen bytes,
 * NUL-terminated, malloc'd, NULL on failure) is the caller's to free.
 * Unknown names, wrong passwords, bad channel binding, replays and
 * malformed messages all end in the same AUTH_FAILURE at the same step
 * with nothing to send.  After AUTH_SUCCESS or AUTH_FAILURE every further
 * call fails.  Returns an auth_result or -ENOMEM. */
int auth_step(struct auth *a, const char *in, size_t inlen, char **out, size_t *outlen);

/* The authenticated user after AUTH_SUCCESS, NULL otherwise. */
const char *auth_user(const struct auth *a);
/* The name the client claimed (for the log only; any bytes), or NULL. */
const char *auth_claimed_user(const struct auth *a);
/* Why the exchange failed, for the server's log only: never send it. */
const char *auth_failure_reason(const struct auth *a);

void auth_free(struct auth *a);
