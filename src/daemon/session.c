/* session: serves one connection: greeting, then request after request
 * until the client quits, idles out, breaks framing or the worker stops. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "monotonic.h"
#include "netio.h"
#include "parse.h"
#include "protocol.h"
#include "session.h"
#include "storage.h"

/* Body bytes move in chunks this large: hashed and written in one pass. */
#define SESSION_CHUNK (256 * 1024)

struct session {
	const struct session_ctx *ctx;
	int fd;
	struct linebuf lb;
	char peer[64];
	char pid[16];         /* this worker's, for log records */
	char *chunk;
	bool close;           /* stop after this request: framing lost, QUIT, I/O error */
};

/* A request's path resolved to a share and a path beneath its root. */
struct target {
	const struct share_conf *share;
	int root_fd;
	const char *rel;
	size_t rel_len;
};

/* What one request did, for its log record. */
struct outcome {
	const char *op;
	const struct proto_request *req;
	uint64_t start_ms;
	uint64_t bytes;
	int code;             /* 0 = OK */
	const char *result;   /* ok, refused, aborted, error */
	const char *detail;
	const struct digest_value *digest;
};

static void session_send(struct session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void session_send(struct session *s, const char *fmt, ...)
{
	char line[PROTO_MAX_LINE];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) || write_full(s->fd, line, (size_t)n) < 0)
		s->close = true;
}

static void session_send_error(struct session *s, int code, const char *detail)
{
	char line[PROTO_MAX_LINE];
	int n = proto_format_error(line, sizeof(line), code, detail);

	if (n < 0 || write_full(s->fd, line, (size_t)n) < 0)
		s->close = true;
}

/* Answers a request with an error and records it in its outcome. */
static void session_fail(struct session *s, struct outcome *o, int code,
			 const char *why)
{
	o->code = code;
	o->detail = why;
	session_send_error(s, code, why);
}

/* Maps a storage errno to the status a client should see, with the
 * errno's text as the detail. */
static int session_status_from_errno(int err, const char **why)
{
	*why = strerror(err < 0 ? -err : err);
	switch (err < 0 ? -err : err) {
	case ENOENT:
		return PROTO_ERR_NOT_FOUND;
	case EEXIST:
		return PROTO_ERR_EXISTS;
	case ENOSPC:
	case EDQUOT:
		return PROTO_ERR_NO_SPACE;
	case EFBIG:
		return PROTO_ERR_TOO_LARGE;
	case EISDIR:
	case ENOTDIR:
	case ENOTEMPTY:
		return PROTO_ERR_WRONG_TYPE;
	case ELOOP:
	case EXDEV:
	case EPERM:
	case EACCES:
	case EROFS:
	case EINVAL:
		return PROTO_ERR_FORBIDDEN;
	case ENAMETOOLONG:
		return PROTO_ERR_BAD_ARGUMENT;
	case EAGAIN:
		return PROTO_ERR_TIMEOUT;
	default:
		return PROTO_ERR_INTERNAL;
	}
}

static void session_log(struct session *s, const struct outcome *o)
{
	char path[PROTO_MAX_PATH * 3 + 1] = "", bytes[24], ms[24], code[8];
	char digest[DIGEST_TEXT_MAX] = "";
	const char *share_end;
	char share[128] = "";
	bool transfer = o->req->verb == PROTO_PUT || o->req->verb == PROTO_GET;
	int prio;

	if (strcmp(o->result, "ok") == 0)
		prio = transfer || o->req->verb == PROTO_DEL ? LOG_INFO : LOG_DEBUG;
	else if (strcmp(o->result, "refused") == 0)
		prio = LOG_NOTICE;
	else
		prio = LOG_WARNING;
	/* Successful STAT and LIST are debug records: skip the formatting
	 * when they would be dropped anyway. */
	if (prio > log_get_level())
		return;

	/* Percent-encoded, so a hostile name cannot forge log lines. */
	if (proto_encode_path(o->req->path, o->req->path_len, path, sizeof(path)) < 0)
		snprintf(path, sizeof(path), "(too long)");
	share_end = memchr(o->req->path, '/', o->req->path_len);
	snprintf(share, sizeof(share), "%.*s",
		 (int)(share_end ? (size_t)(share_end - o->req->path) : o->req->path_len),
		 o->req->path);
	snprintf(bytes, sizeof(bytes), "%" PRIu64, o->bytes);
	snprintf(ms, sizeof(ms), "%" PRIu64, monotonic_ms() - o->start_ms);
	snprintf(code, sizeof(code), "%d", o->code);
	if (o->digest && digest_format(o->digest, digest, sizeof(digest)) < 0)
		digest[0] = '\0';

	struct log_field f[] = {
		{ "CLIENT", s->peer },
		{ "OP", o->op },
		{ "SHARE", share },
		{ "PATH", path },
		{ "BYTES", bytes },
		{ "DURATION_MS", ms },
		{ "RESULT", o->result },
		{ "CODE", code },
		{ "WORKER_PID", s->pid },
		{ "DIGEST", digest },
	};
	size_t n = sizeof(f) / sizeof(f[0]) - (digest[0] ? 0 : 1);

	log_event(prio, 0, transfer ? LOG_MSGID_TRANSFER : LOG_MSGID_REQUEST, f, n,
		  "%s %s from %s: %s%s%s, %s bytes in %s ms", o->op, path, s->peer,
		  o->result, o->detail ? ": " : "", o->detail ? o->detail : "", bytes, ms);
}

/* Splits SHARE[/REL] and checks REL.  Returns 0 or a status code with
 * *why set. */
static int session_resolve(struct session *s, struct proto_request *req,
			   bool allow_root, struct target *t, const char **why)
{
	const struct config *conf = s->ctx->conf;
	const char *slash = memchr(req->path, '/', req->path_len);
	size_t name_len = slash ? (size_t)(slash - req->path) : req->path_len;
	int r;

	t->share = config_find_share(conf, req->path, name_len);
	if (!t->share) {
		*why = "no such share";
		return PROTO_ERR_NOT_FOUND;
	}
	t->root_fd = s->ctx->share_fds[t->share - conf->shares];
	t->rel = slash ? slash + 1 : "";
	t->rel_len = slash ? req->path_len - name_len - 1 : 0;
	/* "share/dir/" names a directory: accept one trailing slash there
	 * ("share//" keeps its empty component and is refused below). */
	if (allow_root && t->rel_len > 1 && t->rel[t->rel_len - 1] == '/') {
		req->path[--req->path_len] = '\0';
		t->rel_len--;
	}
	if (t->rel_len == 0 && !allow_root) {
		*why = "the path names a share, not a file";
		return PROTO_ERR_WRONG_TYPE;
	}
	r = storage_check_path(t->rel, t->rel_len, allow_root, why);
	if (r < 0)
		return PROTO_ERR_FORBIDDEN;
	return 0;
}

/* Reads the body into the upload, hashing in the same pass.  Reads every
 * body byte even after a write error so the connection stays in sync.
 * Returns 0, a negative errno from storage, or -EPIPE/-EAGAIN (client gone
 * or stalled: the connection is lost). */
static int session_receive(struct session *s, struct storage_upload *up,
			   uint64_t size, struct digest_ctx *dc, bool *lost)
{
	uint64_t remaining = size;
	int write_err = 0;

	*lost = false;
	while (remaining > 0) {
		size_t want = remaining < SESSION_CHUNK ? (size_t)remaining : SESSION_CHUNK;
		size_t got = 0;

		while (got < want) {
			ssize_t n = linebuf_read(&s->lb, s->chunk + got, want - got);

			if (n <= 0) {
				*lost = true;
				return n == 0 ? -EPIPE : (int)n;
			}
			got += (size_t)n;
		}
		/* After a write error the body is only drained: its digest
		 * will not be used. */
		if (!write_err) {
			digest_update(dc, s->chunk, got);
			write_err = storage_upload_write(up, s->chunk, got);
		}
		scoreboard_add_bytes(s->ctx->slot, got);
		remaining -= got;
	}
	return write_err;
}

static void session_put(struct session *s, struct proto_request *req)
{
	struct outcome o = { .op = "put", .req = req, .start_ms = monotonic_ms(),
			     .result = "refused" };
	struct storage_upload up = { .fd = -1, .dir_fd = -1, .tmp_dir_fd = -1 };
	struct digest_ctx dc = { 0 };
	struct digest_value dv;
	struct target t;
	const char *why = NULL;
	bool overwrite, lost;
	int code, r;

	code = session_resolve(s, req, false, &t, &why);
	if (!code && t.share->read_only) {
		code = PROTO_ERR_FORBIDDEN;
		why = "read-only share";
	}
	if (!code && t.share->max_file_size && req->size > t.share->max_file_size) {
		code = PROTO_ERR_TOO_LARGE;
		why = "larger than the share's max_file_size";
	}
	/* overwrite=1 cannot override a share with overwrite = no. */
	overwrite = t.share && t.share->overwrite && req->overwrite != 0;
	if (!code) {
		struct storage_limits lim = {
			.max_file_size = t.share->max_file_size,
			.min_free_bytes = t.share->min_free.bytes,
			.min_free_percent = t.share->min_free.percent,
			.umask = t.share->umask,
			.read_only = t.share->read_only,
		};

		r = storage_upload_begin(t.root_fd, t.rel, req->size,
					 req->has_mode ? req->mode : 0644, overwrite,
					 &lim, &up);
		if (r < 0) {
			code = session_status_from_errno(r, &why);
		}
	}
	if (!code) {
		r = digest_init(&dc, req->alg);
		if (r < 0) {
			storage_upload_abort(&up);
			code = PROTO_ERR_INTERNAL;
			why = strerror(-r);
		}
	}
	if (code) {
		/* A pipelining client has already sent the body: drop it so the
		 * next request is read from the right place. */
		if (req->pipelined && linebuf_discard(&s->lb, req->size) < 0) {
			s->close = true;
			o.result = "aborted";
		}
		session_fail(s, &o, code, why);
		goto out;
	}
	if (!req->pipelined)
		session_send(s, "OK\n");
	if (s->close) {
		o.result = "aborted";
		o.detail = "client gone before the body";
		goto err_abort;
	}

	r = session_receive(s, &up, req->size, &dc, &lost);
	o.bytes = up.written;
	if (lost) {
		s->close = true;
		o.result = "aborted";
		if (r == -EAGAIN)
			session_fail(s, &o, PROTO_ERR_TIMEOUT, "body timed out");
		else
			o.detail = "client closed the connection mid-body";
		goto err_abort;
	}
	if (r < 0) {
		o.result = "error";
		code = session_status_from_errno(r, &why);
		session_fail(s, &o, code, why);
		goto err_abort;
	}
	r = digest_final(&dc, &dv);
	if (r < 0) {
		o.result = "error";
		session_fail(s, &o, PROTO_ERR_INTERNAL, "digest failed");
		goto err_abort;
	}
	if (req->has_digest && !digest_equal(&dv, &req->digest)) {
		o.digest = &dv;
		session_fail(s, &o, PROTO_ERR_DIGEST, "the body does not match digest=");
		goto err_abort;
	}

	struct timespec mtime = { .tv_sec = req->mtime_sec, .tv_nsec = req->mtime_nsec };
	r = storage_upload_commit(&up, overwrite, s->ctx->conf->fsync,
				  req->has_mtime ? &mtime : NULL, &dv);
	if (r < 0) {
		o.result = r == -EEXIST ? "refused" : "error";
		code = session_status_from_errno(r, &why);
		session_fail(s, &o, code, why);
		goto out;
	}

	char text[DIGEST_TEXT_MAX];
	if (digest_format(&dv, text, sizeof(text)) < 0)
		text[0] = '\0';
	session_send(s, "OK %" PRIu64 " %s\n", req->size, text);
	scoreboard_add_transfer(s->ctx->slot);
	o.result = s->close ? "aborted" : "ok";
	o.detail = s->close ? "committed, but the final answer could not be sent" : NULL;
	o.digest = &dv;
	goto out;

err_abort:
	digest_finish(&dc);
	storage_upload_abort(&up);
out:
	session_log(s, &o);
}

static void session_get(struct session *s, struct proto_request *req)
{
	struct outcome o = { .op = "get", .req = req, .start_ms = monotonic_ms(),
			     .result = "refused" };
	struct digest_value dv;
	struct target t;
	const char *why = NULL;
	struct stat st;
	int fd = -1, code, r;

	code = session_resolve(s, req, false, &t, &why);
	if (!code) {
		fd = storage_open_file(t.root_fd, t.rel, &st);
		if (fd < 0) {
			code = session_status_from_errno(fd, &why);
		}
	}
	if (!code && req->offset > (uint64_t)st.st_size) {
		code = PROTO_ERR_BAD_ARGUMENT;
		why = "offset beyond the end of the file";
	}
	if (!code) {
		r = storage_digest(fd, &st, req->alg, &dv);
		/* A read-only share is never written to, not even a cache. */
		if (r == 1 && !t.share->read_only)
			(void)storage_digest_store(fd, &st, &dv);
		if (r < 0) {
			code = PROTO_ERR_INTERNAL;
			why = strerror(-r);
		}
	}
	if (code) {
		session_fail(s, &o, code, why);
		goto out;
	}

	char text[DIGEST_TEXT_MAX];
	if (digest_format(&dv, text, sizeof(text)) < 0)
		text[0] = '\0';
	o.digest = &dv;
	session_send(s, "OK %" PRIu64 " %s\n", (uint64_t)st.st_size, text);
	if (s->close) {
		o.result = "aborted";
		goto out;
	}
	off_t offset = (off_t)req->offset;
	r = sendfile_full(s->fd, fd, &offset, (uint64_t)st.st_size - req->offset);
	o.bytes = (uint64_t)offset - req->offset;
	scoreboard_add_bytes(s->ctx->slot, o.bytes);
	if (r < 0) {
		/* The body is announced: nothing can resynchronise the client. */
		s->close = true;
		o.result = r == -ENODATA ? "error" : "aborted";
		o.detail = r == -ENODATA ? "file shrank while being sent" : strerror(-r);
		goto out;
	}
	scoreboard_add_transfer(s->ctx->slot);
	o.result = "ok";
out:
	if (fd >= 0)
		close(fd);
	session_log(s, &o);
}

static void session_stat(struct session *s, struct proto_request *req)
{
	struct outcome o = { .op = "stat", .req = req, .start_ms = monotonic_ms(),
			     .result = "refused" };
	const char *why = NULL;
	struct target t;
	struct stat st;
	int code, r;

	code = session_resolve(s, req, true, &t, &why);
	if (!code) {
		r = storage_stat(t.root_fd, t.rel, &st);
		if (r < 0) {
			code = session_status_from_errno(r, &why);
		}
	}
	if (code) {
		session_fail(s, &o, code, why);
	} else {
		session_send(s, "OK %c %" PRIu64 " %" PRId64 " %04o\n",
			     storage_type(st.st_mode), (uint64_t)st.st_size,
			     (int64_t)st.st_mtim.tv_sec, (unsigned)(st.st_mode & 07777));
		o.result = "ok";
	}
	session_log(s, &o);
}

/* LIST collects its lines first: the count comes before them. */
struct list_acc {
	char *buf;
	size_t len, cap;
	uint64_t count;
};

static int session_list_entry(const struct storage_entry *e, void *arg)
{
	struct list_acc *acc = arg;
	char name[PROTO_MAX_LINE];
	int n = proto_encode_path(e->name, strlen(e->name), name, sizeof(name) - 64);

	if (n < 0)
		return 0;    /* a name too long to announce is skipped, not fatal */
	if (acc->cap - acc->len < (size_t)n + 64) {
		size_t cap = acc->cap ? acc->cap * 2 : 64 * 1024;
		char *buf = realloc(acc->buf, cap);

		if (!buf)
			return -ENOMEM;
		acc->buf = buf;
		acc->cap = cap;
	}
	n = snprintf(acc->buf + acc->len, acc->cap - acc->len, "%c %" PRIu64 " %" PRId64 " %s\n",
		     e->type, e->size, e->mtime_sec, name);
	if (n < 0 || (size_t)n >= acc->cap - acc->len)
		return -EOVERFLOW;
	acc->len += (size_t)n;
	acc->count++;
	return 0;
}

/* Protocol 1 promises LIST sorted bytewise by name, and storage_list
 * yields directory order: sorts the collected lines by their name field
 * (after the third space) into a new buffer. */
static const char *session_list_name(const char *line)
{
	for (int i = 0; i < 3; i++)
		line = strchr(line, ' ') + 1;
	return line;
}

/* The next byte of an encoded name, %XX decoded; -1 at its end. */
static int session_list_byte(const char **p)
{
	const char *c = *p;

	if (*c == '\n')
		return -1;
	if (c[0] == '%' && parse_hex_digit(c[1]) >= 0 && parse_hex_digit(c[2]) >= 0) {
		*p += 3;
		return parse_hex_digit(c[1]) * 16 + parse_hex_digit(c[2]);
	}
	*p += 1;
	return (unsigned char)*c;
}

static int session_list_cmp(const void *a, const void *b)
{
	const char *x = session_list_name(*(const char *const *)a);
	const char *y = session_list_name(*(const char *const *)b);

	for (;;) {
		int cx = session_list_byte(&x), cy = session_list_byte(&y);

		if (cx != cy || cx < 0)
			return cx - cy;
	}
}

static int session_list_sort(struct list_acc *acc)
{
	char **lines, *sorted, *p;
	size_t n = 0;

	if (acc->count < 2)
		return 0;
	lines = calloc(acc->count, sizeof(*lines));
	sorted = malloc(acc->len);
	if (!lines || !sorted) {
		free(lines);
		free(sorted);
		return -ENOMEM;
	}
	for (p = acc->buf; p < acc->buf + acc->len; p = strchr(p, '\n') + 1)
		lines[n++] = p;
	qsort(lines, n, sizeof(*lines), session_list_cmp);
	p = sorted;
	for (size_t i = 0; i < n; i++) {
		size_t len = (size_t)(strchr(lines[i], '\n') + 1 - lines[i]);

		memcpy(p, lines[i], len);
		p += len;
	}
	free(lines);
	free(acc->buf);
	acc->buf = sorted;
	acc->cap = acc->len;
	return 0;
}

static void session_list(struct session *s, struct proto_request *req)
{
	struct outcome o = { .op = "list", .req = req, .start_ms = monotonic_ms(),
			     .result = "refused" };
	struct list_acc acc = { 0 };
	const char *why = NULL;
	struct target t;
	int code, dfd, r;

	code = session_resolve(s, req, true, &t, &why);
	if (!code) {
		dfd = storage_open_dir(t.root_fd, t.rel);
		r = dfd < 0 ? dfd : storage_list(dfd, session_list_entry, &acc);
		if (r == 0)
			r = session_list_sort(&acc);
		if (r < 0) {
			code = session_status_from_errno(r, &why);
		}
	}
	if (code) {
		session_fail(s, &o, code, why);
	} else {
		session_send(s, "OK %" PRIu64 "\n", acc.count);
		if (!s->close && acc.len && write_full(s->fd, acc.buf, acc.len) < 0)
			s->close = true;
		o.result = s->close ? "aborted" : "ok";
		o.bytes = acc.len;
	}
	free(acc.buf);
	session_log(s, &o);
}

static void session_del(struct session *s, struct proto_request *req)
{
	struct outcome o = { .op = "del", .req = req, .start_ms = monotonic_ms(),
			     .result = "refused" };
	const char *why = NULL;
	struct target t;
	int code, r;

	code = session_resolve(s, req, false, &t, &why);
	if (!code && t.share->read_only) {
		code = PROTO_ERR_FORBIDDEN;
		why = "read-only share";
	}
	if (!code) {
		r = storage_delete(t.root_fd, t.rel, s->ctx->conf->fsync);
		if (r < 0) {
			code = session_status_from_errno(r, &why);
		}
	}
	if (code) {
		session_fail(s, &o, code, why);
	} else {
		session_send(s, "OK\n");
		o.result = "ok";
	}
	session_log(s, &o);
}

/* Lets a signal that arrived during the last request run its handler
 * (signals are blocked outside waits), without waiting for anything. */
static void session_poll_signals(struct session *s)
{
	struct timespec zero = { 0 };

	(void)ppoll(NULL, 0, &zero, s->ctx->wait_mask);
}

/* Returns 1 with the next request line, or 0 when the connection is over
 * (the reason has been answered and logged). */
static int session_next_line(struct session *s, char **line, size_t *len)
{
	uint64_t idle_ms = s->ctx->conf->idle_timeout_ms;
	/* One deadline for the whole line: a client trickling a byte at a
	 * time must not hold a worker beyond idle_timeout. */
	uint64_t deadline = monotonic_ms() + idle_ms;
	struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
	bool waited = false;
	int r;

	for (;;) {
		r = linebuf_take_line(&s->lb, line, len);
		if (r == 1) {
			/* A line already buffered (pipelined) was not preceded by a
			 * wait, where pending signals would have been let in. */
			if (!waited)
				session_poll_signals(s);
			if (!*s->ctx->stop)
				return 1;
		}
		if (r == -EMSGSIZE) {
			session_send_error(s, PROTO_ERR_BAD_REQUEST, "line too long");
			log_notice("%s: request line longer than %d bytes; closing", s->peer,
				   PROTO_MAX_LINE);
			return 0;
		}
		if (*s->ctx->stop) {
			session_send_error(s, PROTO_ERR_SHUTTING_DOWN, "shutting down");
			return 0;
		}
		uint64_t now = monotonic_ms(), left = deadline > now ? deadline - now : 0;
		struct timespec timeout = {
			.tv_sec = (time_t)(left / 1000),
			.tv_nsec = (long)(left % 1000) * 1000000,
		};
		r = left ? ppoll(&pfd, 1, &timeout, s->ctx->wait_mask) : 0;
		waited = true;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			log_warn_errno(errno, "%s: ppoll", s->peer);
			return 0;
		}
		if (r == 0) {
			session_send_error(s, PROTO_ERR_TIMEOUT, "idle timeout");
			log_info("%s: idle for %" PRIu64 " ms; closing", s->peer, idle_ms);
			return 0;
		}
		ssize_t n = linebuf_fill(&s->lb);
		if (n == 0) {
			if (linebuf_pending(&s->lb) > 0)
				log_notice("%s: connection closed inside a request line", s->peer);
			return 0;
		}
		if (n < 0 && n != -EINTR && n != -EAGAIN) {
			log_debug("%s: read: %s", s->peer, strerror((int)-n));
			return 0;
		}
	}
}

static void session_refuse(struct session *s, const char *line, size_t len, int code,
			   const char *why)
{
	uint64_t body = 0;
	int follows = proto_refused_body(line, len, &body);
	char shown[96];
	size_t i;

	for (i = 0; i < len && i < sizeof(shown) - 1; i++)
		shown[i] = line[i] >= 0x20 && line[i] < 0x7f ? line[i] : '?';
	shown[i] = '\0';
	/* A pipelined PUT's body follows its refused header: skip it, or its
	 * bytes would be read as requests. */
	if (follows < 0 || (follows == 1 && linebuf_discard(&s->lb, body) < 0)) {
		why = follows < 0 ? "pipelined PUT without a readable size; closing" : why;
		s->close = true;
	}
	session_send_error(s, code, why);
	struct log_field f[] = {
		{ "CLIENT", s->peer },
		{ "RESULT", "refused" },
	};
	log_event(LOG_NOTICE, 0, LOG_MSGID_REQUEST, f, 2, "%s: bad request \"%s%s\": %d %s",
		  s->peer, shown, len >= sizeof(shown) ? "..." : "", code, why);
}

static void session_greet(struct session *s)
{
	uint8_t raw[16];
	char nonce[33], line[128];
	int n;

	if (getrandom(raw, sizeof(raw), 0) != sizeof(raw)) {
		session_send_error(s, PROTO_ERR_SHUTTING_DOWN, "cannot serve: no randomness");
		s->close = true;
		return;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(nonce + 2 * i, 3, "%02x", raw[i]);
	n = proto_format_greeting(line, sizeof(line), nonce);
	if (n < 0 || write_full(s->fd, line, (size_t)n) < 0)
		s->close = true;
}

static void session_dispatch(struct session *s, struct proto_request *req)
{
	switch (req->verb) {
	case PROTO_PUT:
		session_put(s, req);
		break;
	case PROTO_GET:
		session_get(s, req);
		break;
	case PROTO_STAT:
		session_stat(s, req);
		break;
	case PROTO_LIST:
		session_list(s, req);
		break;
	case PROTO_DEL:
		session_del(s, req);
		break;
	case PROTO_QUIT:
		session_send(s, "OK bye\n");
		s->close = true;
		break;
	}
}

void session_run(const struct session_ctx *ctx, int fd,
		 const struct sockaddr_storage *peer)
{
	struct session s = { .ctx = ctx, .fd = fd };
	struct proto_request *req = NULL;
	const char *why;
	char *line;
	size_t len;
	int one = 1, code;

	listener_format_sockaddr((const struct sockaddr *)peer, s.peer, sizeof(s.peer));
	snprintf(s.pid, sizeof(s.pid), "%d", (int)getpid());
	if (socket_set_timeouts(fd, ctx->conf->idle_timeout_ms) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		log_warn_errno(errno, "%s: socket options", s.peer);
	s.chunk = malloc(SESSION_CHUNK);
	req = malloc(sizeof(*req));
	if (!s.chunk || !req || linebuf_init(&s.lb, fd, PROTO_MAX_LINE) < 0) {
		session_send_error(&s, PROTO_ERR_SHUTTING_DOWN, "cannot serve: out of memory");
		goto out;
	}
	log_debug("%s: connected", s.peer);
	session_greet(&s);
	while (!s.close && session_next_line(&s, &line, &len) == 1) {
		code = proto_parse_request(line, len, req, &why);
		if (code) {
			session_refuse(&s, line, len, code, why);
			continue;
		}
		session_dispatch(&s, req);
	}
	linebuf_finish(&s.lb);
out:
	free(req);
	free(s.chunk);
	close(fd);
}
