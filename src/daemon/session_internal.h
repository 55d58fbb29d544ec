/* session_internal: what session.c shares with the request handlers that
 * move bodies (upload.c, download.c): the connection, its replies, its
 * deadlines and its log record. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "netio.h"
#include "protocol.h"
#include "session.h"
#include "storage.h"

/* Body bytes move through a buffer this large: hashed and written in one
 * pass. */
#define SESSION_CHUNK (256 * 1024)
/* Waits wake this often to ask whether clients queue for the pool. */
#define SESSION_TICK_MS 100
/* A connection that owes its next request yields the worker to queued
 * clients once it has kept it waiting this long; one that owes the rest
 * of its HELLO (real clients send it whole, with their first packet)
 * sooner. */
#define SESSION_YIELD_GRACE_MS 500
#define SESSION_HELLO_GRACE_MS 100
/* Under pressure, a body below min_rate is judged after this long
 * instead of a whole window; it is also the socket timeout that lets a
 * stalled body be judged at all. */
#define SESSION_BODY_TICK_MS 1000
/* How long a share found in place is trusted within one connection. */
#define SESSION_SHARE_RECHECK_MS 100
/* Answers held back to go out in one write with those that follow. */
#define SESSION_OUT_MAX 4096

struct session {
	struct session_ctx *ctx;
	struct conn conn;
	struct linebuf lb;
	char peer[64];
	char pid[16];         /* this worker's, for log records */
	char *chunk;          /* SESSION_CHUNK bytes */
	struct log_ratelimit refusals;   /* bad request lines logged */
	uint64_t yield_grace_ms;   /* for session_wait_line; 0: never yield */
	/* Group commit (fsync = yes): uploads whose bodies are complete wait
	 * here, unnamed, and are made durable together; their answers are
	 * owed until upload_flush(). */
	struct storage_batch batch;
	struct upload_owed *owed;   /* STORAGE_BATCH_MAX, allocated on first use */
	bool flushing;
	/* What consecutive uploads share (storage_upload_begin_cached). */
	struct storage_cache cache;
	/* Answers held back while the next request is already buffered
	 * (session_answer); sent before anything else goes out and before
	 * the session can wait for the client. */
	char out[SESSION_OUT_MAX];
	size_t out_len;
	uint64_t signals_ms;       /* when pending signals were last let in */
	bool stop_ends_wait;       /* a stop request ends session_wait_line */
	/* The share last found still in place (sharecheck), and when. */
	const struct share_conf *share_seen;
	uint64_t share_seen_ms;
	bool tls;             /* a TLS connection: logins use channel binding */
	bool local;           /* the peer is on this machine (policy_peer_is_local) */
	char user[USERS_NAME_MAX + 1];   /* logged in as; "" for nobody */
	unsigned auth_failures;
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
	uint64_t bytes;       /* body bytes moved, discarded ones included */
	int code;             /* 0 = OK */
	const char *result;   /* ok, refused, aborted, error */
	const char *detail;
	const struct digest_value *digest;
};

/* Keeps a body moving: at least min_rate bytes per window, else the
 * transfer is cut.  The worker it would otherwise hold belongs to the
 * pool. */
struct session_pace {
	const struct session_ctx *ctx;   /* for the pressure check */
	uint64_t min_rate;         /* bytes/s, 0 = no check */
	uint64_t window_ms;
	uint64_t window_start_ms;
	uint64_t window_bytes;
	bool slow;                 /* below min_rate so far: shown as WAITING */
};

void session_pace_start(const struct session *s, struct session_pace *p);
/* Counts bytes moved (0: a wait timed out); returns -ETIMEDOUT when a
 * full window moved fewer than min_rate * window bytes, or, while clients
 * queue for the pool, when the body has moved slower than min_rate for
 * SESSION_BODY_TICK_MS. */
int session_pace_account(struct session_pace *p, uint64_t bytes);

/* Sends one preformatted line or frame header (more: body bytes follow at
 * once).  A failed write marks the session for closing. */
void session_send(struct session *s, const char *buf, size_t len, bool more);
/* printf-style reply line; the format includes the LF. */
void session_reply(struct session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* session_reply for a final answer that may wait: while the next request
 * line is already buffered it is held back (up to SESSION_OUT_MAX bytes)
 * and goes out in one write with the answers that follow, at the latest
 * before the session could wait for the client (session_settle). */
void session_answer(struct session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* What the session owes goes out before it may block on the client: the
 * batch is committed and answered unless more input can be read at once,
 * and the answers session_answer held back are sent.  session_wait_line,
 * session_read_body and session_sleep_until call it; whoever reads from
 * the connection otherwise must call it first, or a client that waits for
 * its answers before sending more would wait for ever. */
void session_settle(struct session *s);
/* Sends "ERR <code> <text>: why" and records it in o (when o is not NULL). */
void session_fail(struct session *s, struct outcome *o, int code, const char *why);

/* Maps a storage errno to the status a client should see, with the
 * errno's text as the detail. */
int session_status_from_errno(int err, const char **why);

/* Splits SHARE[/REL] and checks REL (allow_root: the share root itself is
 * acceptable).  Returns 0 or a status code with *why set. */
int session_resolve(struct session *s, struct proto_request *req,
		    bool allow_root, struct target *t, const char **why);

/* The request's log record: one per request, refusals included. */
void session_log(struct session *s, const struct outcome *o);

/* Waits for the next line until deadline_ms (monotonic), letting the
 * worker's signals in.  Returns 1 with the line, 0 on EOF, -ETIMEDOUT,
 * -EBUSY (clients queue for the pool and this wait has lasted
 * s->yield_grace_ms: give the worker up), -EMSGSIZE (no LF within a
 * line's length) or -errno.  Sends nothing but what session_settle owes
 * the client before a wait. */
int session_wait_line(struct session *s, uint64_t deadline_ms, char **line,
		      size_t *len);

/* Waits until deadline_ms (monotonic) for nothing, letting the worker's
 * signals in.  Returns 0, or -ESHUTDOWN as soon as a stop is requested. */
int session_sleep_until(struct session *s, uint64_t deadline_ms);

/* Logins (session_auth.c).  The mechanism this connection offers in
 * auth=, or NULL (no users_file; plain TCP from another host without
 * allow_plaintext). */
const char *session_auth_offer(const struct session *s);
/* Answers one AUTH line, exchange included; may mark the session for
 * closing. */
void session_auth_run(struct session *s, const char *line, size_t len);
/* After a reload: logs out a user no longer in the users file. */
void session_auth_follow(struct session *s);

/* Reads exactly len body bytes into buf (len <= SESSION_CHUNK), counting
 * them against pace.  Returns 0, -EPIPE (EOF), -ETIMEDOUT (too slow) or
 * -errno. */
int session_read_body(struct session *s, void *buf, size_t len,
		      struct session_pace *pace);

/* What an upload in the batch is owed: its answer and its log record. */
struct upload_owed {
	struct proto_request req;      /* a copy: the session's is reused */
	struct outcome o;
	struct digest_value dv;
	uint64_t size;
};

/* Commits the batch and sends the owed answers, in order.  session_send()
 * calls it before any other line goes out, and the session before a
 * request that must see those files, and before it waits for input. */
void upload_flush(struct session *s);
/* Commits what the batch still holds at the end of the session (the
 * client may have half-closed and still read) and releases it. */
void upload_finish(struct session *s);

/* The request handlers with a body. */
void upload_run(struct session *s, struct proto_request *req);
/* Skips the body frames of a PUT whose header was refused at parsing,
 * counting the bytes into o.  Marks the session for closing when the
 * frames cannot be followed. */
void upload_skip_body(struct session *s, struct outcome *o);
void download_run(struct session *s, struct proto_request *req);
