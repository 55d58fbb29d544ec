/* client: tcpfile's connection, replies, ls/stat/rm, errors and exit status. */
#include "client.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "build_config.h"
#include "credentials.h"
#include "parse.h"
#include "signin.h"

/* A server text is cut to this in messages. */
#define CLIENT_TEXT_MAX 512

/* ---- server address ---- */

int client_server_parse(const char *spec, struct client_server *srv)
{
	const char *host, *port = NULL;
	size_t host_len;
	uint64_t port_num = CLIENT_DEFAULT_PORT;
	bool v6 = false, tls = false;

	if (!spec)
		return -EINVAL;
	if (strncasecmp(spec, "tcps://", 7) == 0) {
		tls = true;
		port_num = CLIENT_DEFAULT_TLS_PORT;
		spec += 7;
	} else if (strncasecmp(spec, "tcp://", 6) == 0) {
		spec += 6;
	}
	if (!*spec)
		return -EINVAL;
	host = spec;
	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');

		if (!end)
			return -EINVAL;
		host = spec + 1;
		host_len = (size_t)(end - host);
		v6 = true;
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return -EINVAL;
	} else {
		const char *colon = strchr(spec, ':');

		if (colon && strchr(colon + 1, ':')) {
			/* Two colons: a bare IPv6 address, which cannot carry a
			 * port without brackets. */
			host_len = strlen(spec);
			v6 = true;
		} else if (colon) {
			host_len = (size_t)(colon - spec);
			port = colon + 1;
		} else {
			host_len = strlen(spec);
		}
	}
	if (host_len == 0 || host_len >= sizeof(srv->host) || memchr(host, '/', host_len))
		return -EINVAL;
	if (port && (parse_u64(port, &port_num) < 0 || port_num == 0 ||
		     port_num > 65535))
		return -EINVAL;

	memcpy(srv->host, host, host_len);
	srv->host[host_len] = '\0';
	snprintf(srv->port, sizeof(srv->port), "%u", (unsigned)port_num);
	snprintf(srv->display, sizeof(srv->display), v6 ? "[%s]:%s" : "%s:%s",
		 srv->host, srv->port);
	srv->tls = tls;
	srv->port_given = port != NULL;
	return 0;
}

/* ---- lifecycle and errors ---- */

void client_init(struct client *c, const struct client_server *srv,
		 enum digest_alg alg, bool progress_enabled)
{
	*c = (struct client){ .server = *srv, .alg = alg, .gone = true };
	c->conn.fd = -1;
	progress_init(&c->progress, STDERR_FILENO, progress_enabled);
}

void client_disconnect(struct client *c)
{
	if (c->conn.fd >= 0) {
		/* Nothing unsent can be lost here: every request that matters
		 * was answered, or its failure is already reported. */
		conn_close(&c->conn);
		linebuf_finish(&c->lb);
	}
	c->gone = true;
}

void client_set_security(struct client *c, const struct client_security *sec)
{
	client_forget_password(c);
	c->sec = *sec;
}

void client_forget_password(struct client *c)
{
	credentials_free(c->password);
	c->password = NULL;
}

void client_finish(struct client *c)
{
	progress_end(&c->progress);
	client_disconnect(c);
	client_forget_password(c);
}

void client_error(struct client *c, enum client_fail kind, const char *fmt, ...)
{
	va_list ap;

	progress_clear(&c->progress);
	fputs("tcpfile: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	c->failures[kind]++;
}

char *client_escape(char *out, size_t cap, const char *in, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char b = (unsigned char)in[i];

		if (b < 0x20 || b == 0x7F) {
			if (o + 4 >= cap)
				break;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[b >> 4];
			out[o++] = hex[b & 0xF];
		} else {
			if (o + 1 >= cap)
				break;
			out[o++] = (char)b;
		}
	}
	out[o] = '\0';
	return out;
}

char *client_what(char *buf, size_t cap, const char *verb, const char *a,
		  const char *b)
{
	size_t n;

	snprintf(buf, cap, "%s ", verb);
	n = strlen(buf);
	client_escape(buf + n, cap - n, a, strlen(a));
	n += strlen(buf + n);
	if (!b)
		return buf;
	snprintf(buf + n, cap - n, " → ");
	n += strlen(buf + n);
	client_escape(buf + n, cap - n, b, strlen(b));
	return buf;
}

void client_error_status(struct client *c, const char *what,
			 const struct proto_status *st)
{
	char text[CLIENT_TEXT_MAX];

	if (st->text[0])
		client_escape(text, sizeof(text), st->text, strlen(st->text));
	else
		snprintf(text, sizeof(text), "%s", proto_code_text(st->code));
	client_error(c, proto_code_is_temporary(st->code) ? CLIENT_FAIL_TEMPORARY
							   : CLIENT_FAIL_PERMANENT,
		     "%s: %d %s%s", what, st->code, text,
		     st->code == PROTO_ERR_LOGIN_NEEDED && !c->logged_in && !c->sec.user ?
		     " (log in with -u USER)" : "");
	client_note_status(c, st);
}

void client_note_status(struct client *c, const struct proto_status *st)
{
	if (!st->ok && (st->code == PROTO_ERR_SHUTTING_DOWN ||
			st->code == PROTO_ERR_TIMEOUT)) {
		c->closing = true;
		c->gone = true;
	}
}

void client_error_connection(struct client *c, const char *what, int err)
{
	enum client_fail kind = c->closing ? CLIENT_FAIL_TEMPORARY : CLIENT_FAIL_PROTOCOL;

	if (err == -EAGAIN || err == -ETIMEDOUT)
		client_error(c, CLIENT_FAIL_TEMPORARY, "%s: timed out waiting for %s",
			     what, c->server.display);
	else if (err == 0 || err == -EPROTO)
		client_error(c, kind, "%s: connection closed by %s", what,
			     c->server.display);
	else if (err == -EMSGSIZE)
		client_error(c, CLIENT_FAIL_PROTOCOL, "%s: reply line too long", what);
	else
		client_error(c, kind, "%s: connection to %s: %s", what,
			     c->server.display, strerror(-err));
	c->gone = true;
}

int client_exit_status(const struct client *c)
{
	if (c->failures[CLIENT_FAIL_UNAVAILABLE])
		return CLIENT_EXIT_UNAVAILABLE;
	if (c->failures[CLIENT_FAIL_PROTOCOL])
		return CLIENT_EXIT_PROTOCOL;
	if (c->failures[CLIENT_FAIL_LOGIN])
		return CLIENT_EXIT_NOPERM;
	if (c->failures[CLIENT_FAIL_PERMANENT])
		return CLIENT_EXIT_FAILED;
	if (c->failures[CLIENT_FAIL_TEMPORARY])
		return CLIENT_EXIT_TEMPFAIL;
	return CLIENT_EXIT_OK;
}

/* ---- connecting ---- */

static int client_wait_connected(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int n, err = 0;

	do
		n = poll(&pfd, 1, CLIENT_CONNECT_TIMEOUT_MS);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ETIMEDOUT;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return err ? -err : 0;
}

/* Returns a connected, blocking socket or -errno. */
static int client_connect_addr(const struct addrinfo *ai)
{
	int fd, r;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    ai->ai_protocol);
	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			r = -errno;
			goto err_close_fd;
		}
		r = client_wait_connected(fd);
		if (r < 0)
			goto err_close_fd;
	}
	r = fd_set_nonblock(fd, false);
	if (r < 0)
		goto err_close_fd;
	return fd;

err_close_fd:
	(void)close(fd);
	return r;
}

/* The TLS handshake on the connected socket fd (taken over), within
 * CLIENT_CONNECT_TIMEOUT_MS.  A refused handshake (the certificate does
 * not verify, is not the pinned one, no ALPN tcpfile/2) is a protocol
 * failure (76), with a hint at what to do; a timeout a temporary one. */
static int client_handshake(struct client *c, int fd)
{
	struct tls_client_opts o = { .host = c->server.host, .pin = c->sec.pin };
	char err[TLS_ERROR_MAX];
	const char *hint = "";
	int r;

	if (!c->sec.tls_ctx) {
		close(fd);
		client_error(c, CLIENT_FAIL_PERMANENT, "connect to %s: no TLS context",
			     c->server.display);
		return -EINVAL;
	}
	r = tls_conn_connect(&c->conn, fd, c->sec.tls_ctx, &o, CLIENT_CONNECT_TIMEOUT_MS,
			     err, sizeof(err));
	if (r == 0)
		return 0;
	c->conn.fd = -1;
	if (strstr(err, "not the pinned certificate"))
		hint = " (--pin names another certificate)";
	else if (strstr(err, "hostname mismatch") || strstr(err, "IP address mismatch"))
		hint = " (the certificate is not issued for this host name or address)";
	else if (strstr(err, "certificate verify failed"))
		hint = c->sec.cafile ?
		       " (not trusted by --cafile; a self-signed server needs --pin sha256:HEX)" :
		       " (not trusted by the system's CA store: give its CA with --cafile FILE,"
		       " or pin it with --pin sha256:HEX)";
	else if (strstr(err, "ALPN") || strstr(err, "no application protocol"))
		hint = " (the server does not speak tcpfile/2 over TLS: is this a tcpfile server?)";
	else if (strstr(err, "wrong version number") || strstr(err, "packet length too long"))
		hint = " (no TLS on this port: a plain tcpfile server is tcp://HOST[:PORT])";
	client_error(c, r == -ETIMEDOUT ? CLIENT_FAIL_TEMPORARY : CLIENT_FAIL_PROTOCOL,
		     "connect to tcps://%s: %s%s", c->server.display, err, hint);
	return r;
}

/* Reports a greeting line that names no version we speak: the versions
 * are its second token. */
static void client_error_version(struct client *c, const char *line)
{
	const char *cursor = line, *end = line + strlen(line);
	const char *tok = "?", *versions = "?";
	size_t len = 1, versions_len = 1;
	char text[CLIENT_TEXT_MAX];

	if (proto_next_token(&cursor, end, &tok, &len) &&
	    proto_next_token(&cursor, end, &tok, &len)) {
		versions = tok;
		versions_len = len;
	}
	client_error(c, CLIENT_FAIL_PROTOCOL,
		     "connect: %s speaks protocol %s, this client speaks %d",
		     c->server.display, client_escape(text, 64, versions, versions_len),
		     PROTO_VERSION);
}

/* An ERR in place of the greeting or the HELLO's answer: the server is
 * busy or stopping (421), refuses this host (553), or does not take our
 * HELLO (500, 505). */
static int client_error_refused(struct client *c, const struct proto_status *st)
{
	char what[sizeof(c->server.display) + 16];

	snprintf(what, sizeof(what), "connect to %s", c->server.display);
	if (st->code == PROTO_ERR_BAD_REQUEST || st->code == PROTO_ERR_VERSION) {
		char text[CLIENT_TEXT_MAX];

		client_error(c, CLIENT_FAIL_PROTOCOL, "%s: HELLO refused: %d %s", what,
			     st->code, client_escape(text, sizeof(text), st->text,
						     strlen(st->text)));
		c->gone = true;
	} else {
		client_error_status(c, what, st);
	}
	return -ECONNREFUSED;
}

/* Reads the greeting ("TCPFILE <versions> <tokens>") and keeps what it
 * offers for logins (auth=). */
static int client_read_greeting(struct client *c)
{
	const char *what = "connect";
	char text[CLIENT_TEXT_MAX];
	struct proto_hello h;
	struct proto_status st;
	const char *value;
	size_t len, value_len;
	char *line;
	int r;

	r = linebuf_read_line(&c->lb, &line, &len);
	if (r == -EAGAIN) {
		/* All workers busy: the connection waits in the backlog. */
		client_error(c, CLIENT_FAIL_TEMPORARY, "%s: no greeting from %s within %d s",
			     what, c->server.display, CLIENT_CONNECT_TIMEOUT_MS / 1000);
		return r;
	}
	if (r <= 0) {
		client_error_connection(c, what, r);
		return r < 0 ? r : -ECONNRESET;
	}
	if (strncmp(line, "ERR ", 4) == 0 && proto_parse_status(line, &st) == 0)
		return client_error_refused(c, &st);
	r = proto_parse_greeting(line, len, &h);
	if (r == -EPROTONOSUPPORT) {
		client_error_version(c, line);
		return r;
	}
	if (r < 0) {
		client_error(c, CLIENT_FAIL_PROTOCOL, "%s: %s is not a tcpfile server: %s",
			     what, c->server.display, client_escape(text, 80, line, len));
		return r;
	}
	c->auth_offered[0] = '\0';
	if (proto_hello_has_cap(&h, "auth", &value, &value_len) && value &&
	    value_len < sizeof(c->auth_offered)) {
		memcpy(c->auth_offered, value, value_len);
		c->auth_offered[value_len] = '\0';
	}
	return 0;
}

/* Reads the answer to our HELLO: "OK version=2 <enabled caps>". */
static int client_read_hello_reply(struct client *c)
{
	struct proto_status st;
	int r;

	r = client_read_status(c, "connect", &st);
	if (r < 0)
		return r;
	if (!st.ok)
		return client_error_refused(c, &st);
	if (client_parse_hello_reply(st.text) < 0)
		return client_error_reply(c, "connect", st.text);
	return 0;
}

/* Sends the HELLO without waiting for the greeting, then reads both.  A
 * failed send is reported only after the greeting: a server that refuses
 * us says why there, then closes. */
static int client_greet(struct client *c)
{
	char hello[PROTO_MAX_LINE];
	int len, sent, r;

	/* "auth" asks the answer to confirm the login capability. */
	len = proto_format_hello(hello, sizeof(hello), "tcpfile/" TCPFILED_VERSION,
				 c->sec.user ? "auth" : NULL);
	if (len < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "connect: %s", strerror(-len));
		return len;
	}
	sent = conn_write(&c->conn, hello, (size_t)len, false);
	r = client_read_greeting(c);
	if (r < 0)
		return r;
	if (sent < 0) {
		client_error_connection(c, "connect", sent);
		return sent;
	}
	return client_read_hello_reply(c);
}

int client_connect(struct client *c)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV,
	};
	struct addrinfo *res, *ai;
	int r, fd = -ECONNREFUSED;

	client_disconnect(c);
	if (c->sec.user && !c->password) {
		/* Asked before connecting: the server does not wait for a
		 * prompt to be answered. */
		char err[CREDENTIALS_ERROR_MAX], user[128];

		r = credentials_get(&c->server, c->sec.user, &c->password, err, sizeof(err));
		if (r < 0) {
			client_error(c, r == -ENOMEM ? CLIENT_FAIL_PERMANENT : CLIENT_FAIL_LOGIN,
				     "login as %s: %s", client_escape(user, sizeof(user), c->sec.user,
								      strlen(c->sec.user)), err);
			return r;
		}
	}
	r = getaddrinfo(c->server.host, c->server.port, &hints, &res);
	if (r != 0) {
		client_error(c, CLIENT_FAIL_UNAVAILABLE, "connect to %s: %s",
			     c->server.display,
			     r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return -EHOSTUNREACH;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = client_connect_addr(ai);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		client_error(c, CLIENT_FAIL_UNAVAILABLE, "connect to %s: %s",
			     c->server.display, strerror(-fd));
		return fd;
	}

	if (c->server.tls) {
		r = client_handshake(c, fd);
		if (r < 0)
			return r;
	} else {
		conn_init_plain(&c->conn, fd);
	}
	r = linebuf_init(&c->lb, &c->conn, PROTO_MAX_LINE);
	if (r < 0) {
		conn_close(&c->conn);
		client_error(c, CLIENT_FAIL_PERMANENT, "connect: %s", strerror(-r));
		return r;
	}
	c->gone = false;
	c->closing = false;
	c->logged_in = false;

	r = socket_set_timeouts(fd, CLIENT_CONNECT_TIMEOUT_MS);
	if (r == 0)
		r = client_greet(c);
	else
		client_error(c, CLIENT_FAIL_PERMANENT, "connect: %s", strerror(-r));
	if (r == 0) {
		r = socket_set_timeouts(fd, CLIENT_IO_TIMEOUT_MS);
		if (r < 0)
			client_error(c, CLIENT_FAIL_PERMANENT, "connect: %s", strerror(-r));
	}
	if (r == 0 && c->sec.user)
		r = signin_run(c);
	if (r < 0) {
		client_disconnect(c);
		return r;
	}
	return 0;
}

/* ---- requests and replies ---- */

const char *client_alg_arg(const struct client *c, char *buf, size_t cap)
{
	if (c->alg == DIGEST_XXH3_128)
		return NULL;
	snprintf(buf, cap, "alg=%s", digest_alg_name(c->alg));
	return buf;
}

int client_format_request(char *buf, size_t cap, const char *verb,
			  const char *path, const char *args)
{
	size_t path_len = strlen(path), verb_len = strlen(verb);
	size_t args_len = args ? strlen(args) : 0;
	size_t n;
	int r;

	if (path_len == 0)
		return -EINVAL;
	if (path_len > PROTO_MAX_PATH)
		return -ENAMETOOLONG;
	/* The line, LF included, must fit PROTO_MAX_LINE; buf needs a NUL. */
	if (cap > PROTO_MAX_LINE + 1)
		cap = PROTO_MAX_LINE + 1;
	if (verb_len + 2 > cap)
		return -ENAMETOOLONG;
	memcpy(buf, verb, verb_len);
	buf[verb_len] = ' ';
	n = verb_len + 1;
	r = proto_encode_path(path, path_len, buf + n, cap - n);
	if (r < 0)
		return r;
	n += (size_t)r;
	if (args_len) {
		if (n + 1 + args_len + 2 > cap)
			return -ENAMETOOLONG;
		buf[n++] = ' ';
		memcpy(buf + n, args, args_len);
		n += args_len;
	}
	if (n + 2 > cap)
		return -ENAMETOOLONG;
	buf[n++] = '\n';
	buf[n] = '\0';
	return (int)n;
}

int client_send(struct client *c, const char *what, const char *buf, size_t len)
{
	int r = conn_write(&c->conn, buf, len, false);

	if (r < 0)
		client_error_connection(c, what, r);
	return r;
}

int client_read_status(struct client *c, const char *what, struct proto_status *st)
{
	char *line;
	size_t len;
	int r;

	r = linebuf_read_line(&c->lb, &line, &len);
	if (r <= 0) {
		client_error_connection(c, what, r);
		return r < 0 ? r : -ECONNRESET;
	}
	if (proto_parse_status(line, st) < 0)
		return client_error_reply(c, what, line);
	return 0;
}

int client_error_reply(struct client *c, const char *what, const char *text)
{
	char esc[CLIENT_TEXT_MAX];

	client_error(c, CLIENT_FAIL_PROTOCOL, "%s: unexpected reply: %s", what,
		     client_escape(esc, 80, text, strlen(text)));
	c->gone = true;
	return -EPROTO;
}

int client_read_line(struct client *c, const char *what, char **line, size_t *len)
{
	int r = linebuf_read_line(&c->lb, line, len);

	if (r <= 0) {
		client_error_connection(c, what, r);
		return r < 0 ? r : -ECONNRESET;
	}
	return 0;
}

int client_error_line(struct client *c, const char *what, const char *line)
{
	struct proto_status st;

	if (strncmp(line, "ERR ", 4) != 0 || proto_parse_status(line, &st) < 0)
		return client_error_reply(c, what, line);
	client_error_status(c, what, &st);
	c->gone = true;
	return -EPROTO;
}

/* NAME=N among the tokens of text.  Returns 0 or -EPROTO. */
static int client_reply_u64(const char *text, const char *name, uint64_t *out)
{
	const char *value;
	size_t len;

	if (!proto_reply_get(text, name, &value, &len) || !value)
		return -EPROTO;
	return parse_u64_n(value, len, out) < 0 ? -EPROTO : 0;
}

int client_parse_put_reply(const char *text, uint64_t *size,
			   struct digest_value *digest)
{
	const char *value;
	size_t len;

	if (client_reply_u64(text, "size", size) < 0)
		return -EPROTO;
	if (!proto_reply_get(text, "digest", &value, &len) || !value ||
	    digest_parse(value, len, digest) < 0)
		return -EPROTO;
	return 0;
}

int client_parse_get_reply(const char *text, struct client_get_reply *out)
{
	const char *value;
	size_t len;

	if (client_reply_u64(text, "size", &out->size) < 0)
		return -EPROTO;
	if (!proto_reply_get(text, "mtime", &value, &len) || !value ||
	    proto_parse_mtime(value, len, &out->mtime_sec, &out->mtime_nsec) < 0)
		return -EPROTO;
	if (!proto_reply_get(text, "mode", &value, &len) || !value ||
	    proto_parse_mode(value, len, &out->mode) < 0)
		return -EPROTO;
	return 0;
}

int client_parse_hello_reply(const char *text)
{
	uint64_t version;

	if (client_reply_u64(text, "version", &version) < 0 || version != PROTO_VERSION)
		return -EPROTO;
	return 0;
}

char *client_digest_text(const struct digest_value *d, char *buf, size_t cap)
{
	if (digest_format(d, buf, cap) < 0)
		snprintf(buf, cap, "?");
	return buf;
}

/* ---- arguments ---- */

char *client_remote_normalize(char *remote)
{
	size_t len;

	while (*remote == '/')
		remote++;
	len = strlen(remote);
	while (len > 0 && remote[len - 1] == '/')
		remote[--len] = '\0';
	return len ? remote : NULL;
}

const char *client_basename(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* ---- ls, stat, rm ---- */

/* Sends one request and reads its status.  Returns 1 for OK (st filled),
 * 0 for a reported ERR, or a negative errno (reported). */
static int client_simple_request(struct client *c, const char *what,
				 const char *verb, const char *path,
				 struct proto_status *st)
{
	char line[PROTO_MAX_LINE + 1];
	int r;

	r = client_format_request(line, sizeof(line), verb, path, NULL);
	if (r < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: path too long", what);
		return r;
	}
	r = client_send(c, what, line, (size_t)r);
	if (r < 0)
		return r;
	r = client_read_status(c, what, st);
	if (r < 0)
		return r;
	if (!st->ok) {
		client_error_status(c, what, st);
		return 0;
	}
	return 1;
}

/* Local time: "2026-11-21 14:05" for ls -l, with seconds and the UTC
 * offset for stat. */
static void client_format_time(char *buf, size_t cap, int64_t t, bool full)
{
	time_t tt = (time_t)t;
	struct tm tm;
	size_t n = 0;

	if (localtime_r(&tt, &tm))
		n = full ? strftime(buf, cap, "%Y-%m-%d %H:%M:%S %z", &tm)
			 : strftime(buf, cap, "%Y-%m-%d %H:%M", &tm);
	if (n == 0)
		snprintf(buf, cap, "%" PRId64, t);
}

static char client_type_char(char type)
{
	switch (type) {
	case 'f':
		return '-';
	case 'd':
		return 'd';
	case 'l':
		return 'l';
	default:
		return '?';
	}
}


/* What ls keeps of an entry until all have arrived and are sorted. */
struct client_ls_entry {
	char *name;             /* decoded, NUL-terminated */
	char type;
	uint64_t size;
	int64_t mtime;
};

struct client_listing {
	struct client_ls_entry *v;
	size_t n;
	size_t cap;
};

static void client_listing_free(struct client_listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	*l = (struct client_listing){ 0 };
}

/* Returns 0 or -ENOMEM. */
static int client_listing_add(struct client_listing *l, const struct proto_entry *e)
{
	struct client_ls_entry *v;
	char *name;

	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;

		v = reallocarray(l->v, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	name = strndup(e->name, e->name_len);
	if (!name)
		return -ENOMEM;
	l->v[l->n++] = (struct client_ls_entry){
		.name = name, .type = e->type, .size = e->size, .mtime = e->mtime_sec,
	};
	return 0;
}

/* Names never hold a NUL, so strcmp() is the bytewise order. */
static int client_ls_compare(const void *a, const void *b)
{
	const struct client_ls_entry *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static void client_ls_print(const struct client_listing *l, bool long_format)
{
	char shown[4 * PROTO_MAX_PATH + 1];
	char when[64];

	for (size_t i = 0; i < l->n; i++) {
		const struct client_ls_entry *e = &l->v[i];

		client_escape(shown, sizeof(shown), e->name, strlen(e->name));
		if (long_format) {
			client_format_time(when, sizeof(when), e->mtime, false);
			printf("%c %12" PRIu64 " %s %s\n", client_type_char(e->type),
			       e->size, when, shown);
		} else {
			printf("%s\n", shown);
		}
	}
}

/* Handles the line that ends a listing: "END count=N" or "ABORT <code>
 * <text>".  Returns 0 when the listing is complete, else a negative errno
 * (reported). */
static int client_ls_end(struct client *c, const char *what, const char *line,
			 size_t len, size_t received)
{
	char esc[CLIENT_TEXT_MAX];
	struct proto_status st;
	struct proto_frame f;

	if (proto_parse_frame(line, len, &f) < 0 || f.type == PROTO_FRAME_DATA)
		return client_error_line(c, what, line);
	if (f.type == PROTO_FRAME_ABORT) {
		st = (struct proto_status){
			.code = f.code ? f.code : PROTO_ERR_INTERNAL,
			.text = f.text,
		};
		client_error_status(c, what, &st);
		return -ECANCELED;
	}
	if (!f.has_count || f.count != received) {
		client_error(c, CLIENT_FAIL_PROTOCOL, "%s: %zu entries received, then: %s",
			     what, received, client_escape(esc, 80, line, len));
		return -EPROTO;
	}
	return 0;
}

/* Reads ENTRY lines up to the END.  Returns 0 or a negative errno
 * (reported). */
static int client_ls_read(struct client *c, const char *what, struct client_listing *l)
{
	struct proto_entry *e = malloc(sizeof(*e));
	char *line;
	size_t len;
	int r;

	if (!e) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", what, strerror(ENOMEM));
		c->gone = true;
		return -ENOMEM;
	}
	for (;;) {
		r = client_read_line(c, what, &line, &len);
		if (r < 0)
			break;
		if (strncmp(line, "ENTRY ", 6) != 0) {
			r = client_ls_end(c, what, line, len, l->n);
			break;
		}
		if (proto_parse_entry(line, len, e) < 0) {
			r = client_error_reply(c, what, line);
			break;
		}
		r = client_listing_add(l, e);
		if (r < 0) {
			client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", what, strerror(-r));
			c->gone = true;
			break;
		}
	}
	free(e);
	return r;
}

void client_ls(struct client *c, const char *remote, bool long_format)
{
	char what[CLIENT_WHAT_MAX];
	struct client_listing l = { 0 };
	struct proto_status st;

	client_what(what, sizeof(what), "ls", remote, NULL);
	if (client_simple_request(c, what, "LIST", remote, &st) <= 0)
		return;
	/* The server streams the directory unsorted: the entries are kept
	 * and printed in order once the END has vouched for them. */
	if (client_ls_read(c, what, &l) == 0) {
		/* An empty listing has no array: qsort wants one all the same. */
		if (l.n)
			qsort(l.v, l.n, sizeof(*l.v), client_ls_compare);
		client_ls_print(&l, long_format);
	}
	client_listing_free(&l);
}

static const char *client_type_name(char type)
{
	switch (type) {
	case 'f':
		return "file";
	case 'd':
		return "directory";
	case 'l':
		return "symlink";
	default:
		return "other";
	}
}

void client_stat(struct client *c, const char *remote)
{
	char what[CLIENT_WHAT_MAX];
	char when[64];
	struct proto_entry *e;
	struct proto_status st;

	client_what(what, sizeof(what), "stat", remote, NULL);
	if (client_simple_request(c, what, "STAT", remote, &st) <= 0)
		return;
	e = malloc(sizeof(*e));
	if (!e) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", what, strerror(ENOMEM));
		return;
	}
	if (proto_parse_attrs(st.text, e) < 0) {
		(void)client_error_reply(c, what, st.text);
	} else {
		client_format_time(when, sizeof(when), e->mtime_sec, true);
		printf("type: %s\nsize: %" PRIu64 "\nmtime: %s\nmode: %04o\n",
		       client_type_name(e->type), e->size, when, e->mode);
	}
	free(e);
}

void client_rm(struct client *c, char *const *remotes, size_t n)
{
	char what[CLIENT_WHAT_MAX];
	struct proto_status st;
	size_t i;

	for (i = 0; i < n && !c->gone; i++) {
		client_what(what, sizeof(what), "rm", remotes[i], NULL);
		/* An ERR is reported and the rest still tried. */
		(void)client_simple_request(c, what, "DEL", remotes[i], &st);
	}
	if (i < n)
		client_error(c, c->closing ? CLIENT_FAIL_TEMPORARY : CLIENT_FAIL_PROTOCOL,
			     "rm: %zu more not attempted: no connection", n - i);
}
