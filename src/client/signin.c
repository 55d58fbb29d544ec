/* signin: tcpfile's login on a fresh connection: the mechanism the greeting
 * offers, the AUTH exchange (SCRAM through login.c), the server's proof. */
#include "signin.h"
#include "cryptomod.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "login.h"
#include "tls.h"

/* A SCRAM message fits a protocol line with room to spare. */
#define SIGNIN_MSG_MAX PROTO_MAX_LINE
/* A user name is cut to this in messages. */
#define SIGNIN_USER_SHOWN 128

/* True when the comma-separated list holds name exactly. */
static bool signin_offers(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (len == n && memcmp(p, name, n) == 0)
			return true;
		if (!comma)
			break;
		p = comma + 1;
	}
	return false;
}

int signin_pick(const char *offered, bool tls, const char **mech)
{
	if (!offered || !*offered)
		return -ENOENT;
	if (tls) {
		if (signin_offers(offered, LOGIN_MECH_SCRAM_PLUS)) {
			*mech = LOGIN_MECH_SCRAM_PLUS;
			return 0;
		}
		return signin_offers(offered, LOGIN_MECH_SCRAM) ? -EPROTO : -ENOTSUP;
	}
	if (signin_offers(offered, LOGIN_MECH_SCRAM)) {
		*mech = LOGIN_MECH_SCRAM;
		return 0;
	}
	return -ENOTSUP;
}

/* The exchange's state, for the helpers below. */
struct signin {
	struct client *c;
	struct login *login;
	char what[96 + 2 * SIGNIN_USER_SHOWN];
	char line[PROTO_MAX_LINE + 1];
	char b64[PROTO_MAX_LINE + 1];
	unsigned char msg[SIGNIN_MSG_MAX];
};

/* Reports the mechanism choice's failure.  Returns -EPERM. */
static int signin_error_pick(struct signin *s, int r)
{
	struct client *c = s->c;

	if (r == -ENOENT)
		client_error(c, CLIENT_FAIL_LOGIN, "%s: %s offers no login on this %s",
			     s->what, c->server.display,
			     c->server.tls ? "connection" :
			     "plain connection (a server offers logins over plain TCP to "
			     "other hosts only if told to: use tcps://)");
	else if (r == -EPROTO)
		client_error(c, CLIENT_FAIL_LOGIN,
			     "%s: %s offers only %s on a TLS connection, not %s: refusing a "
			     "login without channel binding (a man in the middle?)",
			     s->what, c->server.display, LOGIN_MECH_SCRAM, LOGIN_MECH_SCRAM_PLUS);
	else
		client_error(c, CLIENT_FAIL_LOGIN, "%s: no mechanism this client uses "
			     "among those offered (auth=%s)", s->what, c->auth_offered);
	return -EPERM;
}

/* Sends out[0..len) (a SASL message) as the AUTH line (first) or a "+"
 * line.  Returns 0 or a negative errno (reported). */
static int signin_send(struct signin *s, const char *mech, const char *out, size_t len)
{
	int n;

	n = proto_base64_encode(out, len, s->b64, sizeof(s->b64));
	if (n >= 0)
		n = mech ? proto_format_auth(s->line, sizeof(s->line), mech, s->b64)
			 : proto_format_sasl(s->line, sizeof(s->line), s->b64);
	explicit_bzero(s->b64, sizeof(s->b64));
	if (n < 0) {
		client_error(s->c, CLIENT_FAIL_PERMANENT, "%s: message too long", s->what);
		return n;
	}
	n = client_send(s->c, s->what, s->line, (size_t)n);
	explicit_bzero(s->line, sizeof(s->line));
	return n;
}

/* Feeds one server message (base64 text b64[0..len)) to the SCRAM client;
 * its answer goes to *out (to free).  Returns a login_result or a
 * negative errno: -EPROTO for base64 that does not decode (reported). */
static int signin_step(struct signin *s, const char *b64, size_t len, char **out,
		       size_t *outlen)
{
	int n = proto_base64_decode(b64, len, s->msg, sizeof(s->msg));

	if (n < 0) {
		*out = NULL;
		client_error(s->c, CLIENT_FAIL_PROTOCOL, "%s: the server's message is not "
			     "base64", s->what);
		return -EPROTO;
	}
	return login_step(s->login, (const char *)s->msg, (size_t)n, out, outlen);
}

/* The server's final answer to the exchange.  Returns 0 when logged in. */
static int signin_finish(struct signin *s, const struct proto_status *st)
{
	struct client *c = s->c;
	const char *data;
	char *out = NULL;
	size_t len, outlen;
	int r;

	if (!st->ok) {
		if (st->code == PROTO_ERR_AUTH_FAILED)
			client_error(c, CLIENT_FAIL_LOGIN, "%s: authentication failed "
				     "(wrong user name or password)", s->what);
		else if (st->code == PROTO_ERR_ENCRYPTION)
			client_error(c, CLIENT_FAIL_LOGIN, "%s: %d %s: %s wants logins "
				     "encrypted: use -s tcps://%s", s->what, st->code,
				     proto_code_text(st->code), c->server.display,
				     c->server.host);
		else
			client_error_status(c, s->what, st);
		return -EACCES;
	}
	/* The server's proof: without it this could be anyone who let us in. */
	if (!proto_reply_get(st->text, "data", &data, &len) || !data) {
		client_error(c, CLIENT_FAIL_LOGIN, "%s: the server sent no proof "
			     "(server-final message): not trusting it", s->what);
		return -EACCES;
	}
	r = signin_step(s, data, len, &out, &outlen);
	free(out);
	if (r == -EPROTO)
		return r;
	if (r < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", s->what, strerror(-r));
		return r;
	}
	if (r != LOGIN_SUCCESS) {
		client_error(c, CLIENT_FAIL_LOGIN, "%s: the server's proof does not verify: "
			     "it does not hold this account (a man in the middle?)", s->what);
		return -EACCES;
	}
	c->logged_in = true;
	return 0;
}

/* The exchange after AUTH: server-first, client-final, the answer.
 * Returns 0 or a negative errno (reported). */
static int signin_exchange(struct signin *s)
{
	struct client *c = s->c;
	struct proto_status st;
	const char *b64;
	size_t b64_len, len, outlen;
	char *line, *out;
	bool sent_final = false;
	int r;

	for (;;) {
		r = client_read_line(c, s->what, &line, &len);
		if (r < 0)
			return r;
		if (line[0] != '+')
			break;
		if (sent_final || proto_parse_sasl(line, len, &b64, &b64_len) < 0)
			return client_error_reply(c, s->what, line);
		r = signin_step(s, b64, b64_len, &out, &outlen);
		if (r == LOGIN_CONTINUE)
			r = signin_send(s, NULL, out, outlen);
		else if (r >= 0)
			r = client_error_reply(c, s->what, line);
		else if (r != -EPROTO)
			client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", s->what, strerror(-r));
		if (out) {
			explicit_bzero(out, outlen);
			free(out);
		}
		if (r < 0)
			return r;
		sent_final = true;
	}
	if (proto_parse_status(line, &st) < 0)
		return client_error_reply(c, s->what, line);
	return signin_finish(s, &st);
}

int signin_run(struct client *c)
{
	unsigned char cb[TLS_EXPORTER_LEN];
	struct signin *s;
	const char *mech = NULL;
	char user[SIGNIN_USER_SHOWN];
	char *out = NULL;
	size_t outlen = 0;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s) {
		client_forget_password(c);
		client_error(c, CLIENT_FAIL_PERMANENT, "login: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	s->c = c;
	snprintf(s->what, sizeof(s->what), "login as %s",
		 client_escape(user, sizeof(user), c->sec.user, strlen(c->sec.user)));
	r = signin_pick(c->auth_offered, c->server.tls, &mech);
	if (r < 0) {
		r = signin_error_pick(s, r);
		goto out;
	}
	if (c->server.tls && tls_conn_exporter(&c->conn, cb) < 0) {
		client_error(c, CLIENT_FAIL_LOGIN, "%s: this TLS connection has no tls-exporter "
			     "channel binding (TLS 1.2 without extended master secret)", s->what);
		r = -EPERM;
		goto out;
	}
	if (!c->password) {
		client_error(c, CLIENT_FAIL_LOGIN, "%s: no password", s->what);
		r = -EPERM;
		goto out;
	}
	r = login_start(&s->login, c->sec.user, c->password, c->server.tls ? cb : NULL,
			c->server.tls ? sizeof(cb) : 0);
	/* login.c holds its own copy now. */
	client_forget_password(c);
	explicit_bzero(cb, sizeof(cb));
	if (r < 0) {
		client_error(c, r == -EINVAL ? CLIENT_FAIL_LOGIN : CLIENT_FAIL_PERMANENT,
			     "%s: %s", s->what, r == -EINVAL ? "empty user name or password"
					       : r == -ELIBACC ? CRYPTOMOD_MISSING : strerror(-r));
		goto out;
	}
	r = login_step(s->login, NULL, 0, &out, &outlen);
	if (r == LOGIN_CONTINUE) {
		r = signin_send(s, login_mechanism(s->login), out, outlen);
	} else {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: SCRAM client failed to start",
			     s->what);
		r = r < 0 ? r : -EIO;
	}
	free(out);
	if (r == 0)
		r = signin_exchange(s);
out:
	client_forget_password(c);
	login_free(s->login);
	explicit_bzero(s, sizeof(*s));
	free(s);
	return r;
}
