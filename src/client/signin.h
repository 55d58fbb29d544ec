/* signin: tcpfile's login on a fresh connection: the mechanism the greeting
 * offers, the AUTH exchange (SCRAM through login.c), the server's proof. */
#pragma once

#include <stdbool.h>

struct client;

/* Picks the mechanism from the greeting's auth= list (comma-separated):
 * on TLS (tls true) only SCRAM-SHA-256-PLUS, on plain TCP SCRAM-SHA-256.
 * Returns 0 with *mech set, -ENOENT when nothing is offered, -EPROTO when
 * a TLS connection offers SCRAM-SHA-256 without -PLUS (a downgrade: never
 * followed), or -ENOTSUP when only mechanisms we do not use are offered. */
int signin_pick(const char *offered, bool tls, const char **mech);

/* Logs in as c->sec.user with c->password over the connection that
 * client_connect has just greeted, then wipes the password.  Succeeds
 * only when the server answers OK and its server-final message proves it
 * holds the user's verifier (login_step says LOGIN_SUCCESS).  Reports
 * failures: 77 (CLIENT_FAIL_LOGIN) for 535, 538, no safe mechanism, no
 * channel binding, or a server proof that does not verify; 76 for lines
 * that make no sense; a broken connection as client_error_connection.
 * Returns 0 or a negative errno; the caller closes the connection then. */
int signin_run(struct client *c);
