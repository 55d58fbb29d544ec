/* upload: PUT: receives a chunked body into a storage upload, hashing it in
 * the same pass.  A refusal, at the header or mid-body, is answered at once
 * and the rest of the body skipped, so the connection stays in step. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "monotonic.h"
#include "session_internal.h"
#include "storage.h"

struct upload {
	struct session *s;
	struct proto_request *req;
	struct outcome *o;
	struct target t;
	struct storage_upload up;
	struct digest_ctx dc;
	struct session_pace pace;
	bool active;          /* the storage upload and the digest are open */
	bool answered;        /* the request's one final answer went out */
	bool owed;            /* in the batch: answered and logged by upload_flush */
	bool overwrite;
	uint64_t received;    /* body bytes taken into the upload */
	struct digest_value dv;
};

/* Drops the unnamed file and the digest. */
static void upload_drop(struct upload *u)
{
	if (!u->active)
		return;
	digest_finish(&u->dc);
	storage_upload_abort(&u->up);
	u->active = false;
}

/* Refuses the upload now, whatever the client still sends: answered at
 * once so the client stops, the rest of the body is then skipped. */
static void upload_refuse(struct upload *u, int code, const char *why, const char *result)
{
	upload_drop(u);
	if (u->answered)
		return;
	u->o->result = result;
	session_fail(u->s, u->o, code, why);
	u->answered = true;
}

static int upload_begin(struct upload *u)
{
	const struct proto_request *req = u->req;
	const struct share_conf *share = u->t.share;
	const struct storage_limits lim = {
		.max_file_size = share->max_file_size,
		.min_free_bytes = share->min_free.bytes,
		.min_free_percent = share->min_free.percent,
		.umask = share->umask,
		.read_only = share->read_only,
	};
	unsigned mode = req->has_mode ? req->mode : 0644;
	const char *why;
	int code, r;

	r = storage_upload_begin_cached(&u->s->cache, u->t.root_fd, u->t.rel,
					req->has_size ? req->size : STORAGE_SIZE_UNKNOWN,
					mode, u->overwrite, &lim, &u->up);
	if (r < 0) {
		code = session_status_from_errno(r, &why);
		upload_refuse(u, code, why, "refused");
		return r;
	}
	r = digest_init(&u->dc, req->alg);
	if (r < 0) {
		storage_upload_abort(&u->up);
		upload_refuse(u, PROTO_ERR_INTERNAL,
			      r == -ELIBACC ? DIGEST_UNAVAILABLE : strerror(-r), "error");
		return r;
	}
	u->active = true;
	return 0;
}

/* Checks the header and opens the upload; refusals are answered. */
static void upload_start(struct upload *u)
{
	const struct proto_request *req = u->req;
	const char *why = NULL;
	int code;

	code = session_resolve(u->s, u->req, false, &u->t, &why);
	if (!code && u->t.share->read_only) {
		code = PROTO_ERR_FORBIDDEN;
		why = "read-only share";
	}
	if (!code && req->has_size && u->t.share->max_file_size &&
	    req->size > u->t.share->max_file_size) {
		code = PROTO_ERR_TOO_LARGE;
		why = "larger than the share's max_file_size";
	}
	if (code) {
		upload_refuse(u, code, why, "refused");
		return;
	}
	/* overwrite=1 cannot override a share with overwrite = no. */
	u->overwrite = u->t.share->overwrite && req->overwrite != 0;
	if (upload_begin(u) < 0)
		return;
	if (req->want_continue)
		session_reply(u->s, "CONTINUE\n");
}

/* Takes one chunk of body bytes into the upload, or refuses it. */
static void upload_take(struct upload *u, const char *buf, size_t n)
{
	const struct proto_request *req = u->req;
	uint64_t max = u->t.share ? u->t.share->max_file_size : 0;
	const char *why;
	int code, r;

	if (!u->active)
		return;
	if (req->has_size && u->received + n > req->size) {
		upload_refuse(u, PROTO_ERR_BAD_ARGUMENT, "the body is longer than size=", "refused");
		return;
	}
	if (max && u->received + n > max) {
		upload_refuse(u, PROTO_ERR_TOO_LARGE, "larger than the share's max_file_size",
			      "refused");
		return;
	}
	digest_update(&u->dc, buf, n);
	r = storage_upload_write(&u->up, buf, n);
	if (r < 0) {
		code = session_status_from_errno(r, &why);
		upload_refuse(u, code, why, "error");
		return;
	}
	u->received += n;
}

/* Reads a DATA frame's bytes.  Returns 0, or a negative errno when the
 * connection is lost (EOF, too slow): then nothing more can be read. */
static int upload_data(struct upload *u, uint64_t len)
{
	struct session *s = u->s;

	while (len > 0) {
		size_t want = len < SESSION_CHUNK ? (size_t)len : SESSION_CHUNK;
		int r = session_read_body(s, s->chunk, want, &u->pace);

		if (r < 0)
			return r;
		u->o->bytes += want;
		upload_take(u, s->chunk, want);
		len -= want;
	}
	return 0;
}

/* Puts a complete, checked upload into the session's batch: it is named,
 * made durable together with its neighbours and answered by
 * upload_flush().  Returns 0, or -errno when it cannot wait there (then
 * the caller commits it alone, or it has been refused). */
static int upload_owe(struct upload *u, const struct timespec *mtime)
{
	struct session *s = u->s;
	struct upload_owed *w;
	const char *why;
	int idx, code;

	if (!s->owed) {
		s->owed = calloc(STORAGE_BATCH_MAX, sizeof(*s->owed));
		if (!s->owed)
			return -ENOMEM;
	}
	if (s->batch.n >= STORAGE_BATCH_MAX)
		upload_flush(s);
	idx = storage_batch_add(&s->batch, &u->up, u->overwrite, mtime, NULL);
	u->active = false;
	if (idx < 0) {
		/* Taken over and released: answered in its turn. */
		code = session_status_from_errno(idx, &why);
		upload_refuse(u, code, why, idx == -EEXIST ? "refused" : "error");
		return 0;
	}
	w = &s->owed[idx];
	w->req = *u->req;
	w->o = *u->o;
	w->o.req = &w->req;
	w->dv = u->dv;
	w->size = u->received;
	u->answered = true;
	u->owed = true;
	return 0;
}

void upload_flush(struct session *s)
{
	char text[DIGEST_TEXT_MAX];
	const char *why;
	size_t n = storage_batch_count(&s->batch);
	int code;

	if (!n)
		return;
	s->flushing = true;
	(void)storage_batch_commit(&s->batch, true);
	for (size_t i = 0; i < n; i++) {
		struct upload_owed *w = &s->owed[i];
		int r = storage_batch_result(&s->batch, i);

		if (r < 0) {
			code = session_status_from_errno(r, &why);
			w->o.result = r == -EEXIST ? "refused" : "error";
			session_fail(s, &w->o, code, why);
		} else {
			if (digest_format(&w->dv, text, sizeof(text)) < 0)
				text[0] = '\0';
			session_answer(s, "OK size=%" PRIu64 " digest=%s\n", w->size, text);
			scoreboard_add_transfer(s->ctx->slot);
			w->o.digest = &w->dv;
			w->o.result = s->close ? "aborted" : "ok";
			w->o.detail = s->close ? "committed, but the final answer could not be sent"
					       : NULL;
		}
		session_log(s, &w->o);
	}
	storage_batch_reset(&s->batch);
	s->flushing = false;
}

void upload_finish(struct session *s)
{
	upload_flush(s);
	storage_batch_finish(&s->batch);
	free(s->owed);
	s->owed = NULL;
}

/* END: checks the body against size= and digest=, commits, answers. */
static void upload_end(struct upload *u, const struct proto_frame *f)
{
	const struct proto_request *req = u->req;
	struct session *s = u->s;
	char text[DIGEST_TEXT_MAX];
	const char *why;
	int code, r;

	if (!u->active)
		return;
	if (f->unknown_token) {
		upload_refuse(u, PROTO_ERR_BAD_ARGUMENT, "unknown token in END", "refused");
		return;
	}
	if (req->has_size && u->received != req->size) {
		upload_refuse(u, PROTO_ERR_BAD_ARGUMENT, "the body is shorter than size=", "refused");
		return;
	}
	if (f->has_digest && f->digest.alg != req->alg) {
		upload_refuse(u, PROTO_ERR_BAD_ARGUMENT,
			      "END digest= and alg= name different algorithms", "refused");
		return;
	}
	r = digest_final(&u->dc, &u->dv);
	if (r < 0) {
		storage_upload_abort(&u->up);
		u->active = false;
		upload_refuse(u, PROTO_ERR_INTERNAL, "digest failed", "error");
		return;
	}
	if (f->has_digest && !digest_equal(&u->dv, &f->digest)) {
		u->o->digest = &u->dv;
		storage_upload_abort(&u->up);
		u->active = false;
		upload_refuse(u, PROTO_ERR_DIGEST, "the body does not match digest=", "refused");
		return;
	}
	struct timespec mtime = { .tv_sec = req->mtime_sec, .tv_nsec = req->mtime_nsec };
	if (s->ctx->conf->fsync && upload_owe(u, req->has_mtime ? &mtime : NULL) == 0)
		return;
	/* Committed alone (fsync turned off by a reload, or no memory for the
	 * batch): the uploads before it in the batch go first. */
	if (s->batch.n)
		upload_flush(s);
	/* No digest xattr: it costs a sixth of a small upload and is read
	 * only if the file is downloaded, where GET caches what it hashes. */
	r = storage_upload_commit(&u->up, u->overwrite, s->ctx->conf->fsync,
				  req->has_mtime ? &mtime : NULL, NULL);
	u->active = false;
	if (r < 0) {
		code = session_status_from_errno(r, &why);
		upload_refuse(u, code, why, r == -EEXIST ? "refused" : "error");
		return;
	}
	if (digest_format(&u->dv, text, sizeof(text)) < 0)
		text[0] = '\0';
	session_answer(s, "OK size=%" PRIu64 " digest=%s\n", u->received, text);
	u->answered = true;
	scoreboard_add_transfer(s->ctx->slot);
	u->o->digest = &u->dv;
	u->o->result = s->close ? "aborted" : "ok";
	u->o->detail = s->close ? "committed, but the final answer could not be sent" : NULL;
}

/* The connection broke inside the body (EOF, too slow, framing): nothing
 * after this point can be read in step. */
static void upload_lost(struct upload *u, int err, const char *what)
{
	struct session *s = u->s;

	upload_drop(u);
	s->close = true;
	if (err == -ETIMEDOUT && !u->answered) {
		session_fail(s, u->o, PROTO_ERR_TIMEOUT, "body too slow or stalled");
		u->answered = true;
	}
	u->o->result = "aborted";
	if (!u->o->detail)
		u->o->detail = what;
}

/* Follows the body frames to END or ABORT. */
static void upload_frames(struct upload *u)
{
	struct session *s = u->s;
	const struct config *conf = s->ctx->conf;
	uint64_t wait_ms = conf->min_rate ? conf->min_rate_window_ms : conf->idle_timeout_ms;
	struct proto_frame f;
	char *line;
	size_t len;
	int r;

	session_pace_start(s, &u->pace);
	for (;;) {
		r = session_wait_line(s, monotonic_ms() + wait_ms, &line, &len);
		if (r == -ETIMEDOUT || r == -EBUSY) {
			upload_lost(u, -ETIMEDOUT, r == -EBUSY ? "body stalled while clients wait"
							       : "body stalled");
			return;
		}
		if (r <= 0) {
			upload_lost(u, r, r == 0 ? "client closed the connection mid-body"
						 : "body framing lost");
			return;
		}
		if (proto_parse_frame(line, len, &f) < 0) {
			upload_drop(u);
			session_fail(s, u->answered ? NULL : u->o, PROTO_ERR_BAD_REQUEST,
				     "framing error: expected DATA, END or ABORT");
			u->answered = true;
			s->close = true;
			u->o->result = "aborted";
			u->o->detail = "framing error";
			return;
		}
		switch (f.type) {
		case PROTO_FRAME_DATA:
			r = upload_data(u, f.len);
			if (r < 0) {
				upload_lost(u, r, r == -ETIMEDOUT ? "body too slow"
								  : "client closed the connection mid-body");
				return;
			}
			break;
		case PROTO_FRAME_END:
			upload_end(u, &f);
			return;
		case PROTO_FRAME_ABORT:
			upload_refuse(u, PROTO_ERR_ABORTED, "the client abandoned the body", "aborted");
			return;
		}
	}
}

void upload_run(struct session *s, struct proto_request *req)
{
	struct outcome o = { .op = "put", .req = req, .start_ms = monotonic_ms(),
			     .result = "refused" };
	struct upload u = { .s = s, .req = req, .o = &o, .up = { .fd = -1, .dir_fd = -1 } };

	upload_start(&u);
	upload_frames(&u);
	upload_drop(&u);
	if (!u.owed)
		session_log(s, &o);
}

void upload_skip_body(struct session *s, struct outcome *o)
{
	struct upload u = { .s = s, .req = (struct proto_request *)o->req, .o = o,
			    .answered = true, .up = { .fd = -1, .dir_fd = -1 } };

	upload_frames(&u);
}
