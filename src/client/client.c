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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "parse.h"

/* A server text is cut to this in messages. */
#define CLIENT_TEXT_MAX 512

/* ---- server address ---- */

int client_server_parse(const char *spec, struct client_server *srv)
{
	const char *host = spec, *port = NULL;
	size_t host_len;
	uint64_t port_num = CLIENT_DEFAULT_PORT;
	bool v6 = false;

	if (!spec || !*spec)
		return -EINVAL;
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
	if (host_len == 0 || host_len >= sizeof(srv->host))
		return -EINVAL;
	if (port && (parse_u64(port, &port_num) < 0 || port_num == 0 ||
		     port_num > 65535))
		return -EINVAL;

	memcpy(srv->host, host, host_len);
	srv->host[host_len] = '\0';
	snprintf(srv->port, sizeof(srv->port), "%u", (unsigned)port_num);
	snprintf(srv->display, sizeof(srv->display), v6 ? "[%s]:%s" : "%s:%s",
		 srv->host, srv->port);
	return 0;
}

/* ---- lifecycle and errors ---- */

void client_init(struct client *c, const struct client_server *srv,
		 enum digest_alg alg, bool progress_enabled)
{
	*c = (struct client){ .server = *srv, .alg = alg, .fd = -1, .gone = true };
	progress_init(&c->progress, STDERR_FILENO, progress_enabled);
}

void client_disconnect(struct client *c)
{
	if (c->fd >= 0) {
		/* Nothing unsent can be lost here: every request that matters
		 * was answered, or its failure is already reported. */
		(void)close(c->fd);
		linebuf_finish(&c->lb);
	}
	c->fd = -1;
	c->gone = true;
}

void client_finish(struct client *c)
{
	progress_end(&c->progress);
	client_disconnect(c);
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
		     "%s: %d %s", what, st->code, text);
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

static int client_greet(struct client *c)
{
	const char *what = "connect";
	char text[CLIENT_TEXT_MAX];
	struct proto_status st;
	const char *nonce;
	char *line;
	size_t len;
	int r, version;

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
	if (strncmp(line, "ERR ", 4) == 0 && proto_parse_status(line, &st) == 0) {
		snprintf(text, sizeof(text), "connect to %s", c->server.display);
		client_error_status(c, text, &st);
		return -ECONNREFUSED;
	}
	r = proto_parse_greeting(line, &version, &nonce);
	if (r == -EPROTONOSUPPORT) {
		client_error(c, CLIENT_FAIL_PROTOCOL,
			     "%s: %s speaks protocol version %d, tcpfile speaks %d",
			     what, c->server.display, version, PROTO_VERSION);
		return r;
	}
	if (r < 0) {
		client_error(c, CLIENT_FAIL_PROTOCOL, "%s: %s is not a tcpfile server: %s",
			     what, c->server.display, client_escape(text, 80, line, len));
		return r;
	}
	return 0;
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

	r = linebuf_init(&c->lb, fd, PROTO_MAX_LINE);
	if (r < 0) {
		(void)close(fd);
		client_error(c, CLIENT_FAIL_PERMANENT, "connect: %s", strerror(-r));
		return r;
	}
	c->fd = fd;
	c->gone = false;
	c->closing = false;

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
	int r = write_full(c->fd, buf, len);

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

/* Splits text into exactly n tokens.  Returns true on success. */
static bool client_split(const char *text, size_t n, const char **tok, size_t *len)
{
	const char *cursor = text, *end = text + strlen(text);
	const char *extra;
	size_t extra_len;

	for (size_t i = 0; i < n; i++)
		if (!proto_next_token(&cursor, end, &tok[i], &len[i]))
			return false;
	return !proto_next_token(&cursor, end, &extra, &extra_len);
}

/* "<type> <size> <mtime>", the tokens a STAT answer and a LIST entry open
 * with, into out (mode untouched).  Returns 0 or -EPROTO. */
static int client_parse_entry(const char *const *tok, const size_t *len,
			      struct client_stat_reply *out)
{
	uint64_t mtime;

	if (len[0] != 1 || !strchr("fdlo", tok[0][0]))
		return -EPROTO;
	if (parse_u64_n(tok[1], len[1], &out->size) < 0)
		return -EPROTO;
	if (parse_u64_n(tok[2], len[2], &mtime) < 0 || mtime > INT64_MAX)
		return -EPROTO;
	out->type = tok[0][0];
	out->mtime = (int64_t)mtime;
	return 0;
}

int client_parse_stat(const char *text, struct client_stat_reply *out)
{
	const char *tok[4];
	size_t len[4];

	if (!client_split(text, 4, tok, len))
		return -EPROTO;
	if (client_parse_entry(tok, len, out) < 0)
		return -EPROTO;
	if (proto_parse_mode(tok[3], len[3], &out->mode) < 0)
		return -EPROTO;
	return 0;
}

int client_parse_size_digest(const char *text, uint64_t *size,
			     struct digest_value *digest)
{
	const char *tok[2];
	size_t len[2];

	if (!client_split(text, 2, tok, len))
		return -EPROTO;
	if (parse_u64_n(tok[0], len[0], size) < 0)
		return -EPROTO;
	if (digest_parse(tok[1], len[1], digest) < 0)
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

/* Parses and prints one LIST entry.  Returns 0 or -EPROTO. */
static int client_ls_entry(const char *line, bool long_format)
{
	char name[PROTO_MAX_PATH + 1];
	char shown[4 * PROTO_MAX_PATH + 1];
	char when[64];
	struct client_stat_reply e;
	const char *tok[4];
	size_t len[4];
	int n;

	if (!client_split(line, 4, tok, len))
		return -EPROTO;
	if (client_parse_entry(tok, len, &e) < 0)
		return -EPROTO;
	n = proto_decode_path(tok[3], len[3], name, sizeof(name));
	if (n <= 0)
		return -EPROTO;
	client_escape(shown, sizeof(shown), name, (size_t)n);
	if (long_format) {
		client_format_time(when, sizeof(when), e.mtime, false);
		printf("%c %12" PRIu64 " %s %s\n", client_type_char(e.type), e.size,
		       when, shown);
	} else {
		printf("%s\n", shown);
	}
	return 0;
}

void client_ls(struct client *c, const char *remote, bool long_format)
{
	char what[CLIENT_WHAT_MAX];
	struct proto_status st;
	uint64_t count;
	char *line;
	size_t len;
	int r;

	client_what(what, sizeof(what), "ls", remote, NULL);
	if (client_simple_request(c, what, "LIST", remote, &st) <= 0)
		return;
	if (parse_u64(st.text, &count) < 0) {
		(void)client_error_reply(c, what, st.text);
		return;
	}
	/* Entries print as they arrive: a huge directory needs no memory. */
	for (uint64_t i = 0; i < count; i++) {
		r = linebuf_read_line(&c->lb, &line, &len);
		if (r <= 0) {
			client_error_connection(c, what, r);
			return;
		}
		if (client_ls_entry(line, long_format) < 0) {
			(void)client_error_reply(c, what, line);
			return;
		}
	}
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
	struct client_stat_reply sr;
	struct proto_status st;

	client_what(what, sizeof(what), "stat", remote, NULL);
	if (client_simple_request(c, what, "STAT", remote, &st) <= 0)
		return;
	if (client_parse_stat(st.text, &sr) < 0) {
		(void)client_error_reply(c, what, st.text);
		return;
	}
	client_format_time(when, sizeof(when), sr.mtime, true);
	printf("type: %s\nsize: %" PRIu64 "\nmtime: %s\nmode: %04o\n",
	       client_type_name(sr.type), sr.size, when, sr.mode);
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
