/* put: uploads over one connection in the pipelined form, driven by poll(),
 * each file's digest computed in the pass that sends it. */
#define _GNU_SOURCE
#include "transfer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* One fill of the send buffer: a chunk of body after up to one header,
 * plus the byte that shows a file grew past the size we announced. */
#define PUT_BUF_CAP (CLIENT_CHUNK + PROTO_MAX_LINE + 1)
/* put_read() reports the server's EOF as this (no read returns it). */
#define PUT_EOF (-ESHUTDOWN)

enum put_state {
	PUT_WAITING,   /* not opened yet */
	PUT_LOADING,   /* header queued, body being read into the buffer */
	PUT_SENT,      /* whole body queued; the final answer is due */
	PUT_DONE,      /* answered, or failed locally (reported) */
};

struct put_item {
	const char *local;
	char *remote;           /* NULL if LOCAL has no usable name */
	char *what;             /* "put LOCAL → REMOTE", for messages */
	enum put_state state;
	uint64_t size;
	bool digest_ok;         /* digest holds what we sent */
	struct digest_value digest;
};

enum put_result {
	PUT_FINISHED,    /* every opened file answered */
	PUT_RECONNECT,   /* a body was cut short; go on on a new connection */
	PUT_BROKEN,      /* connection lost; pending files reported */
};

struct put_batch {
	struct client *c;
	struct put_item *items;
	size_t n;
	bool no_clobber;
	int stdin_fd;           /* spooled stdin until handed to its item */

	char *out;              /* PUT_BUF_CAP bytes of headers and bodies */
	size_t out_start;
	size_t out_end;
	size_t next_load;       /* first item not opened yet */
	size_t next_answer;     /* first item whose answer may be due */
	int write_err;          /* send() failed: write no more */
	bool loading_done;      /* nothing more goes on this connection */
	bool aborting;          /* a sent header's body was cut short */
	bool write_shut;

	struct put_item *cur;   /* the item being read into out */
	int cur_fd;
	uint64_t cur_left;
	struct digest_ctx cur_digest;
	bool cur_hdr_in_fill;   /* its header is in the unsent fill */
	size_t cur_hdr_off;
};

/* ---- put: items ---- */

/* The name a LOCAL gets in a remote directory: its last component. */
static char *put_local_name(const char *local)
{
	char *copy = strdup(local);
	size_t len;
	char *name;

	if (!copy)
		return NULL;
	len = strlen(copy);
	while (len > 0 && copy[len - 1] == '/')
		copy[--len] = '\0';
	name = len ? strdup(client_basename(copy)) : strdup("");
	free(copy);
	return name;
}

static int put_items_init(struct put_batch *b, char *const *locals,
			  const char *remote, bool remote_is_dir)
{
	char what[CLIENT_WHAT_MAX];

	b->items = calloc(b->n, sizeof(*b->items));
	if (!b->items)
		return -ENOMEM;
	for (size_t i = 0; i < b->n; i++) {
		struct put_item *it = &b->items[i];
		char *name = NULL;
		int r = 0;

		it->local = locals[i];
		if (remote_is_dir) {
			name = put_local_name(it->local);
			if (!name)
				return -ENOMEM;
			if (name[0] && strcmp(name, ".") && strcmp(name, ".."))
				r = asprintf(&it->remote, "%s/%s", remote, name);
			free(name);
		} else {
			it->remote = strdup(remote);
			r = it->remote ? 0 : -1;
		}
		if (r < 0) {
			it->remote = NULL;
			return -ENOMEM;
		}
		it->what = strdup(client_what(what, sizeof(what), "put", it->local,
					      it->remote ? it->remote : remote));
		if (!it->what)
			return -ENOMEM;
	}
	return 0;
}

static void put_items_free(struct put_batch *b)
{
	if (!b->items)
		return;
	for (size_t i = 0; i < b->n; i++) {
		free(b->items[i].remote);
		free(b->items[i].what);
	}
	free(b->items);
	b->items = NULL;
}

/* Copies stdin into an unlinked temporary file: PUT announces the size
 * before the body.  Returns the fd (at offset 0) or -errno. */
static int put_spool_stdin(char *buf)
{
	const char *dir = getenv("TMPDIR");
	char *tmpl;
	int fd, r;

	if (!dir || !*dir)
		dir = "/tmp";
	if (asprintf(&tmpl, "%s/tcpfile-stdin-XXXXXX", dir) < 0)
		return -ENOMEM;
	fd = mkostemp(tmpl, O_CLOEXEC);
	r = fd < 0 ? -errno : 0;
	if (fd >= 0 && unlink(tmpl) < 0)
		r = -errno;
	free(tmpl);
	if (r < 0)
		goto err_close_fd;
	for (;;) {
		ssize_t n = read_full(STDIN_FILENO, buf, CLIENT_CHUNK);

		if (n < 0) {
			r = (int)n;
			goto err_close_fd;
		}
		if (n == 0)
			break;
		r = write_full(fd, buf, (size_t)n);
		if (r < 0)
			goto err_close_fd;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		r = -errno;
		goto err_close_fd;
	}
	return fd;

err_close_fd:
	if (fd >= 0)
		(void)close(fd);
	return r;
}

/* ---- put: reading files into the send buffer ---- */

static void put_drop_current(struct put_batch *b)
{
	if (!b->cur)
		return;
	/* Read-only: close() cannot lose data. */
	(void)close(b->cur_fd);
	digest_finish(&b->cur_digest);
	progress_end(&b->c->progress);
	b->cur = NULL;
	b->cur_fd = -1;
}

/* Sends nothing more on this connection. */
static void put_stop_loading(struct put_batch *b)
{
	put_drop_current(b);
	b->loading_done = true;
	b->out_start = b->out_end = 0;
}

static void put_append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void put_append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (*len >= cap)
		return;
	va_start(ap, fmt);
	r = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (r > 0)
		*len += (size_t)r;
}

/* "<size> [mode=…] [mtime=…] [overwrite=0] [alg=…] pipelined=1" */
static void put_format_args(const struct put_batch *b, const struct stat *st,
			    bool from_stdin, char *args, size_t cap)
{
	char alg[CLIENT_ALG_ARG_MAX];
	size_t len = 0;

	put_append(args, cap, &len, "%" PRIu64, (uint64_t)st->st_size);
	/* A spooled stdin has our temporary file's mode and time: send
	 * neither and let the server pick its defaults. */
	if (!from_stdin) {
		put_append(args, cap, &len, " mode=%04o", (unsigned)(st->st_mode & 0777));
		/* The protocol has no sign: files from before 1970 get the
		 * server's time. */
		if (st->st_mtim.tv_sec >= 0)
			put_append(args, cap, &len, " mtime=%lld.%09ld",
				   (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	}
	if (b->no_clobber)
		put_append(args, cap, &len, " overwrite=0");
	if (client_alg_arg(b->c, alg, sizeof(alg)))
		put_append(args, cap, &len, " %s", alg);
	put_append(args, cap, &len, " pipelined=1");
}

/* Opens the item and queues its header.  Failures are reported and leave
 * the item DONE. */
static void put_start(struct put_batch *b, struct put_item *it)
{
	struct client *c = b->c;
	bool from_stdin = strcmp(it->local, "-") == 0;
	char args[192];
	struct stat st;
	int fd, r;

	it->state = PUT_DONE;
	if (!it->remote) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: LOCAL has no file name", it->what);
		return;
	}
	if (from_stdin) {
		fd = b->stdin_fd;
		b->stdin_fd = -1;
	} else {
		/* O_NONBLOCK: opening a FIFO must not hang; regular files
		 * ignore it. */
		fd = open(it->local, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	}
	if (fd < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", it->what, strerror(errno));
		return;
	}
	if (fstat(fd, &st) < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", it->what, strerror(errno));
		goto err_close_fd;
	}
	if (!S_ISREG(st.st_mode)) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", it->what,
			     S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
		goto err_close_fd;
	}
	put_format_args(b, &st, from_stdin, args, sizeof(args));
	r = client_format_request(b->out + b->out_end, PUT_BUF_CAP - b->out_end,
				  "PUT", it->remote, args);
	if (r < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: remote path too long", it->what);
		goto err_close_fd;
	}
	if (digest_init(&b->cur_digest, c->alg) < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", it->what, strerror(ENOMEM));
		goto err_close_fd;
	}
	it->state = PUT_LOADING;
	it->size = (uint64_t)st.st_size;
	b->cur = it;
	b->cur_fd = fd;
	b->cur_left = it->size;
	b->cur_hdr_off = b->out_end;
	b->cur_hdr_in_fill = true;
	b->out_end += (size_t)r;
	progress_begin(&c->progress, it->local, it->size);
	return;

err_close_fd:
	(void)close(fd);
}

/* The current file cannot be sent as announced. */
static void put_cut(struct put_batch *b, const char *why)
{
	struct put_item *it = b->cur;

	put_drop_current(b);
	it->state = PUT_DONE;
	if (b->cur_hdr_in_fill) {
		/* Nothing of it has left: take its header back. */
		b->out_end = b->cur_hdr_off;
		client_error(b->c, CLIENT_FAIL_PERMANENT, "%s: %s; not sent", it->what, why);
		return;
	}
	/* Its header went out with an earlier fill, so it heads this one.
	 * Only ending the stream ends the body: the server then drops the
	 * partial upload, and the rest goes on a new connection. */
	b->out_end = b->out_start;
	b->aborting = true;
	b->loading_done = true;
	client_error(b->c, CLIENT_FAIL_PERMANENT, "%s: %s; upload aborted", it->what, why);
}

static void put_finish_current(struct put_batch *b)
{
	struct put_item *it = b->cur;

	it->digest_ok = digest_final(&b->cur_digest, &it->digest) == 0;
	it->state = PUT_SENT;
	put_drop_current(b);
}

/* Reads the next piece of the current file into the buffer (room >= 2). */
static void put_load(struct put_batch *b)
{
	size_t room = PUT_BUF_CAP - b->out_end;
	size_t want = room - 1;
	char why[128];
	bool last;
	ssize_t n;

	if (want > CLIENT_CHUNK)
		want = CLIENT_CHUNK;
	if (b->cur_left < want)
		want = (size_t)b->cur_left;
	last = want == b->cur_left;
	/* The last read asks for one byte more: getting it means the file
	 * grew after we announced its size. */
	n = read_full(b->cur_fd, b->out + b->out_end, last ? want + 1 : want);
	if (n < 0) {
		snprintf(why, sizeof(why), "read: %s", strerror((int)-n));
		put_cut(b, why);
		return;
	}
	if ((size_t)n != want) {
		put_cut(b, (size_t)n < want ? "file shrank while being sent"
					    : "file grew while being sent");
		return;
	}
	digest_update(&b->cur_digest, b->out + b->out_end, want);
	b->out_end += want;
	b->cur_left -= want;
	progress_update(&b->c->progress, b->cur->size - b->cur_left);
	if (last)
		put_finish_current(b);
}

/* Refills the empty buffer with about a chunk: the rest of the current
 * file, or headers and bodies of as many next files as fit. */
static void put_fill(struct put_batch *b)
{
	b->out_start = b->out_end = 0;
	b->cur_hdr_in_fill = false;
	while (!b->loading_done && b->out_end < CLIENT_CHUNK) {
		if (b->cur) {
			put_load(b);
		} else if (b->next_load < b->n) {
			b->next_load++;
			put_start(b, &b->items[b->next_load - 1]);
		} else {
			b->loading_done = true;
		}
	}
}

/* ---- put: answers ---- */

/* Skips items that expect no answer; true while one is due. */
static bool put_answer_pending(struct put_batch *b)
{
	while (b->next_answer < b->next_load &&
	       b->items[b->next_answer].state == PUT_DONE)
		b->next_answer++;
	return b->next_answer < b->next_load;
}

static void put_verify(struct put_batch *b, struct put_item *it, uint64_t size,
		       const struct digest_value *got)
{
	char sent[DIGEST_TEXT_MAX], stored[DIGEST_TEXT_MAX];

	if (!it->digest_ok) {
		client_error(b->c, CLIENT_FAIL_PERMANENT,
			     "%s: cannot verify: computing the digest failed", it->what);
		return;
	}
	if (size == it->size && digest_equal(got, &it->digest))
		return;
	client_error(b->c, CLIENT_FAIL_PERMANENT,
		     "%s: DIGEST MISMATCH: sent %" PRIu64 " bytes %s, server stored %"
		     PRIu64 " bytes %s; the remote copy is damaged", it->what, it->size,
		     client_digest_text(&it->digest, sent, sizeof(sent)), size,
		     client_digest_text(got, stored, sizeof(stored)));
}

/* Handles one answer line.  Returns 0 or -EPROTO (reported). */
static int put_answer(struct put_batch *b, const char *line)
{
	struct proto_status st;
	struct digest_value got;
	struct put_item *it;
	uint64_t size;

	if (!put_answer_pending(b)) {
		/* The server's word on the body we cut short. */
		if (b->aborting)
			return 0;
		/* Every file is answered and the server is going away (it
		 * says ERR 421 to an idle connection when it shuts down):
		 * nothing of ours is lost. */
		if (proto_parse_status(line, &st) == 0 && !st.ok &&
		    st.code == PROTO_ERR_SHUTTING_DOWN) {
			b->c->gone = true;
			return 0;
		}
		return client_error_reply(b->c, "put", line);
	}
	it = &b->items[b->next_answer];
	if (proto_parse_status(line, &st) < 0)
		return client_error_reply(b->c, it->what, line);
	if (!st.ok) {
		client_error_status(b->c, it->what, &st);
		/* Answered before its body was complete: the server no longer
		 * reads our stream as we wrote it (it is closing). */
		if (it->state == PUT_LOADING)
			put_stop_loading(b);
		it->state = PUT_DONE;
		return 0;
	}
	if (it->state != PUT_SENT ||
	    client_parse_size_digest(st.text, &size, &got) < 0)
		return client_error_reply(b->c, it->what, line);
	it->state = PUT_DONE;
	put_verify(b, it, size, &got);
	return 0;
}

/* Handles every answer that has arrived.  Returns 0, PUT_EOF, or a
 * negative errno. */
static int put_read(struct put_batch *b)
{
	struct linebuf *lb = &b->c->lb;

	for (;;) {
		char *line;
		size_t len;
		ssize_t n;
		int r = linebuf_take_line(lb, &line, &len);

		if (r > 0) {
			r = put_answer(b, line);
			if (r < 0)
				return r;
			continue;
		}
		if (r < 0)
			return r;
		n = linebuf_fill(lb);
		if (n == -EAGAIN)
			return 0;
		if (n == 0)
			return PUT_EOF;
		if (n < 0 && n != -EINTR)
			return (int)n;
	}
}

static void put_send(struct put_batch *b)
{
	ssize_t n = send(b->c->fd, b->out + b->out_start, b->out_end - b->out_start,
			 MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		/* Keep reading: the server may have said why it closed. */
		b->write_err = -errno;
		put_stop_loading(b);
		return;
	}
	b->out_start += (size_t)n;
}

/* Waits until the socket can move bytes either way and moves them.  Reading
 * is always on, so answers never pile up while we write. */
static int put_poll(struct put_batch *b)
{
	struct pollfd pfd = { .fd = b->c->fd, .events = POLLIN };
	int n, r;

	if (b->out_start < b->out_end)
		pfd.events |= POLLOUT;
	n = poll(&pfd, 1, CLIENT_IO_TIMEOUT_MS);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	if (n == 0)
		return -ETIMEDOUT;
	if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
		r = put_read(b);
		if (r < 0)
			return r;
	}
	if ((pfd.revents & POLLOUT) && b->out_start < b->out_end)
		put_send(b);
	return 0;
}

/* The connection is lost: reports it and every file whose answer is due. */
static void put_fail_pending(struct put_batch *b, int err)
{
	struct client *c = b->c;
	enum client_fail kind = CLIENT_FAIL_PROTOCOL;

	put_drop_current(b);
	if (!c->gone)
		client_error_connection(c, "put", err == PUT_EOF ? 0 : err);
	if (c->closing || err == -ETIMEDOUT)
		kind = CLIENT_FAIL_TEMPORARY;
	for (size_t i = b->next_answer; i < b->next_load; i++) {
		struct put_item *it = &b->items[i];

		if (it->state == PUT_DONE)
			continue;
		client_error(c, kind, "%s: no answer from the server; it may not be stored",
			     it->what);
		it->state = PUT_DONE;
	}
}

/* Sends files from next_load on over c's connection until all are
 * answered, a body had to be cut short, or the connection is lost. */
static enum put_result put_run(struct put_batch *b)
{
	struct client *c = b->c;
	int r;

	b->out_start = b->out_end = 0;
	b->next_answer = b->next_load;
	b->write_err = 0;
	b->loading_done = b->aborting = b->write_shut = false;
	r = fd_set_nonblock(c->fd, true);
	if (r < 0)
		goto broken;

	for (;;) {
		if (b->out_start == b->out_end && !b->loading_done)
			put_fill(b);
		if (b->out_start == b->out_end && b->aborting && !b->write_shut) {
			if (shutdown(c->fd, SHUT_WR) < 0) {
				r = -errno;
				goto broken;
			}
			b->write_shut = true;
		}
		if (b->loading_done && b->out_start == b->out_end &&
		    !put_answer_pending(b)) {
			if (b->write_err) {
				r = b->write_err;
				goto broken;
			}
			return b->aborting ? PUT_RECONNECT : PUT_FINISHED;
		}
		r = put_poll(b);
		if (r < 0)
			goto broken;
	}

broken:
	put_fail_pending(b, r);
	return PUT_BROKEN;
}

void transfer_put(struct client *c, char *const *locals, size_t n,
		  const char *remote, bool remote_is_dir, bool no_clobber)
{
	struct put_batch b = {
		.c = c,
		.n = n,
		.no_clobber = no_clobber,
		.stdin_fd = -1,
		.cur_fd = -1,
	};
	enum put_result res = PUT_FINISHED;
	size_t unsent;
	int r;

	b.out = malloc(PUT_BUF_CAP);
	r = b.out ? put_items_init(&b, locals, remote, remote_is_dir) : -ENOMEM;
	if (r < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "put: %s", strerror(-r));
		goto out_free;
	}
	if (n == 1 && strcmp(locals[0], "-") == 0) {
		b.stdin_fd = put_spool_stdin(b.out);
		if (b.stdin_fd < 0) {
			client_error(c, CLIENT_FAIL_PERMANENT, "put: reading stdin: %s",
				     strerror(-b.stdin_fd));
			goto out_free;
		}
	}

	do {
		if (client_connect(c) < 0)
			break;
		res = put_run(&b);
		client_disconnect(c);
	} while (res == PUT_RECONNECT && b.next_load < b.n);

	/* Whatever stopped us early is already reported; this says what it
	 * cost. */
	unsent = b.n - b.next_load;
	if (unsent)
		client_error(c, c->closing ? CLIENT_FAIL_TEMPORARY : CLIENT_FAIL_PROTOCOL,
			     "put: %zu more file%s not sent", unsent, unsent == 1 ? "" : "s");

out_free:
	if (b.stdin_fd >= 0)
		(void)close(b.stdin_fd);
	put_items_free(&b);
	free(b.out);
}
