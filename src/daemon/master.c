/* master: supervises the workers: signals, a pool sized between workers
 * and max_workers, respawn with per-slot crash backoff, hung-worker kills,
 * the busy answer of a full pool, reload by worker generations, graceful
 * shutdown. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "auth.h"
#include "config.h"
#include "cryptomod.h"
#include "listener.h"
#include "log.h"
#include "monotonic.h"
#include "master.h"
#include "netio.h"
#include "notify.h"
#include "parse.h"
#include "pool.h"
#include "protocol.h"
#include "scoreboard.h"
#include "sharecheck.h"
#include "storage.h"
#include "tls.h"
#include "users.h"
#include "worker.h"

#define STATUS_PERIOD_MS  1000
#define POOL_TICK_MS      1000
#define FORK_RETRY_MS     100
/* While the pool is at max_workers the master looks at the scoreboard this
 * often, so that a full pool is noticed quickly. */
#define FULL_CHECK_MS     50
/* A connection waiting on a full pool is answered only after it has
 * waited this long: a worker finishing its connection takes it instead. */
#define BUSY_GRACE_MS     100
#define BUSY_RETRY_S      1
/* Busy answers per wake-up, so that a flood cannot hold the master. */
#define BUSY_BATCH        64

struct worker_rec {
	pid_t pid;
	int slot;
	unsigned generation;
	uint64_t started_ms;
	bool retiring;
	bool hung;                    /* killed by us for making no progress */
	uint64_t seen_progress;       /* bytes + requests + accepted, last tick */
	uint64_t progress_ms;         /* when it last changed */
};

struct master {
	struct config *conf;
	const char *config_path;
	struct listener_set listeners;
	struct scoreboard *sb;
	struct access_table *access;  /* connections per client address */
	struct confboard *board;      /* the reloaded configuration, for workers */
	SSL_CTX *tls_ctx;             /* for the TLS listeners, NULL without them */
	struct users *users;          /* users_file, NULL without one */
	bool auth_ready;              /* auth_init() succeeded */
	char *status_path;            /* board file, NULL: anonymous */
	int sfd;
	pid_t pid;

	struct worker_rec *workers;   /* SCOREBOARD_SLOTS entries, pid 0 = unused */
	size_t slot_hwm;              /* no worker ever used a slot above this */
	size_t n_live;
	unsigned generation;

	struct pool_size size;
	uint64_t next_pool_tick_ms;
	/* Vacancies of workers that failed at start-up, each refilled at its
	 * own time; the rest of the pool is refilled at once. */
	uint64_t *vacancy_due;        /* CONFIG_WORKERS_MAX entries */
	size_t n_vacancies;
	struct pool_health health;
	uint64_t seen_accepted;       /* scoreboard accept total, last tick */
	uint64_t fork_retry_ms;       /* fork() failed: no spawn before this */

	/* Busy answers for a full pool. */
	uint64_t full_since_ms;       /* 0: not full */
	uint64_t waiting_since_ms;    /* a client waits on the full pool; 0: none */
	uint64_t busy_answers;        /* since the last summary */
	uint64_t busy_hold_ms;        /* listeners not polled before this */

	/* The process group holds only us and our workers: kill(0, ...) is safe. */
	bool own_group;

	bool stopping;
	uint64_t stop_deadline_ms;
	bool killed_stragglers;
	int exit_status;

	/* Appended to STATUS= until the next successful reload, so that
	 * `systemctl status` keeps showing that a reload failed. */
	char status_note[CONFIG_ERROR_MAX + 32];
	char last_status[CONFIG_ERROR_MAX + 256];
	uint64_t last_status_ms;
	uint64_t watchdog_usec;
	uint64_t last_watchdog_ms;
};

static const sigset_t *master_signals(void)
{
	static sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGUSR1);
	return &set;
}

/* Being a process-group leader lets shutdown reach every worker with
 * kill(0, ...) without touching whatever shares our parent's group (a
 * `tcpfiled | tee log` pipeline started from a script).  systemd already
 * makes us a session leader, alone in our group.  An interactive shell
 * makes the first process of a pipeline the leader of the whole job's
 * group: there we cannot leave it (setpgid is a no-op for a leader), so we
 * signal our workers one by one instead.  Returns whether the group is
 * ours alone. */
static bool master_become_group_leader(void)
{
	if (getsid(0) == getpid())
		return true;
	if (getpgrp() == getpid()) {
		log_info("started as the leader of a shell job's process group; "
			 "shutdown signals the workers one by one");
		return false;
	}
	if (setpgid(0, 0) < 0) {
		log_warn_errno(errno, "setpgid");
		return false;
	}
	return true;
}

static struct worker_rec *master_find(struct master *m, pid_t pid)
{
	for (size_t i = 0; i < m->slot_hwm; i++)
		if (m->workers[i].pid == pid)
			return &m->workers[i];
	return NULL;
}

static uint32_t master_random(void)
{
	uint32_t rnd = 0;

	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)monotonic_ms();
	return rnd;
}

static enum worker_state master_state(const struct master *m, const struct worker_rec *w)
{
	return (enum worker_state)__atomic_load_n(&m->sb->slots[w->slot].state,
						  __ATOMIC_ACQUIRE);
}

struct master_count {
	unsigned current;     /* live workers of the current generation */
	unsigned idle;        /* of those, starting or waiting for a connection */
	unsigned busy;        /* of those, serving a connection */
	unsigned waiting;     /* of the busy, waiting for a line: they yield */
	unsigned serving;     /* any generation, in a connection */
};

static void master_count(const struct master *m, struct master_count *c)
{
	*c = (struct master_count){ 0 };
	for (size_t i = 0; i < m->slot_hwm; i++) {
		const struct worker_rec *w = &m->workers[i];
		enum worker_state st;

		if (w->pid <= 0)
			continue;
		st = master_state(m, w);
		if (st == WORKER_BUSY || st == WORKER_WAITING)
			c->serving++;
		if (w->retiring)
			continue;
		c->current++;
		if (st == WORKER_IDLE || st == WORKER_STARTING)
			c->idle++;
		else if (st == WORKER_BUSY || st == WORKER_WAITING)
			c->busy++;
		if (st == WORKER_WAITING)
			c->waiting++;
	}
}

static int master_spawn(struct master *m)
{
	struct worker_rec *rec;
	int slot;
	pid_t pid;

	slot = scoreboard_claim(m->sb, m->generation);
	if (slot < 0)
		return -EAGAIN;
	rec = &m->workers[slot];

	pid = fork();
	if (pid < 0) {
		int err = -errno;

		scoreboard_release(m->sb, slot);
		return err;
	}
	if (pid == 0) {
		/* Nothing may outlive a SIGKILLed master; if it died before
		 * prctl took effect, getppid() has already changed. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != m->pid)
			_exit(EX_OSERR);
		close(m->sfd);
		struct worker_args args = {
			.conf = m->conf,
			.listeners = &m->listeners,
			.slot = scoreboard_slot(m->sb, slot),
			.access = m->access,
			.slot_no = (size_t)slot,
			.board = m->board,
			.generation = m->generation,
			.tls_ctx = m->tls_ctx,
			.users = m->users,
		};
		worker_run(&args);
	}

	scoreboard_set_pid(m->sb, slot, pid);
	scoreboard_note_spawn(m->sb);
	if ((size_t)slot >= m->slot_hwm)
		m->slot_hwm = (size_t)slot + 1;
	*rec = (struct worker_rec){
		.pid = pid,
		.slot = slot,
		.generation = m->generation,
		.started_ms = monotonic_ms(),
		.progress_ms = monotonic_ms(),
	};
	m->n_live++;

	char pidbuf[16], genbuf[16];
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
	snprintf(genbuf, sizeof(genbuf), "%u", m->generation);
	struct log_field f[] = {
		{ "WORKER_PID", pidbuf },
		{ "GENERATION", genbuf },
	};
	log_event(LOG_INFO, 0, LOG_MSGID_WORKER_START, f, 2,
		  "worker %d started (generation %u)", (int)pid, m->generation);
	return 0;
}

/* Drops vacancies whose backoff is over; returns how many still wait. */
static size_t master_expire_vacancies(struct master *m, uint64_t now)
{
	size_t kept = 0;

	for (size_t i = 0; i < m->n_vacancies; i++)
		if (m->vacancy_due[i] > now)
			m->vacancy_due[kept++] = m->vacancy_due[i];
	m->n_vacancies = kept;
	return kept;
}

/* Forks workers until the current generation reaches its target, except
 * for the vacancies still backing off. */
static void master_fill(struct master *m)
{
	uint64_t now = monotonic_ms();
	struct master_count c;
	unsigned have;

	if (m->stopping || now < m->fork_retry_ms)
		return;
	master_expire_vacancies(m, now);
	master_count(m, &c);
	/* A pool that shrank needs fewer vacancies. */
	while (m->n_vacancies && c.current + m->n_vacancies > m->size.target)
		m->n_vacancies--;
	for (have = c.current + (unsigned)m->n_vacancies; have < m->size.target; have++) {
		int r = master_spawn(m);

		if (r < 0) {
			log_errno(r, "cannot start a worker");
			m->fork_retry_ms = now + FORK_RETRY_MS;
			return;
		}
	}
}

static void master_begin_stop(struct master *m, int exit_status);
static void master_update_status(struct master *m, bool force);

/* A worker of the current generation died before its first accept. */
static void master_startup_failure(struct master *m, uint64_t now)
{
	bool first = m->health.failures == 0;
	uint64_t delay = pool_health_failure(&m->health, now, master_random());
	struct master_count c;

	if (m->n_vacancies < CONFIG_WORKERS_MAX)
		m->vacancy_due[m->n_vacancies++] = now + delay;
	if (first)
		log_event(LOG_WARNING, 0, LOG_MSGID_CRASH_LOOP, NULL, 0,
			  "a worker died before its first accept; its slot waits %" PRIu64
			  " ms before the next start", delay);
	else
		log_info("start-up failure %u in a row; slot refilled in %" PRIu64 " ms",
			 m->health.failures, delay);
	master_count(m, &c);
	/* A worker still in a connection is a pool that serves. */
	if (c.serving == 0 &&
	    pool_health_looping(&m->health, now, m->conf->crash_loop_timeout_ms)) {
		log_event(LOG_ERR, 0, LOG_MSGID_CRASH_LOOP, NULL, 0,
			  "crash loop: every new worker died before its first accept for %"
			  PRIu64 " ms; giving up", now - m->health.loop_since_ms);
		notify_status("crash loop: workers keep failing; exiting");
		master_begin_stop(m, EX_SOFTWARE);
	}
}

/* How a worker ended, for the log and the death ring. */
static bool master_describe_exit(int status, char *how, size_t cap)
{
	if (WIFEXITED(status)) {
		snprintf(how, cap, "exited with status %d", WEXITSTATUS(status));
		return WEXITSTATUS(status) == 0;
	}
	if (WIFSIGNALED(status)) {
		const char *name = sigabbrev_np(WTERMSIG(status));

		snprintf(how, cap, "killed by signal %d (SIG%s)", WTERMSIG(status),
			 name ? name : "?");
		return false;
	}
	snprintf(how, cap, "ended with wait status %d", status);
	return false;
}

static void master_log_exit(const struct worker_rec *rec, const char *how,
			    const char *why, int prio)
{
	char pidbuf[16];

	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)rec->pid);
	struct log_field f[] = {
		{ "WORKER_PID", pidbuf },
		{ "EXIT", how },
	};
	log_event(prio, 0, LOG_MSGID_WORKER_EXIT, f, 2, "worker %d %s%s",
		  (int)rec->pid, how, why);
}

/* A worker killed between linking an overwriting upload into a share's
 * state directory and renaming it onto its name leaves the temporary name
 * behind.  The name carries the worker's pid, and once it is reaped
 * nothing else can be using that pid's names, so they go now rather than
 * at the next start. */
static void master_sweep_worker(const struct master *m, pid_t pid)
{
	for (size_t i = 0; i < m->conf->n_shares; i++) {
		const struct share_conf *sh = &m->conf->shares[i];
		int fd, r;

		if (sh->read_only)
			continue;
		fd = storage_open_root(sh->path);
		if (fd < 0) {
			log_warn_errno(fd, "share [%s]: cannot sweep worker %d's "
				       "temporary names", sh->name, (int)pid);
			continue;
		}
		r = storage_sweep(fd, pid);
		close(fd);
		if (r < 0)
			log_warn_errno(r, "share [%s]: sweeping worker %d's temporary names",
				       sh->name, (int)pid);
		else if (r > 0)
			log_info("share [%s]: removed temporary names left by worker %d: %d",
				 sh->name, (int)pid, r);
	}
}

/* Sorts a death out: a clean exit (retired, recycled) or a death while
 * stopping is simply not replaced or replaced at once; a worker that had
 * accepted a connection died of a fault and its slot is refilled at once;
 * one that never accepted failed at start-up, and only its slot backs
 * off. */
static void master_judge(struct master *m, const struct worker_rec *dead,
			 uint64_t accepted, int status)
{
	char how[48], reason[SCOREBOARD_REASON_MAX];
	const char *why;
	bool clean = master_describe_exit(status, how, sizeof(how));
	bool current = !dead->retiring && !m->stopping;

	if (dead->hung) {
		why = "; it was hung (no progress), the slot is refilled at once";
		snprintf(reason, sizeof(reason), "hung, %s", how);
	} else if (clean) {
		why = "";
		reason[0] = '\0';
	} else if (accepted) {
		why = current ? " while serving; a fault: the slot is refilled at once" :
			" while serving";
		snprintf(reason, sizeof(reason), "%s after %" PRIu64 " connection%s", how,
			 accepted, accepted == 1 ? "" : "s");
	} else {
		why = " before its first accept";
		snprintf(reason, sizeof(reason), "%s before first accept", how);
	}
	master_log_exit(dead, how, why, clean ? LOG_INFO : LOG_WARNING);
	if (reason[0])
		scoreboard_note_death(m->sb, dead->pid, dead->generation, reason);
	if (current && !clean && !accepted && !dead->hung)
		master_startup_failure(m, monotonic_ms());
}

static void master_reap(struct master *m)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct worker_rec *rec = master_find(m, pid);
		uint64_t accepted;

		if (!rec)
			continue;
		/* A worker that exits 0 has finished or abandoned every commit. */
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			master_sweep_worker(m, pid);
		accepted = __atomic_load_n(&m->sb->slots[rec->slot].accepted, __ATOMIC_ACQUIRE);
		scoreboard_release(m->sb, rec->slot);
		access_release_slot(m->access, (size_t)rec->slot);
		m->n_live--;
		struct worker_rec dead = *rec;
		*rec = (struct worker_rec){ 0 };
		master_judge(m, &dead, accepted, status);
	}
}

static void master_signal_workers(struct master *m, int sig, bool only_retiring)
{
	for (size_t i = 0; i < m->slot_hwm; i++) {
		struct worker_rec *w = &m->workers[i];

		if (w->pid > 0 && (!only_retiring || w->retiring) && kill(w->pid, sig) < 0 &&
		    errno != ESRCH)
			log_warn_errno(errno, "kill(%d)", (int)w->pid);
	}
}

/* Asks the newest idle worker of the current generation to leave: the
 * oldest keep serving, warm. */
static void master_retire_one(struct master *m)
{
	struct worker_rec *pick = NULL;

	for (size_t i = 0; i < m->slot_hwm; i++) {
		struct worker_rec *w = &m->workers[i];

		if (w->pid <= 0 || w->retiring || master_state(m, w) != WORKER_IDLE)
			continue;
		if (!pick || w->started_ms > pick->started_ms)
			pick = w;
	}
	if (!pick) {
		m->size.target++;       /* nobody idle after all: keep the size */
		return;
	}
	pick->retiring = true;
	log_info("pool: more than %u idle workers; retiring worker %d", m->conf->max_spare,
		 (int)pick->pid);
	if (kill(pick->pid, SIGUSR1) < 0 && errno != ESRCH)
		log_warn_errno(errno, "kill(%d)", (int)pick->pid);
}

/* Kills workers in a connection whose counters have not moved for
 * hung_timeout: deadlines bound every wait a healthy worker makes. */
static void master_check_hung(struct master *m, uint64_t now)
{
	uint64_t limit = m->conf->hung_timeout_ms;

	for (size_t i = 0; i < m->slot_hwm; i++) {
		struct worker_rec *w = &m->workers[i];
		const struct scoreboard_slot *s;
		uint64_t progress;

		if (w->pid <= 0 || w->hung)
			continue;
		s = &m->sb->slots[w->slot];
		progress = __atomic_load_n(&s->bytes, __ATOMIC_RELAXED) +
			   __atomic_load_n(&s->requests, __ATOMIC_RELAXED) +
			   __atomic_load_n(&s->accepted, __ATOMIC_RELAXED);
		enum worker_state st = master_state(m, w);

		/* A worker waiting for its client's next line has deadlines
		 * (idle_timeout) far below hung_timeout: stuck there, it is hung
		 * too. */
		if (progress != w->seen_progress ||
		    (st != WORKER_BUSY && st != WORKER_WAITING)) {
			w->seen_progress = progress;
			w->progress_ms = now;
			continue;
		}
		if (!limit || now - w->progress_ms < limit)
			continue;
		log_warn("worker %d is hung: no progress for %" PRIu64 " ms in a "
			 "connection; killing it", (int)w->pid, now - w->progress_ms);
		w->hung = true;
		if (kill(w->pid, SIGKILL) < 0 && errno != ESRCH)
			log_warn_errno(errno, "kill(%d)", (int)w->pid);
	}
}

/* Once a second: health, hung workers, and the size of the pool. */
static void master_pool_tick(struct master *m, uint64_t now)
{
	struct scoreboard_totals t;
	struct master_count c;
	int step;

	scoreboard_totals(m->sb, &t);
	if (t.accepted != m->seen_accepted) {
		m->seen_accepted = t.accepted;
		if (m->health.failures)
			log_info("workers accept connections again; start-up failures forgotten");
		pool_health_serving(&m->health);
	}
	pool_health_decay(&m->health, now);
	master_check_hung(m, now);
	if (m->busy_answers) {
		log_notice("pool full at %u workers: %" PRIu64 " connection%s answered busy",
			   m->conf->max_workers, m->busy_answers,
			   m->busy_answers == 1 ? "" : "s");
		m->busy_answers = 0;
	}
	if (m->stopping)
		return;
	master_count(m, &c);
	step = pool_size_tick(&m->size, m->conf, c.idle + (unsigned)m->n_vacancies);
	if (step < 0)
		master_retire_one(m);
	else if (step > 0)
		log_info("pool: %u of %u workers idle (min_spare %u); starting %d more",
			 c.idle, c.current, m->conf->min_spare, step);
}

/* The pool is full when it cannot grow and every worker of the current
 * generation is in a connection. */
static bool master_pool_full(const struct master *m)
{
	struct master_count c;

	if (m->stopping || m->size.target < m->conf->max_workers)
		return false;
	master_count(m, &c);
	return c.current >= m->conf->max_workers && c.busy == c.current;
}

/* Closes a connection we answered without serving it.  The client spoke
 * first (its HELLO is already here): closing with unread bytes would
 * answer them with a reset that can destroy our line before the client
 * reads it, so what has arrived is read first, without waiting. */
static void master_close_unread(int fd)
{
	char drain[4096];

	(void)shutdown(fd, SHUT_WR);
	for (int i = 0; i < 4 && recv(fd, drain, sizeof(drain), MSG_DONTWAIT) > 0; i++)
		;
	close(fd);
}

/* Answers a connection the full pool cannot take: one line, written
 * without blocking (it fits any socket buffer), nothing read. */
static void master_answer_busy(struct master *m, int lfd)
{
	char detail[96], line[160];

	snprintf(detail, sizeof(detail), "busy: all %u workers are busy, retry after %d s",
		 m->conf->max_workers, BUSY_RETRY_S);
	if (proto_format_error(line, sizeof(line), PROTO_ERR_SHUTTING_DOWN, detail) < 0)
		return;
	for (int i = 0; i < BUSY_BATCH; i++) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		char addr[64];
		int fd = accept4(lfd, (struct sockaddr *)&peer, &len,
				 SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
				log_warn_errno(errno, "accept (busy answer)");
				m->busy_hold_ms = monotonic_ms() + BUSY_GRACE_MS;
			}
			return;
		}
		if (send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			log_debug("busy answer: send: %s", strerror(errno));
		master_close_unread(fd);
		m->busy_answers++;
		log_debug("pool full: answered %s busy",
			  listener_format_sockaddr((struct sockaddr *)&peer, addr, sizeof(addr)));
	}
}

static void master_begin_stop(struct master *m, int exit_status)
{
	if (m->stopping)
		return;
	m->stopping = true;
	m->exit_status = exit_status;
	m->stop_deadline_ms = monotonic_ms() + m->conf->shutdown_timeout_ms;
	notify_stopping();
	notify_extend_timeout((m->conf->shutdown_timeout_ms + 5000) * 1000);
	log_event(LOG_NOTICE, 0, LOG_MSGID_SHUTDOWN, NULL, 0,
		  "shutting down: %zu workers finish their requests (timeout %" PRIu64 " ms)",
		  m->n_live, m->conf->shutdown_timeout_ms);
	/* Our own copy of SIGTERM is blocked and read (and ignored) from the
	 * signalfd; everything else in the group is a worker. */
	if (!m->own_group)
		master_signal_workers(m, SIGTERM, false);
	else if (kill(0, SIGTERM) < 0)
		log_warn_errno(errno, "kill(0, SIGTERM)");
}

/* A fresh pool for a fresh generation: its size, backoff and health
 * start over. */
static void master_reset_pool(struct master *m)
{
	pool_size_init(&m->size, m->conf);
	pool_health_serving(&m->health);
	m->n_vacancies = 0;
	m->fork_retry_ms = 0;
	m->full_since_ms = 0;
	scoreboard_set_pool(m->sb, m->generation, m->conf->workers, m->conf->max_workers);
}

/* Loads what conf names besides itself: the users file (when set) and,
 * for TLS listeners, a server context from the certificate and key.
 * Returns 0 with *users (NULL without a users_file) and *tls_ctx (NULL
 * without TLS listeners), or -errno with why in err. */
static int master_load_secrets(struct master *m, const struct config *conf,
			       struct users **users, SSL_CTX **tls_ctx, char *err, size_t errlen)
{
	char why[TLS_ERROR_MAX > USERS_ERROR_MAX ? TLS_ERROR_MAX : USERS_ERROR_MAX];
	int r;

	*users = NULL;
	*tls_ctx = NULL;
	/* GNU SASL is set up the first time a configuration has logins: in
	 * the master, so that the workers forked after it share the made-up
	 * salts (see auth_init). */
	if (conf->users_file && !m->auth_ready) {
		r = auth_init();
		if (r < 0) {
			snprintf(err, errlen, "users_file: %s",
				 r == -ELIBACC ? cryptomod_error() :
				 r == -EPROTONOSUPPORT ? "GNU SASL has no SCRAM-SHA-256(-PLUS): "
							 "logins are impossible" : strerror(-r));
			return r;
		}
		m->auth_ready = true;
	}
	if (conf->users_file) {
		r = users_load(conf->users_file, users, why, sizeof(why));
		if (r < 0) {
			snprintf(err, errlen, "users_file: %s", why);
			return r;
		}
	}
	if (m->listeners.n_tls == 0)
		return 0;
	if (!conf->tls_certificate) {
		snprintf(err, errlen, "%s: TLS listeners need tls_certificate and tls_key",
			 conf->file);
		r = -EINVAL;
		goto err_free_users;
	}
	r = tls_server_ctx_new(conf->tls_certificate, conf->tls_key, conf->tls_min_version,
			       tls_ctx, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "TLS: %s", why);
		goto err_free_users;
	}
	return 0;

err_free_users:
	users_free(*users);
	*users = NULL;
	return r;
}

static void master_reload(struct master *m)
{
	char err[CONFIG_ERROR_MAX], *text = NULL;
	struct config *fresh = NULL;
	size_t len = 0;
	int r;

	notify_reloading();
	log_event(LOG_NOTICE, 0, LOG_MSGID_RELOAD, NULL, 0, "reloading %s", m->config_path);
	/* Parsed from the text we publish, so workers apply exactly what was
	 * validated here, whatever happens to the file meanwhile. */
	r = confboard_read_file(m->config_path, &text, &len);
	if (r < 0)
		snprintf(err, sizeof(err), "%s: %s", m->config_path,
			 r == -EFBIG ? "file too large" : strerror(-r));
	else
		r = config_load_string(text, m->config_path, &fresh, err, sizeof(err));
	if (r == 0 && (r = sharecheck_config(fresh, err, sizeof(err))) < 0)
		config_free(fresh);
	/* The users file and the certificate are part of the configuration:
	 * a bad one fails the reload and the running ones keep serving. */
	struct users *users = NULL;
	SSL_CTX *tls_ctx = NULL;
	if (r == 0 && (r = master_load_secrets(m, fresh, &users, &tls_ctx, err, sizeof(err))) < 0)
		config_free(fresh);
	if (r < 0) {
		log_event(LOG_ERR, 0, LOG_MSGID_RELOAD, NULL, 0,
			  "reload failed, keeping the running configuration: %s", err);
		snprintf(m->status_note, sizeof(m->status_note), "; reload failed: %s", err);
		master_update_status(m, true);
		notify_ready();
		free(text);
		return;
	}
	if (!config_listen_equal(m->conf, fresh))
		log_warn("listen changed in %s: needs a restart; keeping the current sockets",
			 m->config_path);
	if (strcmp(m->conf->status_file, fresh->status_file) != 0)
		log_warn("status_file changed in %s: needs a restart; keeping %s",
			 m->config_path, m->status_path ? m->status_path : "none");

	/* Old workers keep their own copy of the old configuration (fork),
	 * finish their connection and exit; the listener never closes, so the
	 * kernel queues connections while the generations overlap. */
	for (size_t i = 0; i < m->slot_hwm; i++) {
		struct worker_rec *w = &m->workers[i];

		if (w->pid > 0 && !w->retiring) {
			w->retiring = true;
			scoreboard_set_state(scoreboard_slot(m->sb, w->slot), WORKER_RETIRING);
		}
	}
	config_free(m->conf);
	m->conf = fresh;
	users_free(m->users);
	m->users = users;
	if (tls_ctx) {
		/* Workers of the old generation keep their copy (fork). */
		tls_ctx_free(m->tls_ctx);
		m->tls_ctx = tls_ctx;
	}
	log_set_level(fresh->log_level);
	m->generation++;
	if (m->board && confboard_publish(m->board, m->generation, text, len) < 0)
		log_warn("%s is too large to publish: connections in flight keep their "
			 "settings until they end", m->config_path);
	master_reset_pool(m);
	master_fill(m);
	master_signal_workers(m, SIGUSR1, true);
	log_event(LOG_NOTICE, 0, LOG_MSGID_RELOAD, NULL, 0,
		  "reloaded: generation %u with %u workers", m->generation,
		  m->conf->workers);
	m->status_note[0] = '\0';
	master_update_status(m, true);
	notify_ready();
	free(text);
}

static int master_read_signals(struct master *m)
{
	struct signalfd_siginfo si;
	ssize_t n;

	for (;;) {
		n = read(m->sfd, &si, sizeof(si));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		if ((size_t)n != sizeof(si))
			return -EIO;
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			if (!m->stopping)
				log_notice("received SIG%s", sigabbrev_np((int)si.ssi_signo));
			master_begin_stop(m, EX_OK);
			break;
		case SIGHUP:
			if (!m->stopping)
				master_reload(m);
			break;
		case SIGCHLD:
			master_reap(m);
			break;
		default:
			break;
		}
	}
}

static void master_update_status(struct master *m, bool force)
{
	struct scoreboard_totals t;
	char line[sizeof(m->last_status)];
	uint64_t now = monotonic_ms();

	if (!force && now - m->last_status_ms < STATUS_PERIOD_MS)
		return;
	scoreboard_totals(m->sb, &t);
	snprintf(line, sizeof(line),
		 "%u workers, %u busy, %" PRIu64 " transfers, %" PRIu64 " bytes%s%s%s",
		 t.workers, t.busy, t.transfers, t.bytes,
		 m->stopping ? "; shutting down" :
		 m->n_vacancies ? "; respawn backing off" : "",
		 !m->stopping && m->full_since_ms ? "; pool full" : "", m->status_note);
	if (strcmp(line, m->last_status) == 0)
		return;
	memcpy(m->last_status, line, sizeof(line));
	m->last_status_ms = now;
	notify_status("%s", line);
	if (m->stopping)
		notify_extend_timeout((m->stop_deadline_ms > now ?
				       m->stop_deadline_ms - now : 0) * 1000 + 5000000);
}

/* When the listeners may join the poll set of a full pool: at once, but
 * once a client is seen waiting, not before it has waited BUSY_GRACE_MS.
 * Otherwise the master would take connections that a worker just
 * finishing its client is about to accept. */
static uint64_t master_listen_at(const struct master *m)
{
	uint64_t at = m->full_since_ms;

	if (m->busy_hold_ms > at)
		at = m->busy_hold_ms;
	if (m->waiting_since_ms && m->waiting_since_ms + BUSY_GRACE_MS > at)
		at = m->waiting_since_ms + BUSY_GRACE_MS;
	return at;
}

/* True while the pool is at max_workers: then the master watches for it
 * to fill up (a worker's state changes wake nobody). */
static bool master_at_max(const struct master *m)
{
	return !m->stopping && m->size.target >= m->conf->max_workers;
}

static int master_poll_timeout(const struct master *m, bool listening)
{
	uint64_t now = monotonic_ms(), next = now + STATUS_PERIOD_MS;

	if (m->next_pool_tick_ms < next)
		next = m->next_pool_tick_ms;
	for (size_t i = 0; i < m->n_vacancies; i++)
		if (m->vacancy_due[i] < next)
			next = m->vacancy_due[i];
	if (m->fork_retry_ms > now && m->fork_retry_ms < next)
		next = m->fork_retry_ms;
	if (m->stopping && !m->killed_stragglers && m->stop_deadline_ms < next)
		next = m->stop_deadline_ms;
	if (m->watchdog_usec) {
		uint64_t wd = m->last_watchdog_ms + m->watchdog_usec / 2000;

		if (wd < next)
			next = wd;
	}
	if (!listening && m->full_since_ms && master_listen_at(m) < next)
		next = master_listen_at(m);
	if (master_at_max(m) && now + FULL_CHECK_MS < next)
		next = now + FULL_CHECK_MS;
	return next > now ? (int)(next - now) : 0;
}

static void master_tick(struct master *m)
{
	uint64_t now = monotonic_ms();

	if (m->watchdog_usec && now - m->last_watchdog_ms >= m->watchdog_usec / 2000) {
		notify_watchdog();
		m->last_watchdog_ms = now;
	}
	if (m->stopping && !m->killed_stragglers && now >= m->stop_deadline_ms &&
	    m->n_live > 0) {
		log_warn("shutdown timeout: killing %zu workers still busy", m->n_live);
		master_signal_workers(m, SIGKILL, false);
		m->killed_stragglers = true;
	}
	if (now >= m->next_pool_tick_ms) {
		master_pool_tick(m, now);
		m->next_pool_tick_ms = now + POOL_TICK_MS;
	}
	master_fill(m);
	master_update_status(m, false);
}

/* The listeners join the poll set only then. */
static bool master_watch_listeners(struct master *m, uint64_t now)
{
	if (!master_pool_full(m)) {
		m->full_since_ms = 0;
		m->waiting_since_ms = 0;
		return false;
	}
	if (!m->full_since_ms) {
		m->full_since_ms = now;
		log_debug("pool full: all %u workers busy", m->conf->max_workers);
	}
	return now >= master_listen_at(m);
}

/* A listener is readable while the pool is full: the first sight starts
 * the client's grace; after it, the client is answered. */
static void master_on_waiting_client(struct master *m, int lfd)
{
	struct master_count c;
	uint64_t now = monotonic_ms();

	if (!master_pool_full(m))
		return;
	if (!m->waiting_since_ms) {
		m->waiting_since_ms = now;
		return;
	}
	/* A worker that only waits for its client's next line (or holds a
	 * body slower than min_rate) gives it up to the queue by itself:
	 * the clients queued are then served, not answered busy. */
	master_count(m, &c);
	if (c.waiting) {
		m->waiting_since_ms = now;
		m->busy_hold_ms = now + BUSY_GRACE_MS;
		return;
	}
	if (now < m->waiting_since_ms + BUSY_GRACE_MS)
		return;
	master_answer_busy(m, lfd);
	m->waiting_since_ms = 0;
}

static int master_loop(struct master *m)
{
	struct pollfd pfds[1 + LISTENER_MAX];
	int r;

	while (!m->stopping || m->n_live > 0) {
		bool listening = master_watch_listeners(m, monotonic_ms());
		nfds_t n = 1;

		pfds[0] = (struct pollfd){ .fd = m->sfd, .events = POLLIN };
		/* The busy answer is a plain line: TLS clients wait in the
		 * queue for a worker instead. */
		for (size_t i = 0; listening && i < m->listeners.n; i++)
			if (!m->listeners.tls[i])
				pfds[n++] = (struct pollfd){ .fd = m->listeners.fds[i],
							     .events = POLLIN };
		r = poll(pfds, n, master_poll_timeout(m, listening));
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0 && pfds[0].revents) {
			r = master_read_signals(m);
			if (r < 0)
				return r;
		}
		for (nfds_t i = 1; i < n; i++)
			if (pfds[i].revents & POLLIN)
				master_on_waiting_client(m, pfds[i].fd);
		master_tick(m);
	}
	return 0;
}

static int master_setup_signals(struct master *m)
{
	struct sigaction ign = { .sa_handler = SIG_IGN };

	if (sigaction(SIGPIPE, &ign, NULL) < 0)
		return -errno;
	if (sigprocmask(SIG_BLOCK, master_signals(), NULL) < 0)
		return -errno;
	m->sfd = signalfd(-1, master_signals(), SFD_CLOEXEC | SFD_NONBLOCK);
	if (m->sfd < 0)
		return -errno;
	return 0;
}

static void master_log_startup(const struct master *m)
{
	char addrs[CONFIG_LISTEN_MAX * 64] = "";
	size_t used = 0;

	for (size_t i = 0; i < m->listeners.n; i++) {
		char buf[64];
		int n = snprintf(addrs + used, sizeof(addrs) - used, "%s%s%s",
				 i ? " " : "",
				 listener_format_local(m->listeners.fds[i], buf, sizeof(buf)),
				 m->listeners.tls[i] ? " (TLS)" : "");

		if (n > 0 && (size_t)n < sizeof(addrs) - used)
			used += (size_t)n;
	}
	struct log_field f[] = { { "LISTEN", addrs } };
	log_event(LOG_NOTICE, 0, LOG_MSGID_STARTUP, f, 1,
		  "tcpfiled listening on %s%s with %u workers", addrs,
		  m->listeners.activated ? " (socket activation)" : "",
		  m->conf->workers);
	if (m->listeners.n_tls) {
		const char *why;
		bool ktls = tls_ktls_possible(&why);

		log_info("kernel TLS for downloads: %s: %s", ktls ? "possible" : "not available",
			 why);
	}
}

/* Before any worker exists, every temporary name in a share's state
 * directory is litter from an earlier run (a power loss, a SIGKILLed
 * daemon).  Failing to remove it costs only space: warn and go on. */
static void master_sweep_share(const struct share_conf *sh, int fd)
{
	int r = storage_sweep(fd, 0);

	if (r < 0)
		log_warn_errno(r, "share [%s]: sweeping temporary names", sh->name);
	else if (r > 0)
		log_notice("share [%s]: removed temporary names of interrupted uploads: %d",
			   sh->name, r);
}

/* Workers open the shares again after fork; checking here first turns a
 * share the daemon cannot use into one clear start-up error instead of a
 * crash loop. */
static int master_check_shares(const struct config *conf)
{
	for (size_t i = 0; i < conf->n_shares; i++) {
		int fd = storage_open_root(conf->shares[i].path);

		if (fd == -ENOSYS) {
			log_err("openat2(2) is not available (a kernel older than 5.6, or a "
				"seccomp filter such as systemd's RestrictSUIDSGID= or "
				"DynamicUser=): shares cannot be confined safely");
			return fd;
		}
		if (fd < 0) {
			log_errno(fd, "share [%s]: %s", conf->shares[i].name,
				  conf->shares[i].path);
			return fd;
		}
		if (!conf->shares[i].read_only)
			master_sweep_share(&conf->shares[i], fd);
		close(fd);
	}
	return 0;
}

/* The board goes to status_file for `tcpfiled status`; without one (or
 * when it cannot be created, e.g. no /run/tcpfiled outside the unit) an
 * anonymous mapping serves the master alone. */
static struct scoreboard *master_open_scoreboard(struct master *m)
{
	const char *path = m->conf->status_file;
	struct scoreboard *sb;

	if (path && path[0]) {
		sb = scoreboard_new(path);
		if (sb) {
			m->status_path = strdup(path);
			if (m->status_path)
				return sb;
			scoreboard_free(sb, path);
		}
		log_warn_errno(errno, "status_file %s: cannot create it; "
			       "`tcpfiled status` will not see this daemon", path);
	}
	return scoreboard_new(NULL);
}

int master_run(struct config *conf, const char *config_path)
{
	struct master m = {
		.conf = conf,
		.config_path = config_path,
		.sfd = -1,
		.pid = getpid(),
		.generation = 1,
		.exit_status = EX_OK,
	};
	char err[256];
	int r, status = EX_OSERR;

	m.own_group = master_become_group_leader();
	if (master_check_shares(conf) < 0)
		goto err_free_conf;

	r = listener_set_open_all(&m.listeners, conf->listen, conf->n_listen, conf->tls_listen,
				  conf->n_tls_listen, conf->backlog, err, sizeof(err));
	if (r < 0) {
		log_err("%s", err);
		goto err_free_conf;
	}
	/* Before any fork: every worker shares the GNU SASL set-up, the
	 * made-up salts for unknown names and the session ticket keys
	 * (master_load_secrets sets them up when the configuration has
	 * logins or TLS listeners). */
	{
		char why[CONFIG_ERROR_MAX + TLS_ERROR_MAX];

		r = master_load_secrets(&m, conf, &m.users, &m.tls_ctx, why, sizeof(why));
		if (r < 0) {
			log_err("%s", why);
			goto err_close_listeners;
		}
	}
	/* Workers wait (idlewait.c) and then accept(); a non-blocking listener
	 * keeps the losers of a wake-up race from blocking in accept(). */
	for (size_t i = 0; i < m.listeners.n; i++) {
		r = fd_set_nonblock(m.listeners.fds[i], true);
		if (r < 0) {
			log_errno(r, "listener O_NONBLOCK");
			goto err_close_listeners;
		}
	}
	r = listener_set_defer_accept(&m.listeners, conf->defer_accept_ms, err, sizeof(err));
	if (r < 0) {
		log_err("%s", err);
		goto err_close_listeners;
	}
	m.sb = master_open_scoreboard(&m);
	if (!m.sb) {
		log_errno(errno, "scoreboard");
		goto err_close_listeners;
	}
	m.access = access_table_new(SCOREBOARD_SLOTS);
	if (!m.access) {
		log_errno(errno, "per-address connection table");
		goto err_free_scoreboard;
	}
	/* Without it a reload still works; connections in flight then keep
	 * their settings until they end. */
	m.board = confboard_new();
	if (!m.board)
		log_warn_errno(errno, "configuration board");
	m.workers = calloc(SCOREBOARD_SLOTS, sizeof(*m.workers));
	m.vacancy_due = calloc(CONFIG_WORKERS_MAX, sizeof(*m.vacancy_due));
	if (!m.workers || !m.vacancy_due) {
		log_errno(ENOMEM, "worker table");
		goto err_free_workers;
	}
	r = master_setup_signals(&m);
	if (r < 0) {
		log_errno(r, "signal setup");
		goto err_free_workers;
	}
	m.watchdog_usec = notify_watchdog_usec();
	m.last_watchdog_ms = monotonic_ms();
	m.next_pool_tick_ms = monotonic_ms() + POOL_TICK_MS;

	master_log_startup(&m);
	master_reset_pool(&m);
	master_fill(&m);
	master_update_status(&m, true);
	notify_ready();

	r = master_loop(&m);
	if (r < 0) {
		log_errno(r, "master loop");
		master_signal_workers(&m, SIGKILL, false);
		while (m.n_live > 0 && waitpid(-1, NULL, 0) > 0)
			m.n_live--;
		status = EX_SOFTWARE;
	} else {
		status = m.exit_status;
		log_event(LOG_NOTICE, 0, LOG_MSGID_SHUTDOWN, NULL, 0,
			  "stopped (exit status %d)", status);
	}

	close(m.sfd);
err_free_workers:
	free(m.vacancy_due);
	free(m.workers);
	access_table_free(m.access);
	confboard_free(m.board);
err_free_scoreboard:
	scoreboard_free(m.sb, m.status_path);
	free(m.status_path);
err_close_listeners:
	tls_ctx_free(m.tls_ctx);
	users_free(m.users);
	auth_done();
	listener_set_close(&m.listeners);
err_free_conf:
	config_free(m.conf);
	return status;
}
