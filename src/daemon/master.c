/* master: supervises the workers: signals, respawn with crash-loop
 * backoff, reload by worker generations, graceful shutdown. */
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
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "config.h"
#include "listener.h"
#include "log.h"
#include "monotonic.h"
#include "master.h"
#include "netio.h"
#include "notify.h"
#include "parse.h"
#include "scoreboard.h"
#include "sharecheck.h"
#include "storage.h"
#include "worker.h"

/* A worker that dies sooner than this after its start counts as a crash. */
#define QUICK_DEATH_MS    1000
#define BACKOFF_FIRST_MS  100
#define BACKOFF_MAX_MS    5000
#define STATUS_PERIOD_MS  1000

struct worker_rec {
	pid_t pid;
	int slot;
	uint64_t started_ms;
	bool retiring;
};

struct master {
	struct config *conf;
	const char *config_path;
	struct listener_set listeners;
	struct scoreboard *sb;
	struct access_table *access;  /* connections per client address */
	int sfd;
	pid_t pid;

	struct worker_rec *workers;   /* SCOREBOARD_SLOTS entries, pid 0 = unused */
	size_t n_live;
	unsigned generation;

	/* Crash-loop tracking for the current generation. */
	unsigned quick_deaths;
	uint64_t burst_start_ms;
	uint64_t respawn_at_ms;       /* 0: respawn at once */

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
	for (size_t i = 0; i < SCOREBOARD_SLOTS; i++)
		if (m->workers[i].pid == pid)
			return &m->workers[i];
	return NULL;
}

static unsigned master_count_current(const struct master *m)
{
	unsigned n = 0;

	for (size_t i = 0; i < SCOREBOARD_SLOTS; i++)
		if (m->workers[i].pid > 0 && !m->workers[i].retiring)
			n++;
	return n;
}

static int master_spawn(struct master *m)
{
	struct worker_rec *rec;
	int slot;
	pid_t pid;

	slot = scoreboard_claim(m->sb);
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
		worker_run(m->conf, &m->listeners, scoreboard_slot(m->sb, slot),
			   m->access, (size_t)slot);
	}

	scoreboard_set_pid(m->sb, slot, pid);
	*rec = (struct worker_rec){
		.pid = pid,
		.slot = slot,
		.started_ms = monotonic_ms(),
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

/* Forks workers until the current generation is complete, unless a
 * crash-loop backoff is pending. */
static void master_fill(struct master *m)
{
	unsigned have;

	if (m->stopping || (m->respawn_at_ms && monotonic_ms() < m->respawn_at_ms))
		return;
	m->respawn_at_ms = 0;
	for (have = master_count_current(m); have < m->conf->workers; have++) {
		int r = master_spawn(m);

		if (r < 0) {
			log_errno(r, "cannot start a worker");
			m->respawn_at_ms = monotonic_ms() + BACKOFF_FIRST_MS;
			return;
		}
	}
}

static uint64_t master_backoff_ms(unsigned deaths)
{
	uint64_t delay = BACKOFF_FIRST_MS;
	uint32_t rnd = 0;

	for (unsigned i = 1; i < deaths && delay < BACKOFF_MAX_MS; i++)
		delay *= 2;
	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	/* Jitter of ±25% so that several daemons do not retry in lockstep. */
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)monotonic_ms();
	return delay * 3 / 4 + rnd % (delay / 2 + 1);
}

static void master_begin_stop(struct master *m, int exit_status);
static void master_update_status(struct master *m, bool force);

/* Called for every death of a current-generation worker while running. */
static void master_note_death(struct master *m, const struct worker_rec *rec)
{
	uint64_t now = monotonic_ms();

	if (now - rec->started_ms >= QUICK_DEATH_MS) {
		m->quick_deaths = 0;
		m->burst_start_ms = 0;
		return;
	}
	if (m->quick_deaths++ == 0) {
		m->burst_start_ms = now;
		log_event(LOG_WARNING, 0, LOG_MSGID_CRASH_LOOP, NULL, 0,
			  "workers are dying right after start; backing off respawns");
	}
	m->respawn_at_ms = now + master_backoff_ms(m->quick_deaths);
	if (m->conf->crash_loop_timeout_ms &&
	    now - m->burst_start_ms >= m->conf->crash_loop_timeout_ms) {
		log_event(LOG_ERR, 0, LOG_MSGID_CRASH_LOOP, NULL, 0,
			  "crash loop: workers kept failing for %" PRIu64 " ms; giving up",
			  now - m->burst_start_ms);
		notify_status("crash loop: workers keep failing; exiting");
		master_begin_stop(m, EX_SOFTWARE);
	}
}

static void master_log_exit(const struct worker_rec *rec, int status)
{
	char pidbuf[16], how[64];
	int prio = LOG_WARNING;

	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)rec->pid);
	if (WIFEXITED(status)) {
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
		if (WEXITSTATUS(status) == 0)
			prio = LOG_INFO;
	} else if (WIFSIGNALED(status)) {
		const char *name = sigabbrev_np(WTERMSIG(status));

		snprintf(how, sizeof(how), "killed by signal %d (SIG%s)",
			 WTERMSIG(status), name ? name : "?");
	} else {
		snprintf(how, sizeof(how), "ended with wait status %d", status);
	}
	struct log_field f[] = {
		{ "WORKER_PID", pidbuf },
		{ "EXIT", how },
	};
	log_event(prio, 0, LOG_MSGID_WORKER_EXIT, f, 2, "worker %d %s",
		  (int)rec->pid, how);
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

static void master_reap(struct master *m)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct worker_rec *rec = master_find(m, pid);

		if (!rec)
			continue;
		master_log_exit(rec, status);
		/* A worker that exits 0 has finished or abandoned every commit. */
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			master_sweep_worker(m, pid);
		scoreboard_release(m->sb, rec->slot);
		access_release_slot(m->access, (size_t)rec->slot);
		m->n_live--;
		struct worker_rec dead = *rec;
		*rec = (struct worker_rec){ 0 };
		/* A clean exit is no crash (a worker told to retire by hand); it
		 * is simply replaced. */
		if (!m->stopping && !dead.retiring &&
		    !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
			master_note_death(m, &dead);
	}
}

static void master_signal_workers(struct master *m, int sig, bool only_retiring)
{
	for (size_t i = 0; i < SCOREBOARD_SLOTS; i++) {
		struct worker_rec *w = &m->workers[i];

		if (w->pid > 0 && (!only_retiring || w->retiring) && kill(w->pid, sig) < 0 &&
		    errno != ESRCH)
			log_warn_errno(errno, "kill(%d)", (int)w->pid);
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

static void master_reload(struct master *m)
{
	char err[CONFIG_ERROR_MAX];
	struct config *fresh = NULL;
	int r;

	notify_reloading();
	log_event(LOG_NOTICE, 0, LOG_MSGID_RELOAD, NULL, 0, "reloading %s", m->config_path);
	r = config_load(m->config_path, &fresh, err, sizeof(err));
	if (r == 0 && (r = sharecheck_config(fresh, err, sizeof(err))) < 0)
		config_free(fresh);
	if (r < 0) {
		log_event(LOG_ERR, 0, LOG_MSGID_RELOAD, NULL, 0,
			  "reload failed, keeping the running configuration: %s", err);
		snprintf(m->status_note, sizeof(m->status_note), "; reload failed: %s", err);
		master_update_status(m, true);
		notify_ready();
		return;
	}
	if (!config_listen_equal(m->conf, fresh))
		log_warn("listen changed in %s: needs a restart; keeping the current sockets",
			 m->config_path);

	/* Old workers keep their own copy of the old configuration (fork),
	 * finish their connection and exit; the listener never closes, so the
	 * kernel queues connections while the generations overlap. */
	for (size_t i = 0; i < SCOREBOARD_SLOTS; i++) {
		struct worker_rec *w = &m->workers[i];

		if (w->pid > 0 && !w->retiring) {
			w->retiring = true;
			scoreboard_set_state(scoreboard_slot(m->sb, w->slot), WORKER_RETIRING);
		}
	}
	config_free(m->conf);
	m->conf = fresh;
	log_set_level(fresh->log_level);
	m->generation++;
	m->quick_deaths = 0;
	m->burst_start_ms = 0;
	m->respawn_at_ms = 0;
	master_fill(m);
	master_signal_workers(m, SIGUSR1, true);
	log_event(LOG_NOTICE, 0, LOG_MSGID_RELOAD, NULL, 0,
		  "reloaded: generation %u with %u workers", m->generation,
		  m->conf->workers);
	m->status_note[0] = '\0';
	master_update_status(m, true);
	notify_ready();
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
		 "%u workers, %u busy, %" PRIu64 " transfers, %" PRIu64 " bytes%s%s",
		 t.workers, t.busy, t.transfers, t.bytes,
		 m->stopping ? "; shutting down" :
		 m->respawn_at_ms ? "; respawn backing off" : "", m->status_note);
	if (strcmp(line, m->last_status) == 0)
		return;
	memcpy(m->last_status, line, sizeof(line));
	m->last_status_ms = now;
	notify_status("%s", line);
	if (m->stopping)
		notify_extend_timeout((m->stop_deadline_ms > now ?
				       m->stop_deadline_ms - now : 0) * 1000 + 5000000);
}

static int master_poll_timeout(const struct master *m)
{
	uint64_t now = monotonic_ms(), next = now + STATUS_PERIOD_MS;

	if (m->respawn_at_ms && m->respawn_at_ms < next)
		next = m->respawn_at_ms;
	if (m->stopping && !m->killed_stragglers && m->stop_deadline_ms < next)
		next = m->stop_deadline_ms;
	if (m->watchdog_usec) {
		uint64_t wd = m->last_watchdog_ms + m->watchdog_usec / 2000;

		if (wd < next)
			next = wd;
	}
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
	master_fill(m);
	master_update_status(m, false);
}

static int master_loop(struct master *m)
{
	struct pollfd pfd = { .fd = m->sfd, .events = POLLIN };
	int r;

	while (!m->stopping || m->n_live > 0) {
		r = poll(&pfd, 1, master_poll_timeout(m));
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0) {
			r = master_read_signals(m);
			if (r < 0)
				return r;
		}
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
		int n = snprintf(addrs + used, sizeof(addrs) - used, "%s%s",
				 i ? " " : "",
				 listener_format_local(m->listeners.fds[i], buf, sizeof(buf)));

		if (n > 0 && (size_t)n < sizeof(addrs) - used)
			used += (size_t)n;
	}
	struct log_field f[] = { { "LISTEN", addrs } };
	log_event(LOG_NOTICE, 0, LOG_MSGID_STARTUP, f, 1,
		  "tcpfiled listening on %s%s with %u workers", addrs,
		  m->listeners.activated ? " (socket activation)" : "",
		  m->conf->workers);
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

	r = listener_set_open(&m.listeners, conf->listen, conf->n_listen,
			      conf->backlog, err, sizeof(err));
	if (r < 0) {
		log_err("%s", err);
		goto err_free_conf;
	}
	/* Workers wait in ppoll() and then accept(); a non-blocking listener
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
	m.sb = scoreboard_new();
	if (!m.sb) {
		log_errno(errno, "scoreboard");
		goto err_close_listeners;
	}
	m.access = access_table_new(SCOREBOARD_SLOTS);
	if (!m.access) {
		log_errno(errno, "per-address connection table");
		goto err_free_scoreboard;
	}
	m.workers = calloc(SCOREBOARD_SLOTS, sizeof(*m.workers));
	if (!m.workers) {
		log_errno(ENOMEM, "worker table");
		goto err_free_access;
	}
	r = master_setup_signals(&m);
	if (r < 0) {
		log_errno(r, "signal setup");
		goto err_free_workers;
	}
	m.watchdog_usec = notify_watchdog_usec();
	m.last_watchdog_ms = monotonic_ms();

	master_log_startup(&m);
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
	free(m.workers);
err_free_access:
	access_table_free(m.access);
err_free_scoreboard:
	scoreboard_free(m.sb);
err_close_listeners:
	listener_set_close(&m.listeners);
err_free_conf:
	config_free(m.conf);
	return status;
}
