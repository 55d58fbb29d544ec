/* session_auth: a connection's login: the mechanism it offers, the AUTH
 * exchange over SCRAM (auth.c), the failure delay and attempt cap, the
 * login records, and following a reloaded users file. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "monotonic.h"
#include "session_internal.h"
#include "tls.h"

/* A failed AUTH is answered this long after its AUTH line, whatever
 * failed, so timing tells nothing and guessing costs a second a try. */
#define SESSION_AUTH_DELAY_MS 1000
/* Failed AUTHs a connection may make; the last one closes it. */
#define SESSION_AUTH_MAX_FAILURES 3

const char *session_auth_offer(const struct session *s)
{
	const struct config *conf = s->ctx->conf;

	if (!conf->users_file)
		return NULL;
	if (s->tls)
		return AUTH_MECH_SCRAM_PLUS;
	return s->local || conf->allow_plaintext ? AUTH_MECH_SCRAM : NULL;
}

static void session_auth_log_failure(struct session *s, const char *mech, const char *claimed,
				     const char *reason, uint64_t start_ms)
{
	char ms[24];

	snprintf(ms, sizeof(ms), "%" PRIu64, monotonic_ms() - start_ms);
	struct log_field f[] = {
		{ "CLIENT", s->peer },
		{ "USER", claimed ? claimed : "-" },
		{ "REASON", reason },
		{ "MECH", mech },
		{ "RESULT", "refused" },
		{ "WORKER_PID", s->pid },
	};
	/* The claimed name is the client's bytes: the logger escapes them. */
	log_event(LOG_NOTICE, 0, LOG_MSGID_LOGIN, f, sizeof(f) / sizeof(f[0]),
		  "%s: login failed for user \"%s\" (%s): %s", s->peer, claimed ? claimed : "-",
		  mech, reason);
}

/* The one failure answer: after the delay counted from the AUTH line,
 * then the cap.  A stop request cuts the delay short (421, close). */
static void session_auth_fail(struct session *s, const char *mech, const char *claimed,
			      const char *reason, uint64_t start_ms)
{
	session_auth_log_failure(s, mech, claimed, reason, start_ms);
	if (session_sleep_until(s, start_ms + SESSION_AUTH_DELAY_MS) < 0) {
		session_fail(s, NULL, PROTO_ERR_SHUTTING_DOWN, "shutting down");
		s->close = true;
		return;
	}
	session_fail(s, NULL, PROTO_ERR_AUTH_FAILED, "authentication failed");
	if (++s->auth_failures >= SESSION_AUTH_MAX_FAILURES) {
		log_notice("%s: %d failed logins; closing", s->peer, SESSION_AUTH_MAX_FAILURES);
		s->close = true;
	}
}

/* Sends "+ <base64 of msg>".  Returns 0 or -errno. */
static int session_auth_send_challenge(struct session *s, const char *msg, size_t len,
				       char *b64, size_t cap)
{
	char line[PROTO_MAX_LINE];
	int n;

	if (proto_base64_encode(msg, len, b64, cap) < 0)
		return -ENOSPC;
	n = proto_format_sasl(line, sizeof(line), b64);
	if (n < 0)
		return n;
	session_send(s, line, (size_t)n, false);
	return s->close ? -EPIPE : 0;
}

/* Waits for the client's "+ ..." or "*" within the handshake timeout and
 * decodes it into buf.  Returns the length, -ECANCELED ("*"), -EINVAL (it
 * does not fit), -EPROTO
 * (another line: answered and closed), or another -errno (answered where
 * there is anyone to answer, closed). */
static int session_auth_response(struct session *s, unsigned char *buf, size_t cap)
{
	uint64_t deadline = monotonic_ms() + s->ctx->conf->handshake_timeout_ms;
	const char *b64;
	size_t len, b64_len;
	char *line;
	int r;

	s->stop_ends_wait = true;
	r = session_wait_line(s, deadline, &line, &len);
	s->stop_ends_wait = false;
	if (r == 1) {
		r = proto_parse_sasl(line, len, &b64, &b64_len);
		if (r == 0) {
			int n = proto_base64_decode(b64, b64_len, buf, cap);

			return n < 0 ? -EINVAL : n;
		}
		if (r == -ECANCELED)
			return r;
		session_fail(s, NULL, PROTO_ERR_BAD_REQUEST, "expected '+ <base64>' or '*' in AUTH");
		s->close = true;
		return -EPROTO;
	}
	if (r == -ETIMEDOUT)
		session_fail(s, NULL, PROTO_ERR_TIMEOUT, "no AUTH response in time");
	else if (r == -ESHUTDOWN || r == -EBUSY)
		session_fail(s, NULL, PROTO_ERR_SHUTTING_DOWN, "shutting down");
	else if (r == -EMSGSIZE)
		session_fail(s, NULL, PROTO_ERR_BAD_REQUEST, "line too long");
	s->close = true;
	return r == 0 ? -EPIPE : r;
}

/* AUTH, once the mechanism is the one offered: the SCRAM exchange. */
static void session_auth_exchange(struct session *s, const struct proto_auth *pa,
				  uint64_t start_ms)
{
	unsigned char cb[TLS_EXPORTER_LEN];
	unsigned char *msg = malloc(PROTO_MAX_LINE);
	char *b64 = malloc(PROTO_MAX_LINE);
	char *out = NULL;
	size_t outlen = 0;
	struct auth *a = NULL;
	const char *reason = NULL;
	char claimed[USERS_NAME_MAX * 4 + 1] = "";
	int len, r;

	if (!msg || !b64) {
		session_fail(s, NULL, PROTO_ERR_INTERNAL, "out of memory");
		goto out;
	}
	len = proto_base64_decode(pa->data, pa->data_len, msg, PROTO_MAX_LINE);
	if (s->tls && tls_conn_exporter(&s->conn, cb) < 0) {
		session_auth_fail(s, pa->mech, NULL, "no tls-exporter channel binding "
				  "(TLS 1.2 without extended master secret)", start_ms);
		goto out;
	}
	r = auth_start(&a, pa->mech, s->ctx->users, s->tls ? cb : NULL, s->tls ? sizeof(cb) : 0);
	if (r < 0 || len < 0) {
		session_fail(s, NULL, PROTO_ERR_INTERNAL, "cannot start the login");
		log_warn_errno(r < 0 ? r : len, "%s: starting a login", s->peer);
		goto out;
	}
	for (r = auth_step(a, (const char *)msg, (size_t)len, &out, &outlen);
	     r == AUTH_CONTINUE;
	     r = auth_step(a, (const char *)msg, (size_t)len, &out, &outlen)) {
		int sr = session_auth_send_challenge(s, out, outlen, b64, PROTO_MAX_LINE);

		free(out);
		out = NULL;
		if (sr < 0) {
			s->close = true;
			goto out;
		}
		len = session_auth_response(s, msg, PROTO_MAX_LINE);
		if (len == -ECANCELED || len == -EINVAL) {
			reason = len == -EINVAL ? "response too long" : "cancelled by the client";
			break;
		}
		if (len < 0) {
			reason = len == -EPROTO ? "exchange broken off by another line" :
				 "exchange not finished";
			goto out_log;
		}
	}
	if (r < 0) {
		session_fail(s, NULL, PROTO_ERR_INTERNAL, "out of memory");
		goto out;
	}
	if (auth_claimed_user(a))
		snprintf(claimed, sizeof(claimed), "%s", auth_claimed_user(a));
	if (reason || r == AUTH_FAILURE) {
		session_auth_fail(s, pa->mech, claimed[0] ? claimed : NULL,
				  reason ? reason : auth_failure_reason(a), start_ms);
		goto out;
	}
	/* AUTH_SUCCESS: the server-final message proves us to the client. */
	if (proto_base64_encode(out, outlen, b64, PROTO_MAX_LINE) < 0) {
		session_fail(s, NULL, PROTO_ERR_INTERNAL, "server-final message too long");
		goto out;
	}
	snprintf(s->user, sizeof(s->user), "%s", auth_user(a));
	session_reply(s, "OK user=%s data=%s\n", s->user, b64);
	{
		char ms[24];

		snprintf(ms, sizeof(ms), "%" PRIu64, monotonic_ms() - start_ms);
		struct log_field f[] = {
			{ "CLIENT", s->peer },
			{ "USER", s->user },
			{ "MECH", pa->mech },
			{ "RESULT", "ok" },
			{ "DURATION_MS", ms },
			{ "WORKER_PID", s->pid },
		};
		log_event(LOG_INFO, 0, LOG_MSGID_LOGIN, f, sizeof(f) / sizeof(f[0]),
			  "%s: user %s logged in (%s, %s ms)", s->peer, s->user, pa->mech, ms);
	}
	goto out;

out_log:
	if (auth_claimed_user(a))
		snprintf(claimed, sizeof(claimed), "%s", auth_claimed_user(a));
	session_auth_log_failure(s, pa->mech, claimed[0] ? claimed : NULL, reason, start_ms);
out:
	free(out);
	auth_free(a);
	free(b64);
	free(msg);
}

void session_auth_run(struct session *s, const char *line, size_t len)
{
	uint64_t start_ms = monotonic_ms();
	const char *offer = session_auth_offer(s);
	struct proto_auth pa;
	const char *why;
	int code;

	code = proto_parse_auth(line, len, &pa, &why);
	if (code) {
		session_fail(s, NULL, code, why);
		if (code == PROTO_ERR_BAD_REQUEST)
			s->close = true;
		return;
	}
	if (s->user[0]) {
		session_fail(s, NULL, PROTO_ERR_BAD_ARGUMENT, "already logged in");
		return;
	}
	if (!s->ctx->conf->users_file) {
		session_fail(s, NULL, PROTO_ERR_BAD_ARGUMENT, "this server has no logins");
		return;
	}
	if (!offer) {
		session_auth_log_failure(s, pa.mech, NULL, "plaintext login from a remote peer "
					 "(allow_plaintext = no)", start_ms);
		session_fail(s, NULL, PROTO_ERR_ENCRYPTION,
			     "logins from other hosts need TLS (tcps://)");
		return;
	}
	if (strcmp(pa.mech, offer) != 0) {
		char detail[96];

		session_auth_log_failure(s, pa.mech, NULL, "mechanism not offered", start_ms);
		snprintf(detail, sizeof(detail), "mechanism not offered here; use %s", offer);
		session_fail(s, NULL, PROTO_ERR_ENCRYPTION, detail);
		return;
	}
	session_auth_exchange(s, &pa, start_ms);
}

void session_auth_follow(struct session *s)
{
	if (!s->user[0] || users_find(s->ctx->users, s->user))
		return;
	struct log_field f[] = { { "CLIENT", s->peer }, { "USER", s->user } };
	log_event(LOG_NOTICE, 0, LOG_MSGID_LOGIN, f, 2,
		  "%s: user %s is no longer in the reloaded users file: logged out", s->peer,
		  s->user);
	s->user[0] = '\0';
}
