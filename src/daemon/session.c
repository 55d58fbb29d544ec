/* session: serves one connection: greeting and HELLO, then request after
 * request until the client quits, idles out, breaks framing or the worker
 * stops.  PUT and GET bodies live in upload.c and download.c. */
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
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "build_config.h"
#include "listener.h"
#include "log.h"
#include "monotonic.h"
#include "policy.h"
#include "session_internal.h"
#include "sharecheck.h"
#include "storage.h"

/* LIST lines are gathered into writes of about this size. */
#define SESSION_LIST_FLUSH (64 * 1024)

/* ---- replies ---- */

/* The answers held back were logged when their uploads committed: a
 * failure to send them is logged here, so that the record of a client
 * that never heard its answers says so. */
static void session_flush_replies(struct session *s)
{
	size_t n = s->out_len;
	int r;

	if (!n)
		return;
	s->out_len = 0;
	r = conn_write(&s->conn, s->out, n, false);
	if (r < 0) {
		struct log_field f[] = { { "CLIENT", s->peer }, { "RESULT", "unanswered" } };

		log_event(LOG_NOTICE, -r, NULL, f, 2,
			  "%s: %zu bytes of answers to committed uploads could not be sent",
			  s->peer, n);
		s->close = true;
	}
}

void session_send(struct session *s, const char *buf, size_t len, bool more)
{
	/* Answers go out in request order: those owed by the batch first,
	 * then those held back, in the same write when they fit. */
	if (s->batch.n && !s->flushing)
		upload_flush(s);
	if (s->out_len && len <= sizeof(s->out) - s->out_len) {
		memcpy(s->out + s->out_len, buf, len);
		s->out_len += len;
		len = s->out_len;
		s->out_len = 0;
		buf = s->out;
	} else {
		session_flush_replies(s);
	}
	if (conn_write(&s->conn, buf, len, more) < 0)
		s->close = true;
}

/* The next request line is already in the buffer: the session will not
 * wait for the client before it has served it. */
static bool session_line_buffered(const struct session *s)
{
	size_t pending = linebuf_pending(&s->lb);

	return pending > 0 && memchr(s->lb.buf + s->lb.start, '\n', pending) != NULL;
}

/* Formats one reply line and sends it, or, when may_wait and the next
 * request is already buffered, holds it back with those before it. */
static void session_vreply(struct session *s, bool may_wait, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void session_vreply(struct session *s, bool may_wait, const char *fmt, va_list ap)
{
	char line[PROTO_MAX_LINE];
	int n = vsnprintf(line, sizeof(line), fmt, ap);

	if (n < 0 || (size_t)n >= sizeof(line)) {
		s->close = true;
		return;
	}
	if (may_wait && s->batch.n && !s->flushing)
		upload_flush(s);
	if (may_wait && session_line_buffered(s) &&
	    (size_t)n <= sizeof(s->out) - s->out_len) {
		memcpy(s->out + s->out_len, line, (size_t)n);
		s->out_len += (size_t)n;
		return;
	}
	session_send(s, line, (size_t)n, false);
}

void session_reply(struct session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	session_vreply(s, false, fmt, ap);
	va_end(ap);
}

void session_answer(struct session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	session_vreply(s, true, fmt, ap);
	va_end(ap);
}

static void session_send_error(struct session *s, int code, const char *detail)
{
	char line[PROTO_MAX_LINE];
	int n = proto_format_error(line, sizeof(line), code, detail);

	if (n < 0)
		s->close = true;
	else
		session_send(s, line, (size_t)n, false);
}

void session_fail(struct session *s, struct outcome *o, int code, const char *why)
{
	if (o) {
		o->code = code;
		o->detail = why;
	}
	session_send_error(s, code, why);
}

int session_status_from_errno(int err, const char **why)
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
	case ETIMEDOUT:
		return PROTO_ERR_TIMEOUT;
	case EUCLEAN:
		/* The share's state directory is not ours (logged). */
		*why = "the share's state directory is unusable";
		return PROTO_ERR_INTERNAL;
	default:
		return PROTO_ERR_INTERNAL;
	}
}

/* ---- pace and deadlines ---- */

void session_pace_start(const struct session *s, struct session_pace *p)
{
	*p = (struct session_pace){
		.ctx = s->ctx,
		.min_rate = s->ctx->conf->min_rate,
		.window_ms = s->ctx->conf->min_rate_window_ms,
		.window_start_ms = monotonic_ms(),
	};
}

int session_pace_account(struct session_pace *p, uint64_t bytes)
{
	uint64_t now = monotonic_ms();

	uint64_t elapsed = now - p->window_start_ms;

	p->window_bytes += bytes;
	if (!p->min_rate)
		return 0;
	if (elapsed < p->window_ms) {
		bool slow = elapsed >= SESSION_BODY_TICK_MS &&
			    p->window_bytes * 1000 < p->min_rate * elapsed;

		/* A slow body counts as waiting, so the master gives it time
		 * to be cut before it answers queued clients "busy". */
		if (slow != p->slow) {
			p->slow = slow;
			scoreboard_set_state(p->ctx->slot, slow ? WORKER_WAITING : WORKER_BUSY);
		}
		/* Slower than min_rate so far while others wait: no need to
		 * sit out the whole window. */
		if (slow && p->ctx->pressure && p->ctx->pressure(p->ctx->pressure_arg, false))
			return -ETIMEDOUT;
		return 0;
	}
	/* A whole window has passed: judge it, then start the next. */
	if (p->window_bytes < p->min_rate * (p->window_ms / 1000))
		return -ETIMEDOUT;
	if (p->slow) {
		p->slow = false;
		scoreboard_set_state(p->ctx->slot, WORKER_BUSY);
	}
	p->window_start_ms = now;
	p->window_bytes = 0;
	return 0;
}

/* True when bytes can be read without waiting. */
static bool session_input_ready(struct session *s)
{
	struct pollfd pfd = { .fd = s->conn.fd, .events = POLLIN };

	return conn_pending(&s->conn) > 0 || poll(&pfd, 1, 0) > 0;
}

void session_settle(struct session *s)
{
	bool batch = s->batch.n && !s->flushing;
	bool dirs = s->cache.state || s->cache.dir;

	/* Asking whether input is ready costs a poll(): only when the
	 * answer matters (not for every read of a large body). */
	if (batch || dirs) {
		bool ready = session_input_ready(s);

		/* The batch waits only while more of the client's bytes are
		 * there to be read: they may hold further uploads to commit
		 * with it. */
		if (batch && !ready)
			upload_flush(s);
		/* The wait may be long (up to idle_timeout): hold no directory
		 * open through it, or a file system mounted beneath the share
		 * could not be unmounted.  Uploads still in the batch keep
		 * their own. */
		if (dirs && !ready)
			storage_cache_reset(&s->cache);
	}
	session_flush_replies(s);
}

/* Lets a signal that arrived during the last request run its handler
 * (signals are blocked outside waits), without waiting for anything. */
static void session_poll_signals(struct session *s)
{
	struct timespec zero = { 0 };

	(void)ppoll(NULL, 0, &zero, s->ctx->wait_mask);
	s->signals_ms = monotonic_ms();
}

/* Waits until the socket is readable or deadline_ms passes, with the
 * worker's signals let in.  Returns 1 readable, 0 timed out, -EINTR (a
 * signal: the caller checks its flags), -errno. */
static int session_wait_readable(struct session *s, uint64_t deadline_ms)
{
	struct pollfd pfd = { .fd = s->conn.fd, .events = POLLIN };
	uint64_t now = monotonic_ms(), left = deadline_ms > now ? deadline_ms - now : 0;
	struct timespec timeout = {
		.tv_sec = (time_t)(left / 1000),
		.tv_nsec = (long)(left % 1000) * 1000000,
	};
	int r;

	if (conn_pending(&s->conn) > 0)
		return 1;
	/* The client may be waiting for answers before it sends more. */
	session_settle(s);
	if (!left)
		return 0;
	r = ppoll(&pfd, 1, &timeout, s->ctx->wait_mask);
	s->signals_ms = monotonic_ms();
	if (r < 0)
		return -errno;
	return r > 0 ? 1 : 0;
}

int session_sleep_until(struct session *s, uint64_t deadline_ms)
{
	for (;;) {
		uint64_t now = monotonic_ms(), left;

		if (*s->ctx->stop)
			return -ESHUTDOWN;
		session_settle(s);
		if (now >= deadline_ms)
			return 0;
		left = deadline_ms - now;
		struct timespec timeout = {
			.tv_sec = (time_t)(left / 1000),
			.tv_nsec = (long)(left % 1000) * 1000000,
		};
		(void)ppoll(NULL, 0, &timeout, s->ctx->wait_mask);
	}
}

/* session_wait_readable, waking every SESSION_TICK_MS to ask whether
 * clients queue for the pool: -EBUSY once this wait, begun at since_ms,
 * has lasted grace_ms under pressure (grace_ms 0: never). */
static int session_wait_yielding(struct session *s, uint64_t deadline_ms,
				 uint64_t since_ms, uint64_t grace_ms)
{
	const struct session_ctx *ctx = s->ctx;

	for (;;) {
		uint64_t now = monotonic_ms(), until = deadline_ms;
		int r;

		if (grace_ms && ctx->pressure && now + SESSION_TICK_MS < until)
			until = now + SESSION_TICK_MS;
		r = session_wait_readable(s, until);
		if (r != 0 || until == deadline_ms)
			return r;
		if (s->stop_ends_wait && *ctx->stop)
			return -EINTR;
		now = monotonic_ms();
		if (now - since_ms >= grace_ms && ctx->pressure(ctx->pressure_arg, false))
			return -EBUSY;
	}
}

int session_wait_line(struct session *s, uint64_t deadline_ms, char **line,
		      size_t *len)
{
	uint64_t since = monotonic_ms();

	for (;;) {
		int r = linebuf_take_line(&s->lb, line, len);
		ssize_t n;

		if (r != 0)
			return r;
		r = session_wait_yielding(s, deadline_ms, since, s->yield_grace_ms);
		if (r == -EINTR && !(s->stop_ends_wait && *s->ctx->stop))
			continue;
		if (r == -EINTR)
			return -ESHUTDOWN;
		if (r < 0)
			return r;
		if (r == 0)
			return -ETIMEDOUT;
		n = linebuf_fill(&s->lb);
		if (n == 0)
			return 0;
		if (n < 0 && n != -EINTR && n != -EAGAIN)
			return (int)n;
	}
}

int session_read_body(struct session *s, void *buf, size_t len,
		      struct session_pace *pace)
{
	uint64_t tick = pace->min_rate ? SESSION_BODY_TICK_MS : s->ctx->conf->idle_timeout_ms;
	uint64_t moved_ms = monotonic_ms();
	char *p = buf;

	while (len > 0) {
		/* A plain socket's read blocks for at most SO_RCVTIMEO (a tick);
		 * a TLS socket is non-blocking and says -EAGAIN until a whole
		 * record is in.  Either way a peer that sends nothing, or
		 * trickles a record, is judged by its pace every tick. */
		ssize_t n;

		/* Nothing buffered: the read below may block. */
		if (!linebuf_pending(&s->lb))
			session_settle(s);
		n = linebuf_read(&s->lb, p, len);
		if (n == 0)
			return -EPIPE;
		if (n == -EAGAIN) {
			int r = session_wait_readable(s, moved_ms + tick);

			if (r < 0 && r != -EINTR)
				return r;
			if (r == 0 || monotonic_ms() - moved_ms >= tick) {
				if (!pace->min_rate || session_pace_account(pace, 0) < 0)
					return -ETIMEDOUT;
				moved_ms = monotonic_ms();
			}
			continue;
		}
		if (n < 0)
			return (int)n;
		moved_ms = monotonic_ms();
		p += n;
		len -= (size_t)n;
		scoreboard_add_bytes(s->ctx->slot, (uint64_t)n);
		if (session_pace_account(pace, (uint64_t)n) < 0)
			return -ETIMEDOUT;
	}
	return 0;
}

/* ---- requests without a body ---- */

void session_log(struct session *s, const struct outcome *o)
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
	share_end = memchr(path, '/', strlen(path));
	snprintf(share, sizeof(share), "%.*s",
		 (int)(share_end ? (size_t)(share_end - path) : strlen(path)), path);
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

int session_resolve(struct session *s, struct proto_request *req,
		    bool allow_root, struct target *t, const char **why)
{
	const struct config *conf = s->ctx->conf;
	const char *slash = memchr(req->path, '/', req->path_len);
	size_t name_len = slash ? (size_t)(slash - req->path) : req->path_len;
	int r;

	bool write = req->verb == PROTO_PUT || req->verb == PROTO_DEL;
	int code;

	t->share = config_find_share(conf, req->path, name_len);
	code = policy_check(t->share, s->user[0] ? s->user : NULL,
			    s->local || conf->anonymous_remote, conf->users_file != NULL, write, why);
	if (code)
		return code;
	t->root_fd = s->ctx->share_fds[t->share - conf->shares];
	/* A share this worker could not open, or whose root was renamed or
	 * removed since: refused until a reload opens the path afresh.  A
	 * pipelined batch to one share asks the file system only now and
	 * then (every connection's first request always does). */
	uint64_t now = monotonic_ms();

	if (t->share != s->share_seen || now - s->share_seen_ms >= SESSION_SHARE_RECHECK_MS) {
		if (!sharecheck_still_valid(t->share, t->root_fd)) {
			s->share_seen = NULL;
			*why = "share unavailable";
			return PROTO_ERR_INTERNAL;
		}
		s->share_seen = t->share;
		s->share_seen_ms = now;
	}
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

static void session_entry_from_stat(const struct stat *st, struct proto_entry *e)
{
	e->type = storage_type(st->st_mode);
	e->size = (uint64_t)st->st_size;
	e->mtime_sec = (int64_t)st->st_mtim.tv_sec;
	e->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	e->mode = (uint32_t)(st->st_mode & 07777);
}

static void session_stat(struct session *s, struct proto_request *req)
{
	struct outcome o = { .op = "stat", .req = req, .start_ms = monotonic_ms(),
			     .result = "refused" };
	struct proto_entry e = { 0 };
	char attrs[256];
	const char *why = NULL;
	struct target t;
	struct stat st;
	int code, r;

	code = session_resolve(s, req, true, &t, &why);
	if (!code) {
		r = storage_stat(t.root_fd, t.rel, &st);
		if (r < 0)
			code = session_status_from_errno(r, &why);
	}
	if (!code) {
		session_entry_from_stat(&st, &e);
		if (proto_format_attrs(attrs, sizeof(attrs), &e) < 0) {
			code = PROTO_ERR_INTERNAL;
			why = "cannot format the answer";
		}
	}
	if (code) {
		session_fail(s, &o, code, why);
	} else {
		session_reply(s, "OK %s\n", attrs);
		o.result = "ok";
	}
	session_log(s, &o);
}

/* LIST streams: entry lines are gathered into writes of about
 * SESSION_LIST_FLUSH bytes, so memory stays bounded whatever the
 * directory's size. */
struct list_out {
	struct session *s;
	char *buf;              /* the session's chunk buffer */
	struct proto_entry *entry;   /* one entry being formatted */
	size_t len;
	uint64_t count;
	uint64_t bytes;
};

static int session_list_flush(struct list_out *lo)
{
	if (lo->len == 0)
		return 0;
	if (conn_write(&lo->s->conn, lo->buf, lo->len, false) < 0) {
		lo->s->close = true;
		return -EPIPE;
	}
	/* Progress for the scoreboard: a long listing is not a hung worker. */
	scoreboard_add_bytes(lo->s->ctx->slot, lo->len);
	lo->bytes += lo->len;
	lo->len = 0;
	return 0;
}

static int session_list_entry(const struct storage_entry *se, void *arg)
{
	struct list_out *lo = arg;
	struct proto_entry *e = lo->entry;
	size_t name_len = strlen(se->name);
	int n;

	if (name_len > PROTO_MAX_PATH)
		return 0;    /* cannot be named on the wire: skipped */
	e->type = se->type;
	e->size = se->size;
	e->mtime_sec = se->mtime_sec;
	e->mtime_nsec = se->mtime_nsec;
	e->mode = se->mode;
	memcpy(e->name, se->name, name_len + 1);
	e->name_len = name_len;
	if (SESSION_CHUNK - lo->len < PROTO_MAX_LINE && session_list_flush(lo) < 0)
		return -EPIPE;
	n = proto_format_entry(lo->buf + lo->len, SESSION_CHUNK - lo->len, e);
	if (n < 0)
		return 0;    /* a name too long to announce is skipped, not fatal */
	lo->len += (size_t)n;
	lo->count++;
	if (lo->len >= SESSION_LIST_FLUSH)
		return session_list_flush(lo);
	return 0;
}

static void session_list(struct session *s, struct proto_request *req)
{
	struct outcome o = { .op = "list", .req = req, .start_ms = monotonic_ms(),
			     .result = "refused" };
	struct list_out lo = { .s = s, .buf = s->chunk };
	const char *why = NULL;
	char end[PROTO_MAX_LINE];
	struct target t;
	int code, dfd = -1, r, n;

	code = session_resolve(s, req, true, &t, &why);
	if (!code) {
		lo.entry = malloc(sizeof(*lo.entry));
		if (!lo.entry) {
			code = PROTO_ERR_INTERNAL;
			why = strerror(ENOMEM);
		}
	}
	if (!code) {
		dfd = storage_open_dir(t.root_fd, t.rel);
		if (dfd < 0)
			code = session_status_from_errno(dfd, &why);
	}
	if (code) {
		session_fail(s, &o, code, why);
		goto out;
	}
	session_reply(s, "OK\n");
	r = storage_list(dfd, session_list_entry, &lo);
	if (r == 0)
		r = session_list_flush(&lo);
	if (s->close) {
		o.result = "aborted";
		o.detail = "client gone during the listing";
	} else if (r < 0) {
		/* Announced entries are out: end the body with the reason. */
		code = session_status_from_errno(r, &why);
		n = proto_format_abort(end, sizeof(end), code, why);
		if (n > 0)
			session_send(s, end, (size_t)n, false);
		o.result = "error";
		o.code = code;
		o.detail = why;
	} else {
		n = proto_format_end(end, sizeof(end), NULL, true, lo.count);
		if (n > 0)
			session_send(s, end, (size_t)n, false);
		o.result = s->close ? "aborted" : "ok";
	}
	o.bytes = lo.bytes;
out:
	free(lo.entry);
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
		if (r < 0)
			code = session_status_from_errno(r, &why);
	}
	if (code) {
		session_fail(s, &o, code, why);
	} else {
		session_reply(s, "OK\n");
		o.result = "ok";
	}
	session_log(s, &o);
}

/* ---- the connection ---- */

/* Logs a line the protocol refused, escaped and cut short. */
static void session_log_refused_line(struct session *s, const char *line, size_t len,
				     int code, const char *why)
{
	char shown[96];
	size_t i;

	for (i = 0; i < len && i < sizeof(shown) - 1; i++)
		shown[i] = line[i] >= 0x20 && line[i] < 0x7f && line[i] != '"' ? line[i] : '?';
	shown[i] = '\0';
	struct log_field f[] = {
		{ "CLIENT", s->peer },
		{ "RESULT", "refused" },
	};
	/* A client repeating bad lines gets a few records and a summary. */
	if (!log_ratelimit_allow(&s->refusals, monotonic_ms(), f, 2))
		return;
	log_event(LOG_NOTICE, 0, LOG_MSGID_REQUEST, f, 2, "%s: bad request \"%s%s\": %d %s",
		  s->peer, shown, len >= sizeof(shown) ? "..." : "", code, why);
}


/* Waits for the next request line until the idle deadline.  Returns 1 with
 * the line, or 0 when the connection is over (answered and logged). */
static int session_next_request(struct session *s, char **line, size_t *len)
{
	/* One deadline for the whole line: a client trickling a byte at a
	 * time must not hold a worker beyond idle_timeout. */
	uint64_t since = monotonic_ms();
	uint64_t deadline = since + s->ctx->conf->idle_timeout_ms;
	bool first = true;
	int r;

	for (;;) {
		r = linebuf_take_line(&s->lb, line, len);
		if (r == 1) {
			/* A pipelined line was not preceded by a wait, where
			 * pending signals would have been let in: let them in
			 * now, unless a wait did within the last tick (a stream
			 * of small requests refills the buffer through a wait
			 * every few requests). */
			if (first && monotonic_ms() - s->signals_ms >= SESSION_TICK_MS)
				session_poll_signals(s);
			else
				scoreboard_set_state(s->ctx->slot, WORKER_BUSY);
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
		if (first)
			scoreboard_set_state(s->ctx->slot, WORKER_WAITING);
		first = false;
		r = session_wait_yielding(s, deadline, since, SESSION_YIELD_GRACE_MS);
		if (r == -EINTR)
			continue;    /* a signal: the stop flag is checked above */
		if (r == -EBUSY) {
			session_send_error(s, PROTO_ERR_SHUTTING_DOWN,
					   "busy: clients are waiting; idle connection closed");
			log_info("%s: idle while clients wait for a worker; closing", s->peer);
			return 0;
		}
		if (r < 0) {
			log_warn_errno(r, "%s: ppoll", s->peer);
			return 0;
		}
		if (r == 0) {
			session_send_error(s, PROTO_ERR_TIMEOUT, "idle timeout");
			log_info("%s: idle for %" PRIu64 " ms; closing", s->peer,
				 s->ctx->conf->idle_timeout_ms);
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

static void session_greet(struct session *s)
{
	const char *mech = session_auth_offer(s);
	char line[256], caps[64];
	int n;

	if (mech)
		snprintf(caps, sizeof(caps), "auth=%s", mech);
	n = proto_format_greeting(line, sizeof(line), "tcpfiled/" TCPFILED_VERSION,
				  mech ? caps : NULL);

	if (n < 0)
		s->close = true;
	else
		session_send(s, line, (size_t)n, false);
}

/* Reads and answers the client's HELLO.  Returns 0 when the session may
 * go on; otherwise the refusal is sent and logged and the caller closes. */
static int session_hello(struct session *s)
{
	uint64_t deadline = monotonic_ms() + s->ctx->conf->handshake_timeout_ms;
	struct proto_hello h;
	const char *why;
	char *line;
	size_t len;
	int r, code;

	/* A client that has sent nothing by the time it is accepted (with
	 * TCP_DEFER_ACCEPT it has been silent for the whole defer period)
	 * gives its worker up at once to a client that queues.  Not over TLS:
	 * there the data that ended the deferral was the ClientHello, and
	 * the HELLO follows the handshake. */
	const struct session_ctx *ctx = s->ctx;

	if (ctx->conf->defer_accept_ms && !s->tls && !session_input_ready(s) &&
	    ctx->pressure && ctx->pressure(ctx->pressure_arg, true)) {
		r = -EBUSY;
	} else {
		s->yield_grace_ms = SESSION_HELLO_GRACE_MS;
		s->stop_ends_wait = true;
		scoreboard_set_state(ctx->slot, WORKER_WAITING);
		r = session_wait_line(s, deadline, &line, &len);
		s->stop_ends_wait = false;
	}
	if (r == -ESHUTDOWN) {
		session_send_error(s, PROTO_ERR_SHUTTING_DOWN, "shutting down");
		return r;
	}
	scoreboard_set_state(s->ctx->slot, WORKER_BUSY);
	if (r == -EBUSY) {
		session_send_error(s, PROTO_ERR_SHUTTING_DOWN,
				   "busy: clients are waiting; no HELLO yet");
		log_info("%s: no HELLO while clients wait for a worker; closing", s->peer);
		return r;
	}
	if (r == -ETIMEDOUT) {
		session_send_error(s, PROTO_ERR_TIMEOUT, "no HELLO in time");
		log_info("%s: no HELLO within %" PRIu64 " ms; closing", s->peer,
			 s->ctx->conf->handshake_timeout_ms);
		return -ETIMEDOUT;
	}
	if (r == -EMSGSIZE) {
		session_send_error(s, PROTO_ERR_BAD_REQUEST,
				   "expected HELLO; this is a tcpfile protocol 2 server");
		log_notice("%s: first line longer than %d bytes; closing", s->peer,
			   PROTO_MAX_LINE);
		return r;
	}
	if (r <= 0) {
		log_debug("%s: closed before HELLO", s->peer);
		return r < 0 ? r : -EPIPE;
	}
	code = proto_parse_hello(line, len, &h, &why);
	if (code) {
		/* Nothing of a peer that does not speak the protocol is
		 * executed: one answer, then the connection ends. */
		session_send_error(s, code, why);
		session_log_refused_line(s, line, len, code, why);
		return -EPROTO;
	}
	char agent[64];
	size_t alen = h.agent_len < sizeof(agent) - 1 ? h.agent_len : sizeof(agent) - 1;
	if (h.agent)
		memcpy(agent, h.agent, alen);
	agent[h.agent ? alen : 0] = '\0';
	if (!h.agent)
		snprintf(agent, sizeof(agent), "-");
	/* The agent is the client's text: escaped by the line parser's
	 * printable-ASCII rule already. */
	log_debug("%s: HELLO %u from %s", s->peer, h.version, agent);
	/* Inside a body, a frame line owed for this long under pressure
	 * marks a trickler. */
	s->yield_grace_ms = SESSION_BODY_TICK_MS;
	/* Enabled: what was offered and asked for. */
	const char *mech = session_auth_offer(s);
	if (mech && proto_hello_has_cap(&h, "auth", NULL, NULL))
		session_reply(s, "OK version=%d auth=%s\n", PROTO_VERSION, mech);
	else
		session_reply(s, "OK version=%d\n", PROTO_VERSION);
	return s->close ? -EPIPE : 0;
}

static const char *const session_ops[] = {
	[PROTO_PUT] = "put", [PROTO_GET] = "get", [PROTO_STAT] = "stat",
	[PROTO_LIST] = "list", [PROTO_DEL] = "del", [PROTO_NOOP] = "noop",
	[PROTO_QUIT] = "quit",
};

/* Shows the request on the scoreboard (tcpfiled status). */
static void session_show_request(struct session *s, const struct proto_request *req)
{
	const char *slash = memchr(req->path, '/', req->path_len);
	size_t share_len = slash ? (size_t)(slash - req->path) : req->path_len;
	char share[128];

	if (share_len >= sizeof(share))
		share_len = sizeof(share) - 1;
	memcpy(share, req->path, share_len);
	share[share_len] = '\0';
	scoreboard_begin_request(s->ctx->slot, session_ops[req->verb], share,
				 slash ? slash + 1 : "",
				 req->verb == PROTO_PUT && req->has_size ? req->size : 0);
}

static void session_dispatch(struct session *s, struct proto_request *req)
{
	/* Uploads still in the batch must exist before anything else looks,
	 * and what they and the held-back answers say goes out first. */
	if (req->verb != PROTO_PUT) {
		if (s->batch.n)
			upload_flush(s);
		session_flush_replies(s);
	}
	session_show_request(s, req);
	switch (req->verb) {
	case PROTO_PUT:
		upload_run(s, req);
		break;
	case PROTO_GET:
		download_run(s, req);
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
	case PROTO_NOOP:
		session_reply(s, "OK\n");
		break;
	case PROTO_QUIT:
		session_reply(s, "OK bye\n");
		s->close = true;
		break;
	}
	scoreboard_end_request(s->ctx->slot);
}

/* A request line the parser refused.  Not a request of this protocol:
 * answered once and the connection ends, so bytes of another protocol
 * never get a second line executed.  A bad argument: answered, and a
 * PUT's body skipped. */
static void session_refuse(struct session *s, struct proto_request *req,
			   const char *line, size_t len, int code, const char *why)
{
	struct outcome o = { .op = session_ops[req->verb], .req = req,
			     .start_ms = monotonic_ms(), .result = "refused" };

	session_log_refused_line(s, line, len, code, why);
	if (code == PROTO_ERR_BAD_REQUEST) {
		session_send_error(s, code, why);
		s->close = true;
		return;
	}
	/* The line itself is logged above; o only counts a skipped body. */
	session_fail(s, &o, code, why);
	if (req->verb == PROTO_PUT)
		upload_skip_body(s, &o);
}

void session_run(struct session_ctx *ctx, struct conn *c, bool tls,
		 const struct sockaddr_storage *peer)
{
	struct session s = { .ctx = ctx, .conn = *c, .tls = tls,
			     .local = policy_peer_is_local((const struct sockaddr *)peer) };
	int fd = c->fd;
	struct proto_request *req = NULL;
	const struct config *conf = ctx->conf;
	/* Socket timeouts bound each blocking body read and write: a tick,
	 * so a stalled body is judged by its pace, or idle_timeout without
	 * a rate check. */
	uint64_t body_wait_ms = !conf->min_rate ? conf->idle_timeout_ms :
				conf->min_rate_window_ms < SESSION_BODY_TICK_MS ?
				conf->min_rate_window_ms : SESSION_BODY_TICK_MS;
	const char *why;
	char *line;
	size_t len;
	int one = 1, code;

	storage_batch_init(&s.batch);
	storage_cache_init(&s.cache);
	log_ratelimit_init(&s.refusals, 5, 0, LOG_NOTICE, "refused requests");
	listener_format_sockaddr((const struct sockaddr *)peer, s.peer, sizeof(s.peer));
	snprintf(s.pid, sizeof(s.pid), "%d", (int)getpid());
	/* The waits for lines use ppoll() with their own deadlines.  Sends
	 * may wait for room a whole pace window: replies and LIST lines
	 * have no pace of their own, and a download judges its pace when
	 * one returns (struct timeval, as socket_set_timeouts() sets it). */
	uint64_t send_wait_ms = conf->min_rate ? conf->min_rate_window_ms : conf->idle_timeout_ms;
	struct timeval snd = { .tv_sec = (time_t)(send_wait_ms / 1000),
			       .tv_usec = (suseconds_t)(send_wait_ms % 1000) * 1000 };
	if (socket_set_timeouts(fd, body_wait_ms) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof(snd)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		log_warn_errno(errno, "%s: socket options", s.peer);
	s.chunk = malloc(SESSION_CHUNK);
	req = malloc(sizeof(*req));
	if (!s.chunk || !req || linebuf_init(&s.lb, &s.conn, PROTO_MAX_LINE) < 0) {
		session_send_error(&s, PROTO_ERR_SHUTTING_DOWN, "cannot serve: out of memory");
		goto out;
	}
	log_debug("%s: connected", s.peer);
	/* The greeting goes out at once, though the client need not wait
	 * for it: a client that waits (protocol 1, a person with nc) learns
	 * what it reached. */
	session_greet(&s);
	if (s.close || session_hello(&s) < 0)
		goto out_finish;
	while (!s.close && session_next_request(&s, &line, &len) == 1) {
		/* A reload since the last request applies from this one on. */
		if (ctx->refresh) {
			const struct config *before = ctx->conf;

			ctx->refresh(ctx, ctx->refresh_arg);
			if (ctx->conf != before) {
				s.share_seen = NULL;
				storage_cache_reset(&s.cache);
			}
			session_auth_follow(&s);
		}
		if (proto_is_auth(line, len)) {
			if (s.batch.n)
				upload_flush(&s);
			session_flush_replies(&s);
			session_auth_run(&s, line, len);
			continue;
		}
		code = proto_parse_request(line, len, req, &why);
		if (code) {
			session_refuse(&s, req, line, len, code, why);
			continue;
		}
		session_dispatch(&s, req);
	}
out_finish:
	upload_finish(&s);
	session_flush_replies(&s);
	storage_cache_reset(&s.cache);
	{
		struct log_field f[] = { { "CLIENT", s.peer }, { "RESULT", "refused" } };

		log_ratelimit_flush(&s.refusals, f, 2);
	}
	linebuf_finish(&s.lb);
out:
	free(req);
	free(s.chunk);
	conn_close(&s.conn);
}
