/* put: uploads over one connection, driven by poll(): small files go out
 * whole (header, DATA, END) and pipelined; a larger file or stdin asks for
 * CONTINUE first and sends at most one frame before it, so a refusal costs
 * at most one frame.  Each digest is computed in the pass that sends. */
#define _GNU_SOURCE
#include "transfer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Requests sent and not yet answered, at most.  Their answers (a line of
 * about 80 bytes each) then always fit the socket buffers, so a blocking
 * write can never wait on a server that waits on us to read. */
#define PUT_WINDOW 512
/* "END digest=sha256:<64 hex>\n" and "ABORT\n" fit. */
#define PUT_TRAILER_MAX (DIGEST_TEXT_MAX + 16)
/* The send buffer: filled to CLIENT_CHUNK, plus one whole small file
 * (header, frame header, body, the byte that shows it grew, END). */
#define PUT_OUT_CAP (2 * CLIENT_CHUNK + PROTO_MAX_LINE + PROTO_FRAME_HDR_MAX + \
		     PUT_TRAILER_MAX + 1)
/* put_poll() reports the server's EOF as this (no read returns it). */
#define PUT_EOF (-ESHUTDOWN)

enum put_state {
	PUT_WAITING,    /* not opened yet */
	PUT_STREAMING,  /* header queued, END not yet: it is b->cur */
	PUT_SENT,       /* END queued; the final answer is due */
	PUT_ABANDONED,  /* we sent ABORT (reported); the answer is due, 450 */
	PUT_DONE,       /* answered, or failed before anything was queued */
};

struct put_item {
	const char *local;
	char *remote;           /* NULL if LOCAL has no usable name */
	char *what;             /* "put LOCAL → REMOTE", for messages */
	enum put_state state;
	uint64_t size;          /* bytes sent (once SENT) */
	bool digest_ok;         /* digest holds what we sent */
	struct digest_value digest;
};

struct put_batch {
	struct client *c;
	struct put_item *items;
	size_t n;
	bool no_clobber;

	/* What the next write sends: out, then data (a large frame's bytes,
	 * read straight into their own buffer). */
	char *out;              /* PUT_OUT_CAP bytes */
	size_t out_len;
	char *data;             /* CLIENT_CHUNK + 1 bytes */
	size_t data_len;

	size_t next_open;       /* first item not opened yet */
	size_t next_answer;     /* first item whose final answer may be due */
	size_t written;         /* items whose header has been written */
	size_t in_flight;       /* items queued and not yet answered */
	int write_err;          /* a write failed: send nothing more */

	/* The item whose body goes in frames after a CONTINUE, or NULL. */
	struct put_item *cur;
	int cur_fd;
	bool cur_stream;        /* stdin: no size, read as it comes */
	bool cur_continued;     /* its CONTINUE arrived */
	bool cur_hdr_queued;    /* its header is in out, not yet written */
	size_t cur_frame_off;   /* where its queued frame starts in out */
	uint64_t cur_left;      /* bytes still to send (size known) */
	uint64_t cur_sent;
	struct digest_ctx cur_digest;
};

/* ---- items ---- */

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

/* ---- building what goes out ---- */

/* "[size=N] [mode=…] [mtime=…] [overwrite=0] [alg=…] [continue=1]" */
static void put_format_args(const struct put_batch *b, const struct stat *st,
			    bool from_stdin, bool want_continue, char *args, size_t cap)
{
	char alg[CLIENT_ALG_ARG_MAX];
	int n = 0;

	args[0] = '\0';
	/* stdin has no size, and its mode and time are not the data's: the
	 * server picks its defaults. */
	if (!from_stdin) {
		n = snprintf(args, cap, "size=%" PRIu64 " mode=%04o", (uint64_t)st->st_size,
			     (unsigned)(st->st_mode & 0777));
		/* The protocol has no sign: files from before 1970 get the
		 * server's time. */
		if (st->st_mtim.tv_sec >= 0)
			n += snprintf(args + n, cap - (size_t)n, " mtime=%lld.%09ld",
				      (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	}
	if (b->no_clobber)
		n += snprintf(args + n, cap - (size_t)n, " overwrite=0");
	if (client_alg_arg(b->c, alg, sizeof(alg)))
		n += snprintf(args + n, cap - (size_t)n, " %s", alg);
	if (want_continue)
		n += snprintf(args + n, cap - (size_t)n, " continue=1");
	/* A leading space would make an empty token. */
	if (args[0] == ' ')
		memmove(args, args + 1, strlen(args));
}

/* Queues the PUT line.  Returns 0 or -ENAMETOOLONG (reported). */
static int put_queue_header(struct put_batch *b, struct put_item *it,
			    const struct stat *st, bool from_stdin, bool want_continue)
{
	char args[192];
	int r;

	put_format_args(b, st, from_stdin, want_continue, args, sizeof(args));
	r = client_format_request(b->out + b->out_len, PUT_OUT_CAP - b->out_len, "PUT",
				  it->remote, args[0] ? args : NULL);
	if (r < 0) {
		client_error(b->c, CLIENT_FAIL_PERMANENT, "%s: remote path too long", it->what);
		return r;
	}
	b->out_len += (size_t)r;
	return 0;
}

/* Queues "DATA n" (1 <= n <= CLIENT_CHUNK: always valid). */
static void put_queue_data_header(struct put_batch *b, uint64_t n)
{
	int r = proto_format_data(b->out + b->out_len, PUT_OUT_CAP - b->out_len, n);

	if (r > 0)
		b->out_len += (size_t)r;
}

static void put_queue_end(struct put_batch *b, const struct digest_value *d)
{
	int r = proto_format_end(b->out + b->out_len, PUT_OUT_CAP - b->out_len, d,
				 false, 0);

	if (r > 0)
		b->out_len += (size_t)r;
}

static void put_queue_abort(struct put_batch *b)
{
	int r = proto_format_abort(b->out + b->out_len, PUT_OUT_CAP - b->out_len, 0, NULL);

	if (r > 0)
		b->out_len += (size_t)r;
}

/* Reads exactly want bytes of a file of known size into buf, asking for
 * one more when last: getting it means the file grew.  Returns 0, or a
 * negative errno with *why set to the reason. */
static int put_read_exact(int fd, char *buf, size_t want, bool last, char *why,
			  size_t why_cap)
{
	ssize_t n = read_file_full(fd, buf, last ? want + 1 : want, want);

	if (n < 0) {
		snprintf(why, why_cap, "read: %s", strerror((int)-n));
		return (int)n;
	}
	if ((size_t)n < want) {
		snprintf(why, why_cap, "file shrank while being sent");
		return -ENODATA;
	}
	if ((size_t)n > want) {
		snprintf(why, why_cap, "file grew while being sent");
		return -EFBIG;
	}
	return 0;
}

/* One read of stdin, as much as it has (up to CLIENT_CHUNK).  Returns the
 * count (0 at EOF) or a negative errno with *why set. */
static ssize_t put_read_stream(int fd, char *buf, char *why, size_t why_cap)
{
	ssize_t n;

	do
		n = read(fd, buf, CLIENT_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		n = -errno;
		snprintf(why, why_cap, "read: %s", strerror(errno));
	}
	return n;
}

/* Queues a body that fits one frame: header, DATA, the bytes, END (an
 * empty stdin: header and END).  Failures are reported and take
 * everything of the item back. */
static void put_queue_small(struct put_batch *b, struct put_item *it, int fd,
			    const struct stat *st, bool from_stdin)
{
	size_t start = b->out_len;
	size_t len = from_stdin ? 0 : (size_t)st->st_size;
	char why[128];
	int r;

	if (put_queue_header(b, it, st, from_stdin, false) < 0)
		return;
	if (len > 0)
		put_queue_data_header(b, len);
	/* Even for 0 bytes: the extra byte read shows a file that grew. */
	if (!from_stdin && put_read_exact(fd, b->out + b->out_len, len, true, why,
					  sizeof(why)) < 0) {
		b->out_len = start;
		client_error(b->c, CLIENT_FAIL_PERMANENT, "%s: %s; not sent", it->what, why);
		return;
	}
	r = digest_buffer(b->c->alg, b->out + b->out_len, len, &it->digest);
	if (r < 0) {
		/* Never a file that could not be checked. */
		b->out_len = start;
		client_error(b->c, CLIENT_FAIL_PERMANENT, "%s: digest: %s; not sent", it->what,
			     strerror(-r));
		return;
	}
	it->digest_ok = true;
	b->out_len += len;
	it->size = len;
	put_queue_end(b, it->digest_ok ? &it->digest : NULL);
	it->state = PUT_SENT;
	b->in_flight++;
}

/* Queues the header (continue=1) and first frame of a body that may need
 * more than one frame; the item becomes b->cur, taking fd over.  first:
 * stdin's first n bytes, already in b->data.  Returns 0 or a negative
 * errno (reported; the fd is then the caller's). */
static int put_queue_large(struct put_batch *b, struct put_item *it, int fd,
			   const struct stat *st, bool from_stdin, size_t n)
{
	size_t start = b->out_len;
	char why[128];
	int r;

	r = digest_init(&b->cur_digest, b->c->alg);
	if (r < 0) {
		client_error(b->c, CLIENT_FAIL_PERMANENT, "%s: %s", it->what, strerror(-r));
		return r;
	}
	r = put_queue_header(b, it, st, from_stdin, true);
	if (r == 0 && !from_stdin) {
		n = CLIENT_CHUNK;
		r = put_read_exact(fd, b->data, n, false, why, sizeof(why));
		if (r < 0)
			client_error(b->c, CLIENT_FAIL_PERMANENT, "%s: %s; not sent",
				     it->what, why);
	}
	if (r < 0) {
		b->out_len = start;
		digest_finish(&b->cur_digest);
		return r;
	}
	b->cur_frame_off = b->out_len;
	put_queue_data_header(b, n);
	digest_update(&b->cur_digest, b->data, n);
	b->data_len = n;
	b->cur = it;
	b->cur_fd = fd;
	b->cur_stream = from_stdin;
	b->cur_continued = false;
	b->cur_hdr_queued = true;
	b->cur_sent = n;
	b->cur_left = from_stdin ? 0 : (uint64_t)st->st_size - n;
	it->state = PUT_STREAMING;
	b->in_flight++;
	progress_begin(&b->c->progress, it->local,
		       from_stdin ? PROGRESS_TOTAL_UNKNOWN : (uint64_t)st->st_size);
	progress_update(&b->c->progress, n);
	return 0;
}

/* Opens fd's file (or stdin) and checks it can be sent.  Returns the fd,
 * or -1 (reported). */
static int put_open_local(struct put_batch *b, struct put_item *it, bool from_stdin,
			  struct stat *st)
{
	struct client *c = b->c;
	int fd;

	if (!it->remote) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: LOCAL has no file name", it->what);
		return -1;
	}
	/* O_NONBLOCK: opening a FIFO must not hang; regular files ignore
	 * it.  stdin is not ours to change, nor to close. */
	fd = from_stdin ? STDIN_FILENO
			: open(it->local, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", it->what, strerror(errno));
		return -1;
	}
	if (fstat(fd, st) < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", it->what, strerror(errno));
		goto err_close_fd;
	}
	if (!from_stdin && !S_ISREG(st->st_mode)) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", it->what,
			     S_ISDIR(st->st_mode) ? "is a directory" : "not a regular file");
		goto err_close_fd;
	}
	return fd;

err_close_fd:
	if (!from_stdin)
		(void)close(fd);
	return -1;
}

static void put_close_local(int fd)
{
	/* Read-only: close() cannot lose data.  stdin stays open. */
	if (fd != STDIN_FILENO)
		(void)close(fd);
}

/* Opens the item and queues it: whole, or its header and first frame. */
static void put_open(struct put_batch *b, struct put_item *it)
{
	bool from_stdin = strcmp(it->local, "-") == 0;
	char why[128];
	struct stat st;
	ssize_t n = 0;
	int fd;

	it->state = PUT_DONE;
	fd = put_open_local(b, it, from_stdin, &st);
	if (fd < 0)
		return;
	if (from_stdin) {
		/* Its first read decides: nothing at all goes out whole. */
		n = put_read_stream(fd, b->data, why, sizeof(why));
		if (n < 0) {
			client_error(b->c, CLIENT_FAIL_PERMANENT, "%s: %s; not sent",
				     it->what, why);
			return;
		}
		if (n == 0) {
			put_queue_small(b, it, fd, &st, true);
			return;
		}
	} else if ((uint64_t)st.st_size <= CLIENT_CHUNK) {
		put_queue_small(b, it, fd, &st, false);
		put_close_local(fd);
		return;
	}
	if (put_queue_large(b, it, fd, &st, from_stdin, (size_t)n) < 0)
		put_close_local(fd);
}

/* Releases the current item's file and digest. */
static void put_drop_current(struct put_batch *b)
{
	if (!b->cur)
		return;
	put_close_local(b->cur_fd);
	digest_finish(&b->cur_digest);
	progress_end(&b->c->progress);
	b->cur = NULL;
	b->cur_fd = -1;
}

/* The current body cannot be sent as announced (a read failed, the file
 * changed): its frames stop with ABORT.  (Its header and first frame are
 * written by then: put_queue_large() reads that frame itself.) */
static void put_abandon_current(struct put_batch *b, const char *why)
{
	struct put_item *it = b->cur;

	put_drop_current(b);
	b->data_len = 0;
	b->out_len = b->cur_frame_off;
	put_queue_abort(b);
	/* The server answers ERR 450 to the ABORT: that is this item's
	 * answer, and the reason to report is ours. */
	it->state = PUT_ABANDONED;
	client_error(b->c, CLIENT_FAIL_PERMANENT, "%s: %s; upload aborted", it->what, why);
}

/* Queues END with the digest of everything sent. */
static void put_finish_current(struct put_batch *b)
{
	struct put_item *it = b->cur;

	it->digest_ok = digest_final(&b->cur_digest, &it->digest) == 0;
	it->size = b->cur_sent;
	put_queue_end(b, it->digest_ok ? &it->digest : NULL);
	it->state = PUT_SENT;
	/* digest_final released the context; finishing it again is a
	 * no-op. */
	put_drop_current(b);
}

/* Queues the current body's next frame, or its END. */
static void put_next_frame(struct put_batch *b)
{
	char why[128];
	size_t want;
	ssize_t n;

	b->cur_frame_off = b->out_len;
	if (b->cur_stream) {
		n = put_read_stream(b->cur_fd, b->data, why, sizeof(why));
		if (n < 0) {
			put_abandon_current(b, why);
			return;
		}
		want = (size_t)n;
	} else {
		want = b->cur_left < CLIENT_CHUNK ? (size_t)b->cur_left : CLIENT_CHUNK;
		if (want > 0 && put_read_exact(b->cur_fd, b->data, want,
					       want == b->cur_left, why, sizeof(why)) < 0) {
			put_abandon_current(b, why);
			return;
		}
		b->cur_left -= want;
	}
	if (want == 0) {
		put_finish_current(b);
		return;
	}
	put_queue_data_header(b, want);
	digest_update(&b->cur_digest, b->data, want);
	b->data_len = want;
	b->cur_sent += want;
	progress_update(&b->c->progress, b->cur_sent);
}

/* Fills the empty send buffers: the current body's next frame once its
 * CONTINUE came, else as many next files as fit (up to a large one). */
static void put_build(struct put_batch *b)
{
	if (b->cur) {
		if (b->cur_continued)
			put_next_frame(b);
		return;
	}
	while (!b->cur && b->next_open < b->n && b->in_flight < PUT_WINDOW &&
	       b->out_len < CLIENT_CHUNK)
		put_open(b, &b->items[b->next_open++]);
}

/* ---- answers ---- */

/* Skips items that expect no answer; true while one is due. */
static bool put_answer_pending(struct put_batch *b)
{
	while (b->next_answer < b->next_open &&
	       b->items[b->next_answer].state == PUT_DONE)
		b->next_answer++;
	return b->next_answer < b->next_open;
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

/* The server refused the current body before its END: stop sending it
 * (a frame queued but not written is dropped: once its header is
 * written, out holds nothing but that frame) and end it with ABORT. */
static void put_refuse_current(struct put_batch *b)
{
	put_drop_current(b);
	b->out_len = 0;
	b->data_len = 0;
	put_queue_abort(b);
}

/* CONTINUE: the go-ahead for the current body, which must be the next
 * item to answer.  Returns 0 or -EPROTO (reported). */
static int put_continue(struct put_batch *b, const char *line)
{
	if (!b->cur || b->cur_continued || b->cur_hdr_queued ||
	    !put_answer_pending(b) || &b->items[b->next_answer] != b->cur)
		return client_error_reply(b->c, "put", line);
	b->cur_continued = true;
	return 0;
}

/* A line when no answer is due. */
static int put_unsolicited(struct put_batch *b, const char *line)
{
	struct proto_status st;

	/* Every file is answered and the server is going away (it says ERR
	 * 421 to an idle connection when it shuts down): nothing of ours is
	 * lost. */
	if (proto_parse_status(line, &st) == 0 && !st.ok &&
	    st.code == PROTO_ERR_SHUTTING_DOWN) {
		client_note_status(b->c, &st);
		return 0;
	}
	return client_error_reply(b->c, "put", line);
}

/* Handles one line from the server.  Returns 0 or -EPROTO (reported). */
static int put_answer(struct put_batch *b, const char *line, size_t len)
{
	struct proto_status st;
	struct digest_value got;
	struct put_item *it;
	uint64_t size;

	if (proto_is_continue(line, len))
		return put_continue(b, line);
	if (!put_answer_pending(b))
		return put_unsolicited(b, line);
	it = &b->items[b->next_answer];
	/* Nothing of it has left yet: the server cannot be answering it. */
	if (b->next_answer >= b->written || proto_parse_status(line, &st) < 0)
		return client_error_reply(b->c, it->what, line);
	b->in_flight--;
	if (!st.ok) {
		if (it->state == PUT_ABANDONED)
			client_note_status(b->c, &st);
		else
			client_error_status(b->c, it->what, &st);
		if (it == b->cur)
			put_refuse_current(b);
		it->state = PUT_DONE;
		return 0;
	}
	if (it->state != PUT_SENT || client_parse_put_reply(st.text, &size, &got) < 0) {
		it->state = PUT_DONE;
		return client_error_reply(b->c, it->what, line);
	}
	it->state = PUT_DONE;
	put_verify(b, it, size, &got);
	return 0;
}

/* Handles every complete line buffered.  Returns 0 or a negative errno
 * (reported). */
static int put_take_answers(struct put_batch *b)
{
	char *line;
	size_t len;
	int r;

	while ((r = linebuf_take_line(&b->c->lb, &line, &len)) > 0) {
		r = put_answer(b, line, len);
		if (r < 0)
			return r;
	}
	if (r < 0)
		client_error_connection(b->c, "put", r);
	return r;
}

/* ---- the loop ---- */

/* Writes what is queued: out, then data, in one go for the kernel
 * (MSG_MORE).  The write blocks at most until the server has read it: it
 * reads whole frames even when it refuses them, and PUT_WINDOW keeps its
 * answers from filling the way back.  A failure stops the sending; the
 * answers are still read, since the server may have said why it
 * closed. */
static void put_write(struct put_batch *b)
{
	struct conn *conn = &b->c->conn;
	int r;

	r = conn_write(conn, b->out, b->out_len, b->data_len > 0);
	if (r == 0 && b->data_len > 0)
		r = conn_write(conn, b->data, b->data_len, false);
	b->out_len = b->data_len = 0;
	b->cur_frame_off = 0;
	b->written = b->next_open;
	b->cur_hdr_queued = false;
	if (r < 0) {
		b->write_err = r;
		put_drop_current(b);
	}
}

/* Waits until the socket can move bytes either way and moves them:
 * reading is always on, so answers never pile up while we write.  Returns
 * 0, PUT_EOF, or a negative errno. */
static int put_poll(struct put_batch *b)
{
	struct client *c = b->c;
	struct pollfd pfd = { .fd = c->conn.fd, .events = POLLIN };
	bool queued = (b->out_len > 0 || b->data_len > 0) && !b->write_err;
	ssize_t n;
	int r;

	if (queued)
		pfd.events |= POLLOUT;
	/* A TLS transport may hold decrypted bytes that poll() cannot see. */
	if (conn_pending(&c->conn) > 0) {
		pfd.revents = POLLIN;
	} else {
		r = poll(&pfd, 1, CLIENT_IO_TIMEOUT_MS);
		if (r < 0)
			return errno == EINTR ? 0 : -errno;
		if (r == 0)
			return -ETIMEDOUT;
	}
	if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
		n = linebuf_fill(&c->lb);
		if (n == 0)
			return PUT_EOF;
		if (n < 0 && n != -EINTR && n != -EAGAIN)
			return (int)n;
		return 0;
	}
	if ((pfd.revents & POLLOUT) && queued)
		put_write(b);
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
	if (c->closing || err == -ETIMEDOUT || err == -EAGAIN)
		kind = CLIENT_FAIL_TEMPORARY;
	for (size_t i = b->next_answer; i < b->next_open; i++) {
		struct put_item *it = &b->items[i];

		if (it->state == PUT_DONE)
			continue;
		if (it->state != PUT_ABANDONED)
			client_error(c, kind, "%s: no answer from the server; it may not be stored",
				     it->what);
		it->state = PUT_DONE;
	}
}

/* True once everything opened is answered and nothing more will go. */
static bool put_finished(struct put_batch *b)
{
	if (put_answer_pending(b) || b->cur)
		return false;
	return b->next_open == b->n || b->write_err || b->c->gone;
}

/* Sends every file over c's connection and reads every answer, until done
 * or the connection is lost. */
static void put_run(struct put_batch *b)
{
	struct client *c = b->c;
	int r;

	for (;;) {
		r = put_take_answers(b);
		if (r < 0)
			goto broken;
		/* The server announced its close (421, 426). */
		if (c->gone) {
			r = PUT_EOF;
			if (put_answer_pending(b))
				goto broken;
			return;
		}
		if (b->out_len == 0 && b->data_len == 0 && !b->write_err)
			put_build(b);
		if (put_finished(b) && b->out_len == 0 && b->data_len == 0) {
			if (!b->write_err)
				return;
			r = b->write_err;
			goto broken;
		}
		r = put_poll(b);
		if (r < 0)
			goto broken;
	}

broken:
	put_fail_pending(b, r);
}

void transfer_put(struct client *c, char *const *locals, size_t n,
		  const char *remote, bool remote_is_dir, bool no_clobber)
{
	struct put_batch b = {
		.c = c,
		.n = n,
		.no_clobber = no_clobber,
		.cur_fd = -1,
	};
	size_t unsent;
	int r;

	b.out = malloc(PUT_OUT_CAP);
	b.data = malloc(CLIENT_CHUNK + 1);
	r = b.out && b.data ? put_items_init(&b, locals, remote, remote_is_dir) : -ENOMEM;
	if (r < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "put: %s", strerror(-r));
		goto out_free;
	}
	if (client_connect(c) < 0)
		goto out_free;
	put_run(&b);
	client_disconnect(c);

	/* Whatever stopped us early is already reported; this says what it
	 * cost. */
	unsent = b.n - b.next_open;
	if (unsent)
		client_error(c, c->closing ? CLIENT_FAIL_TEMPORARY : CLIENT_FAIL_PROTOCOL,
			     "put: %zu more file%s not sent", unsent, unsent == 1 ? "" : "s");

out_free:
	put_items_free(&b);
	free(b.data);
	free(b.out);
}
