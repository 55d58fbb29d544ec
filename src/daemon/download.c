/* download: GET: sends a file as DATA frames and an END trailer with the
 * digest of exactly what was sent.  The first byte leaves without hashing
 * the file first: bytes go out through sendfile() and are hashed from the
 * page cache right behind it (or not at all when a cached digest still
 * describes the file). */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "monotonic.h"
#include "session_internal.h"
#include "storage.h"

/* Bytes per DATA frame: large, so frame headers cost nothing. */
#define DOWNLOAD_FRAME ((uint64_t)4 * 1024 * 1024)
/* Bytes per sendfile() between pace checks and hash updates. */
#define DOWNLOAD_PIECE ((uint64_t)SESSION_CHUNK)

struct download {
	struct session *s;
	struct outcome *o;
	int fd;
	struct stat st;             /* at the start: the snapshot we send */
	bool cached;                /* dv came from the cache: no hashing */
	struct digest_ctx dc;
	struct digest_value dv;
	struct session_pace pace;
};

/* Hashes what was just sent, from the page cache.  Returns 0 or -ENODATA
 * when the file shrank under us. */
static int download_hash(struct download *d, off_t from, uint64_t len)
{
	struct session *s = d->s;

	while (len > 0) {
		size_t want = len < SESSION_CHUNK ? (size_t)len : SESSION_CHUNK;
		ssize_t n = pread(d->fd, s->chunk, want, from);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		digest_update(&d->dc, s->chunk, (size_t)n);
		from += n;
		len -= (uint64_t)n;
	}
	return 0;
}

/* Sends one frame's bytes.  Returns 0 or a negative errno; after an error
 * the frame is cut short and the connection cannot be kept. */
static int download_frame_bytes(struct download *d, off_t *offset, uint64_t len)
{
	struct session *s = d->s;

	while (len > 0) {
		uint64_t piece = len < DOWNLOAD_PIECE ? len : DOWNLOAD_PIECE, sent;
		off_t from = *offset;
		/* SO_SNDTIMEO is a tick: -EAGAIN after part of the piece (or
		 * none) went out lets a reader that stalls be judged. */
		int r = conn_sendfile(&s->conn, d->fd, offset, piece);

		if (r < 0 && (r != -EAGAIN || !d->pace.min_rate))
			return r;
		sent = (uint64_t)(*offset - from);
		if (!d->cached && sent) {
			int h = download_hash(d, from, sent);

			if (h < 0)
				return h;
		}
		d->o->bytes += sent;
		scoreboard_add_bytes(s->ctx->slot, sent);
		if (session_pace_account(&d->pace, sent) < 0)
			return -ETIMEDOUT;
		len -= sent;
	}
	return 0;
}

/* Sends the body: DATA frames, then END or ABORT.  Returns 0 when the
 * body was completed or ended with ABORT (the connection stays in step),
 * or a negative errno when it was cut inside a frame. */
static int download_body(struct download *d)
{
	struct session *s = d->s;
	uint64_t size = (uint64_t)d->st.st_size;
	off_t offset = 0;
	char hdr[PROTO_MAX_LINE];
	struct stat now;
	int n, r;

	session_pace_start(s, &d->pace);
	while ((uint64_t)offset < size && !s->close) {
		uint64_t len = size - (uint64_t)offset;

		if (len > DOWNLOAD_FRAME)
			len = DOWNLOAD_FRAME;
		/* A file that shrank can still be refused cleanly between
		 * frames; inside one it cannot. */
		if (fstat(d->fd, &now) < 0 || (uint64_t)now.st_size < (uint64_t)offset + len) {
			n = proto_format_abort(hdr, sizeof(hdr), PROTO_ERR_INTERNAL,
					       "the file shrank while being sent");
			if (n > 0)
				session_send(s, hdr, (size_t)n, false);
			d->o->result = "error";
			d->o->code = PROTO_ERR_INTERNAL;
			d->o->detail = "the file shrank while being sent";
			return 0;
		}
		n = proto_format_data(hdr, sizeof(hdr), len);
		if (n < 0)
			return -EINVAL;
		session_send(s, hdr, (size_t)n, true);
		if (s->close)
			return -EPIPE;
		r = download_frame_bytes(d, &offset, len);
		if (r < 0)
			return r;
	}
	if (!d->cached && digest_final(&d->dc, &d->dv) < 0)
		return -ENOMEM;
	n = proto_format_end(hdr, sizeof(hdr), &d->dv, false, 0);
	if (n < 0)
		return -EINVAL;
	session_send(s, hdr, (size_t)n, false);
	return s->close ? -EPIPE : 0;
}

/* Caches a digest we had to compute, where it will be read again: never
 * on a read-only share, and only if the file is still what we sent. */
static void download_cache_digest(struct download *d, const struct share_conf *share)
{
	struct stat now;

	if (d->cached || share->read_only || fstat(d->fd, &now) < 0)
		return;
	if (now.st_size != d->st.st_size || now.st_ino != d->st.st_ino ||
	    now.st_mtim.tv_sec != d->st.st_mtim.tv_sec ||
	    now.st_mtim.tv_nsec != d->st.st_mtim.tv_nsec)
		return;
	storage_digest_store(d->fd, &d->st, &d->dv);
}

void download_run(struct session *s, struct proto_request *req)
{
	struct outcome o = { .op = "get", .req = req, .start_ms = monotonic_ms(),
			     .result = "refused" };
	struct download d = { .s = s, .o = &o, .fd = -1 };
	const char *why = NULL;
	struct target t;
	int code, r;

	code = session_resolve(s, req, false, &t, &why);
	if (!code) {
		d.fd = storage_open_file(t.root_fd, t.rel, &d.st);
		if (d.fd < 0)
			code = session_status_from_errno(d.fd, &why);
	}
	if (!code) {
		d.cached = storage_digest_cached(d.fd, &d.st, req->alg, &d.dv) == 0;
		r = d.cached ? 0 : digest_init(&d.dc, req->alg);
		if (r < 0) {
			code = PROTO_ERR_INTERNAL;
			why = r == -ELIBACC ? DIGEST_UNAVAILABLE : strerror(-r);
		}
	}
	if (code) {
		session_fail(s, &o, code, why);
		goto out;
	}

	/* Now the total is known: show it on the scoreboard. */
	scoreboard_begin_request(s->ctx->slot, "get", t.share->name, t.rel,
				 (uint64_t)d.st.st_size);
	session_reply(s, "OK size=%" PRIu64 " mtime=%" PRId64 ".%09ld mode=%04o\n",
		      (uint64_t)d.st.st_size, (int64_t)d.st.st_mtim.tv_sec,
		      d.st.st_mtim.tv_nsec, (unsigned)(d.st.st_mode & 07777));
	r = s->close ? -EPIPE : download_body(&d);
	if (r < 0) {
		/* Cut inside a frame: nothing can resynchronise the client. */
		s->close = true;
		o.result = r == -ENODATA ? "error" : "aborted";
		o.detail = r == -ENODATA ? "the file shrank while being sent"
			 : r == -ETIMEDOUT || r == -EAGAIN ? "client reads too slowly"
			 : strerror(-r);
	} else if (strcmp(o.result, "error") != 0) {
		o.result = "ok";
		o.digest = &d.dv;
		scoreboard_add_transfer(s->ctx->slot);
		download_cache_digest(&d, t.share);
	}
	if (!d.cached)
		digest_finish(&d.dc);
out:
	if (d.fd >= 0)
		close(d.fd);
	session_log(s, &o);
}
