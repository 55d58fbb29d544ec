/* login: the client side of a SCRAM-SHA-256(-PLUS) login through GNU SASL;
 * no I/O. */
#pragma once

#include <stddef.h>

#define LOGIN_MECH_SCRAM       "SCRAM-SHA-256"
#define LOGIN_MECH_SCRAM_PLUS  "SCRAM-SHA-256-PLUS"

enum login_result {
	LOGIN_CONTINUE, /* send *out, wait for the server's next message */
	LOGIN_SUCCESS,  /* the server proved it holds the verifier */
	LOGIN_FAILURE,  /* a malformed server message or a wrong server proof */
};

/* Starts a login as user with password.  cb/cblen: the connection's
 * tls-exporter bytes (RFC 9266) on TLS, which selects
 * SCRAM-SHA-256-PLUS; NULL/0 selects SCRAM-SHA-256.  The caller checks
 * that the server offered login_mechanism(): on TLS the client never falls
 * back to the mechanism without channel binding.  The password is copied.
 * Returns 0, -EINVAL (empty user or password) or -ENOMEM. */
struct login;
int login_start(struct login **out, const char *user, const char *password,
		const unsigned char *cb, size_t cblen);

/* The mechanism login_start chose. */
const char *login_mechanism(const struct login *l);

/* First call with in = NULL, inlen = 0: *out is client-first (send it as
 * the initial response of AUTH).  Then one call per server message:
 * server-first gives client-final (LOGIN_CONTINUE), server-final gives
 * LOGIN_SUCCESS.  Only LOGIN_SUCCESS together with the server's OK means
 * logged in.  *out (NUL-terminated, malloc'd) is the caller's to free.
 * Returns a login_result or -ENOMEM. */
int login_step(struct login *l, const char *in, size_t inlen, char **out, size_t *outlen);

void login_free(struct login *l);
