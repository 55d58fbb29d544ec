/* worker: waits for a connection on the shared listeners, serves it, and
 * repeats until the master asks it to stop or retire. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <stdbool.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "auth.h"
#include "idlewait.h"
#include "listener.h"
#include "log.h"
#include "monotonic.h"
#include "netio.h"
#include "protocol.h"
#include "session.h"
#include "storage.h"
#include "tls.h"
#include "users.h"
#include "worker.h"

/* Refused connections logged per worker: the first few of each minute,
 * then a count. */
#define WORKER_REFUSED_BURST      5
#define WORKER_REFUSED_WINDOW_MS  (60 * 1000)

/* What the accept path needs besides the session context. */
struct worker_admission {
	const struct config *conf;
	struct access_table *table;
	size_t slot_no;
	struct log_ratelimit refusals;
	SSL_CTX *tls_ctx;               /* the TLS listeners' context */
	struct log_ratelimit handshakes;   /* failed TLS handshakes logged */
	bool ktls_logged;               /* kTLS use said at the first TLS connection */
};

static volatile sig_atomic_t worker_stop;
static volatile sig_atomic_t worker_retire;

static void worker_on_stop(int sig)
{
	(void)sig;
	worker_stop = 1;
}

static void worker_on_retire(int sig)
{
	(void)sig;
	worker_retire = 1;
}

/* The signals stay blocked while the worker runs and are let through only
 * inside ppoll(), so a transfer in flight is never interrupted and a stop
 * request can never slip in between a flag check and a blocking wait. */
static int worker_setup_signals(sigset_t *wait_mask)
{
	struct sigaction stop = { .sa_handler = worker_on_stop };
	struct sigaction retire = { .sa_handler = worker_on_retire };
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	struct sigaction ign = { .sa_handler = SIG_IGN };
	sigset_t blocked;

	sigemptyset(&stop.sa_mask);
	sigemptyset(&retire.sa_mask);
	if (sigaction(SIGTERM, &stop, NULL) < 0 || sigaction(SIGINT, &stop, NULL) < 0 ||
	    sigaction(SIGUSR1, &retire, NULL) < 0 || sigaction(SIGHUP, &ign, NULL) < 0 ||
	    sigaction(SIGCHLD, &dfl, NULL) < 0 || sigaction(SIGPIPE, &ign, NULL) < 0)
		return -errno;

	sigemptyset(&blocked);
	sigaddset(&blocked, SIGTERM);
	sigaddset(&blocked, SIGINT);
	sigaddset(&blocked, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &blocked, wait_mask) < 0)
		return -errno;
	sigdelset(wait_mask, SIGTERM);
	sigdelset(wait_mask, SIGINT);
	sigdelset(wait_mask, SIGUSR1);
	sigdelset(wait_mask, SIGCHLD);
	sigdelset(wait_mask, SIGHUP);
	return 0;
}

/* A share that cannot be opened gets fd -1: its requests are refused
 * while the other shares go on being served. */
static int worker_open_shares(const struct config *conf, int **fds_out)
{
	int *fds = calloc(conf->n_shares ? conf->n_shares : 1, sizeof(*fds));

	if (!fds)
		return -ENOMEM;
	for (size_t i = 0; i < conf->n_shares; i++) {
		fds[i] = storage_open_root(conf->shares[i].path);
		if (fds[i] < 0)
			log_errno(fds[i], "share [%s]: cannot open %s; refusing its requests "
				  "until a reload", conf->shares[i].name, conf->shares[i].path);
	}
	*fds_out = fds;
	return 0;
}

/* Backs off briefly when accept() fails for lack of resources instead of
 * spinning on a listener that stays readable. */
static void worker_accept_backoff(const sigset_t *wait_mask)
{
	struct timespec pause = { .tv_sec = 0, .tv_nsec = 100 * 1000 * 1000 };

	(void)ppoll(NULL, 0, &pause, wait_mask);
}

/* Answers a connection we will not serve with one ERR line instead of
 * the greeting, and closes it.  What the client already sent is read
 * first (without waiting), so that close() does not answer it with a
 * reset that could destroy the ERR line before the client reads it. */
static void worker_refuse(struct worker_admission *adm, int fd, const char *peer,
			  int code, const char *detail, const char *why)
{
	char line[256], drain[4096];
	int n = proto_format_error(line, sizeof(line), code, detail);

	if (n > 0)
		(void)write_full(fd, line, (size_t)n);
	(void)shutdown(fd, SHUT_WR);
	/* Bounded: a client that keeps sending cannot keep us here. */
	for (int i = 0; i < 16 && recv(fd, drain, sizeof(drain), MSG_DONTWAIT) > 0; i++)
		;
	close(fd);

	char codebuf[8];
	snprintf(codebuf, sizeof(codebuf), "%d", code);
	struct log_field f[] = {
		{ "CLIENT", peer },
		{ "RESULT", "refused" },
		{ "CODE", codebuf },
	};
	if (log_ratelimit_allow(&adm->refusals, monotonic_ms(), NULL, 0))
		log_event(LOG_NOTICE, 0, LOG_MSGID_REQUEST, f, 3,
			  "%s: connection refused: %s", peer, why);
}

/* Admission right after accept, before any byte is sent: address rules,
 * then the per-address cap.  Returns true when the connection may be
 * served (then access_leave must follow), false when it was refused and
 * closed. */
static bool worker_admit(struct worker_admission *adm, int fd,
			 const struct sockaddr_storage *peer)
{
	const struct config *conf = adm->conf;
	const struct sockaddr *sa = (const struct sockaddr *)peer;
	char name[64];

	if (!access_allowed(&conf->hosts_allow, &conf->hosts_deny, sa)) {
		listener_format_sockaddr(sa, name, sizeof(name));
		worker_refuse(adm, fd, name, PROTO_ERR_FORBIDDEN,
			      "your address is not allowed", "address not allowed");
		return false;
	}
	if (access_enter(adm->table, adm->slot_no, sa, conf->max_per_ip) == -EBUSY) {
		listener_format_sockaddr(sa, name, sizeof(name));
		worker_refuse(adm, fd, name, PROTO_ERR_SHUTTING_DOWN,
			      "too many connections from your address, retry later",
			      "max_per_ip reached");
		return false;
	}
	return true;
}

/* The TLS handshake within handshake_timeout: on success c is the
 * connection.  A failure is logged (rate-limited) and the socket closed. */
static int worker_handshake(struct worker_admission *adm, struct conn *c, int fd,
			    const struct sockaddr_storage *peer)
{
	char err[TLS_ERROR_MAX] = "", name[64];
	uint64_t timeout = adm->conf->handshake_timeout_ms;
	int r;

	r = tls_conn_accept(c, fd, adm->tls_ctx, timeout > INT32_MAX ? INT32_MAX : (int)timeout,
			    err, sizeof(err));
	if (r < 0) {
		listener_format_sockaddr((const struct sockaddr *)peer, name, sizeof(name));
		struct log_field f[] = {
			{ "CLIENT", name },
			{ "RESULT", "refused" },
			{ "REASON", err[0] ? err : strerror(-r) },
		};
		if (log_ratelimit_allow(&adm->handshakes, monotonic_ms(), f, 2))
			log_event(LOG_NOTICE, 0, LOG_MSGID_REQUEST, f, 3,
				  "%s: TLS handshake failed: %s", name,
				  r == -ETIMEDOUT ? "timed out" : err[0] ? err : strerror(-r));
		return r;
	}
	/* The session waits for records in ppoll() under its deadlines, never
	 * inside OpenSSL for the rest of one a peer trickles. */
	r = tls_conn_nonblocking(c);
	if (r < 0) {
		log_warn_errno(r, "TLS socket O_NONBLOCK");
		conn_close(c);
		return r;
	}
	if (!adm->ktls_logged) {
		adm->ktls_logged = true;
		log_info("TLS downloads in this worker: %s (%s)",
			 tls_conn_ktls_send(c) ? "kernel TLS, sendfile zero-copy"
					       : "read and encrypt in user space (no kernel TLS)",
			 tls_conn_version(c));
	}
	return 0;
}

/* Returns true when a connection was served. */
static bool worker_accept(struct session_ctx *ctx, struct worker_admission *adm,
			  int lfd, bool tls, const sigset_t *wait_mask)
{
	struct conn c;
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	int fd, r;

	fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
	if (fd < 0) {
		/* EAGAIN: another worker won the race. */
		if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
			return false;
		/* EMFILE, ENFILE, ENOBUFS, ENOMEM and the rest: the listener
		 * stays readable, so back off rather than spin. */
		log_warn_errno(errno, "accept");
		worker_accept_backoff(wait_mask);
		return false;
	}
	/* Dead peers are noticed even while a transfer waits on them. */
	r = listener_set_keepalive(fd);
	if (r < 0)
		log_warn_errno(r, "TCP keepalive");
	if (!worker_admit(adm, fd, &peer))
		return false;
	/* Also tells the master this worker reached its first accept. */
	scoreboard_begin_connection(ctx->slot, &peer);
	if (!tls)
		conn_init_plain(&c, fd);
	if (!tls || worker_handshake(adm, &c, fd, &peer) == 0)
		session_run(ctx, &c, tls, &peer);
	access_leave(adm->table, adm->slot_no);
	scoreboard_end_connection(ctx->slot, worker_retire);
	return true;
}

/* Whether clients queue for the pool: a listener that has stayed readable
 * for WORKER_QUEUE_CONFIRM_MS means no idle worker is taking its
 * connections.  Asked only by a session that waits for its client's next
 * line, a few times a second. */
struct worker_queue {
	const struct listener_set *listeners;
	uint64_t readable_since_ms;   /* 0: not readable at the last look */
};

#define WORKER_QUEUE_CONFIRM_MS 100

static bool worker_queue_pressure(void *arg, bool at_once)
{
	struct worker_queue *q = arg;
	struct pollfd pfds[LISTENER_MAX];
	uint64_t now = monotonic_ms();
	int r;

	for (size_t i = 0; i < q->listeners->n; i++)
		pfds[i] = (struct pollfd){ .fd = q->listeners->fds[i], .events = POLLIN };
	r = poll(pfds, q->listeners->n, 0);
	if (r <= 0) {
		q->readable_since_ms = 0;
		return false;
	}
	if (!q->readable_since_ms)
		q->readable_since_ms = now;
	return at_once || now - q->readable_since_ms >= WORKER_QUEUE_CONFIRM_MS;
}

/* max_requests plus a random 0..jitter, so that workers started together
 * do not all retire together; 0: unlimited. */
static uint64_t worker_request_limit(const struct config *conf)
{
	uint32_t rnd = 0;

	if (conf->max_requests == 0)
		return 0;
	if (conf->max_requests_jitter == 0)
		return conf->max_requests;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)getpid() * 2654435761u;
	return conf->max_requests + rnd % ((uint64_t)conf->max_requests_jitter + 1);
}

/* The configuration a worker serves with; a reload replaces it. */
struct worker_conf {
	const struct confboard *board;
	unsigned generation;
	struct config *owned;        /* a reloaded one, NULL: the inherited one */
	int *share_fds;              /* owned */
	struct users *users;         /* a reloaded users file, NULL: the inherited one */
	struct worker_admission *adm;
};

/* The users file of a reloaded configuration.  The master validated it;
 * should it fail here all the same, nobody may log in on this connection
 * any more rather than users the file no longer holds. */
static void worker_refresh_users(struct worker_conf *wc, struct session_ctx *ctx,
				 const struct config *fresh)
{
	char err[USERS_ERROR_MAX];
	struct users *users = NULL;
	int r;

	if (fresh->users_file && !auth_ready()) {
		/* The reload turned logins on after this worker was forked:
		 * the workers forked since share the master's GNU SASL set-up. */
		log_warn("logins were turned on by a reload: none on this connection");
	} else if (fresh->users_file) {
		r = users_load(fresh->users_file, &users, err, sizeof(err));
		if (r < 0) {
			log_warn("reloaded users file: %s; no logins on this connection", err);
			users = NULL;
		}
	}
	users_free(wc->users);
	wc->users = users;
	ctx->users = users;
}

/* session_ctx.refresh: takes a configuration the master published since
 * this worker was started (it is then of an old generation, retiring
 * after this connection), so a reload reaches connections in flight at
 * their next request: share policy, limits, timeouts. */
static void worker_refresh(struct session_ctx *ctx, void *arg)
{
	struct worker_conf *wc = arg;
	char err[CONFIG_ERROR_MAX], *text = NULL;
	struct config *fresh = NULL;
	int *fds = NULL;
	unsigned gen;
	int r;

	if (!wc->board)
		return;
	gen = confboard_generation(wc->board);
	/* 0: no reload published since the master started. */
	if (gen == 0 || gen == wc->generation)
		return;
	r = confboard_read(wc->board, &text, &gen);
	if (r == 0)
		r = config_load_string(text, ctx->conf->file, &fresh, err, sizeof(err));
	free(text);
	if (r == 0)
		r = worker_open_shares(fresh, &fds);
	if (r < 0) {
		/* The master validated it; only memory can fail here. */
		log_warn_errno(r, "applying the reloaded configuration");
		config_free(fresh);
		wc->generation = gen;
		return;
	}
	worker_refresh_users(wc, ctx, fresh);
	/* The old share roots stay open: uploads waiting in the session's
	 * group commit are still to be named beneath them.  A worker of an
	 * old generation exits after this connection, which closes them. */
	free(wc->share_fds);
	config_free(wc->owned);
	wc->owned = fresh;
	wc->share_fds = fds;
	wc->generation = gen;
	wc->adm->conf = fresh;
	ctx->conf = fresh;
	ctx->share_fds = fds;
	log_info("connection in flight follows the reloaded configuration (generation %u)", gen);
}

_Noreturn void worker_run(const struct worker_args *a)
{
	const struct config *conf = a->conf;
	const struct listener_set *listeners = a->listeners;
	struct scoreboard_slot *slot = a->slot;
	struct worker_admission adm = {
		.conf = conf,
		.table = a->access,
		.slot_no = a->slot_no,
		.tls_ctx = a->tls_ctx,
	};
	struct worker_conf wc = {
		.board = a->board,
		.generation = a->generation,
		.adm = &adm,
	};
	bool ready[LISTENER_MAX];
	struct idlewait idle;
	sigset_t wait_mask;
	int *share_fds = NULL;
	uint64_t served = 0, limit;
	int r;

	r = worker_setup_signals(&wait_mask);
	if (r < 0) {
		log_errno(r, "worker signal setup");
		_exit(EX_OSERR);
	}
	/* Crash-loop tests need workers that die before serving anything; a
	 * share that cannot be opened no longer does that. */
	if (getenv("TCPFILED_TEST_WORKER_EXIT"))
		_exit(EX_SOFTWARE);
	r = worker_open_shares(conf, &share_fds);
	if (r < 0) {
		log_errno(r, "worker start");
		_exit(EX_OSERR);
	}
	log_ratelimit_init(&adm.refusals, WORKER_REFUSED_BURST, WORKER_REFUSED_WINDOW_MS,
			   LOG_NOTICE, "refused connections");
	log_ratelimit_init(&adm.handshakes, WORKER_REFUSED_BURST, WORKER_REFUSED_WINDOW_MS,
			   LOG_NOTICE, "failed TLS handshakes");
	limit = worker_request_limit(conf);
	wc.share_fds = share_fds;

	struct worker_queue queue = { .listeners = listeners };
	struct session_ctx ctx = {
		.conf = conf,
		.share_fds = share_fds,
		.users = a->users,
		.slot = slot,
		.stop = &worker_stop,
		.wait_mask = &wait_mask,
		.pressure = worker_queue_pressure,
		.pressure_arg = &queue,
		.refresh = worker_refresh,
		.refresh_arg = &wc,
	};
	r = idlewait_open(&idle, listeners);
	if (r < 0) {
		log_errno(r, "worker epoll set");
		_exit(EX_OSERR);
	}

	scoreboard_set_state(slot, WORKER_IDLE);
	while (!worker_stop && !worker_retire) {
		r = idlewait_wait(&idle, ready, &wait_mask);
		if (r < 0) {
			log_errno(r, "waiting for a connection");
			_exit(EX_OSERR);
		}
		for (size_t i = 0; i < listeners->n && r > 0 && !worker_stop && !worker_retire; i++)
			if (ready[i] &&
			    worker_accept(&ctx, &adm, listeners->fds[i], listeners->tls[i],
					  &wait_mask) &&
			    limit && ++served >= limit) {
				log_debug("served %" PRIu64 " connections (max_requests); retiring",
					  served);
				worker_retire = 1;
			}
	}
	log_ratelimit_flush(&adm.refusals, NULL, 0);
	log_ratelimit_flush(&adm.handshakes, NULL, 0);
	/* Exit without running atexit handlers or flushing inherited stdio
	 * buffers that belong to the master. */
	_exit(EX_OK);
}
