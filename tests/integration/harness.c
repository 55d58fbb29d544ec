/* harness: drives tcpfiled and tcpfile for the integration tests; shared test helpers. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <xxhash.h>

#include "netio.h"
#include "parse.h"
#include "protocol.h"

extern char **environ;

#define HARNESS_MAX_DAEMONS    8
#define HARNESS_MAX_ARGS       64
#define HARNESS_POLL_SLICE_MS  100
#define HARNESS_NOTIFY_MAX     4096
#define HARNESS_PID_ENV        48

/* ---- Time ---- */

int64_t harness_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int harness_remaining_ms(int64_t deadline)
{
	int64_t left = deadline - harness_now_ms();

	if (left <= 0)
		return 0;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

static int harness_slice_ms(int64_t deadline)
{
	int left = harness_remaining_ms(deadline);

	return left < HARNESS_POLL_SLICE_MS ? left : HARNESS_POLL_SLICE_MS;
}

/* ---- Notify queue ----
 * net.unix.max_dgram_qlen can be as small as 10 and sd_notify() sends
 * blocking, so a test that does not read for a while could stall the
 * master.  Every harness poll loop therefore drains all notify sockets of
 * this process into per-daemon queues. */

struct notify_queue {
	struct daemon *d;
	pid_t owner;            /* forked test clients must not steal datagrams */
	char **msgs;
	size_t first;
	size_t n;
	size_t cap;
	char *history;          /* every datagram, each followed by "\n" */
	size_t history_len;
};

static struct notify_queue harness_queues[HARNESS_MAX_DAEMONS];

static struct notify_queue *notify_queue_of(const struct daemon *d)
{
	for (size_t i = 0; i < HARNESS_MAX_DAEMONS; i++)
		if (harness_queues[i].d == d && harness_queues[i].owner == getpid())
			return &harness_queues[i];
	return NULL;
}

static int notify_queue_register(struct daemon *d)
{
	for (size_t i = 0; i < HARNESS_MAX_DAEMONS; i++) {
		struct notify_queue *q = &harness_queues[i];

		/* A slot inherited from a parent test process is free for us. */
		if (q->d == NULL || q->owner != getpid()) {
			*q = (struct notify_queue){ .d = d, .owner = getpid() };
			return 0;
		}
	}
	return -ENOSPC;
}

static void notify_queue_unregister(struct daemon *d)
{
	struct notify_queue *q = notify_queue_of(d);

	if (q == NULL)
		return;
	for (size_t i = q->first; i < q->first + q->n; i++)
		free(q->msgs[i]);
	free(q->msgs);
	free(q->history);
	*q = (struct notify_queue){ 0 };
}

static int notify_history_add(struct notify_queue *q, const char *msg)
{
	size_t len = strlen(msg);
	char *h = realloc(q->history, q->history_len + len + 2);

	if (h == NULL)
		return -ENOMEM;
	memcpy(h + q->history_len, msg, len);
	h[q->history_len + len] = '\n';
	h[q->history_len + len + 1] = '\0';
	q->history = h;
	q->history_len += len + 1;
	return 0;
}

static int notify_queue_push(struct notify_queue *q, const char *msg)
{
	char *copy;

	if (notify_history_add(q, msg) < 0)
		return -ENOMEM;

	if (q->first > 0 && q->first + q->n == q->cap) {
		memmove(q->msgs, q->msgs + q->first, q->n * sizeof(*q->msgs));
		q->first = 0;
	}
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 16;
		char **msgs = realloc(q->msgs, cap * sizeof(*msgs));

		if (msgs == NULL)
			return -ENOMEM;
		q->msgs = msgs;
		q->cap = cap;
	}
	copy = strdup(msg);
	if (copy == NULL)
		return -ENOMEM;
	q->msgs[q->first + q->n++] = copy;
	return 0;
}

/* Returns a malloc'd datagram or NULL when the queue is empty. */
static char *notify_queue_pop(struct notify_queue *q)
{
	char *msg;

	if (q->n == 0)
		return NULL;
	msg = q->msgs[q->first++];
	q->n--;
	if (q->n == 0)
		q->first = 0;
	return msg;
}

static void notify_queue_drain(struct notify_queue *q)
{
	char buf[HARNESS_NOTIFY_MAX + 1];

	if (q->d == NULL || q->owner != getpid() || q->d->notify_fd < 0)
		return;
	for (;;) {
		ssize_t n = recv(q->d->notify_fd, buf, HARNESS_NOTIFY_MAX,
				 MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return;
		buf[n] = '\0';
		if (notify_queue_push(q, buf) < 0)
			return;
	}
}

static void harness_pump(void)
{
	for (size_t i = 0; i < HARNESS_MAX_DAEMONS; i++)
		notify_queue_drain(&harness_queues[i]);
}

/* ---- Polling ---- */

static void harness_sleep_10ms(void)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 10 * 1000 * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

bool wait_until(bool (*cond)(void *arg), void *arg, int timeout_ms)
{
	int64_t deadline = harness_now_ms() + timeout_ms;

	for (;;) {
		harness_pump();
		if (cond(arg))
			return true;
		if (harness_now_ms() >= deadline)
			return false;
		harness_sleep_10ms();
	}
}

/* poll() on one fd in short slices, draining notify sockets in between.
 * Returns 1 when ready, 0 on timeout, -errno. */
static int harness_poll_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int r;

		harness_pump();
		r = poll(&pfd, 1, harness_slice_ms(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r > 0)
			return 1;
		if (harness_remaining_ms(deadline) == 0)
			return 0;
	}
}

/* 0 once fd is readable (or at EOF), -ETIMEDOUT at the deadline, -errno. */
static int harness_wait_readable(int fd, int64_t deadline)
{
	int r = harness_poll_fd(fd, POLLIN, deadline);

	if (r < 0)
		return r;
	return r == 0 ? -ETIMEDOUT : 0;
}

/* ---- Small file and socket helpers ---- */

const char *harness_bin(const char *var)
{
	const char *v = getenv(var);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

static int harness_listen_socket(uint16_t port, bool do_listen, uint16_t *bound)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	socklen_t len = sizeof(sin);
	int fd, r;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		goto err_close_fd;
	if (do_listen && listen(fd, SOMAXCONN) < 0)
		goto err_close_fd;
	if (getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
		goto err_close_fd;
	*bound = ntohs(sin.sin_port);
	return fd;

err_close_fd:
	r = -errno;
	close(fd);
	return r;
}

int harness_free_port(uint16_t *port)
{
	int fd = harness_listen_socket(0, false, port);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

static int harness_write_file(const char *path, const char *text, size_t len)
{
	char tmp[PATH_MAX];
	int fd, r;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	r = write_full(fd, text, len);
	if (r < 0)
		goto err_unlink;
	if (close(fd) < 0) {
		fd = -1;
		r = -errno;
		goto err_unlink;
	}
	/* rename: a reload racing with the rewrite sees old or new, never half. */
	if (rename(tmp, path) < 0) {
		r = -errno;
		fd = -1;
		goto err_unlink;
	}
	return 0;

err_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return r;
}

static int harness_rm_chmod(const char *path, const struct stat *st, int type,
			    struct FTW *ftw)
{
	if (type == FTW_D || type == FTW_DNR)
		(void)chmod(path, 0700);
	return 0;
}

static int harness_rm_one(const char *path, const struct stat *st, int type,
			  struct FTW *ftw)
{
	if (remove(path) < 0 && errno != ENOENT)
		fprintf(stderr, "harness: cannot remove %s: %s\n", path,
			strerror(errno));
	return 0;
}

void harness_rm_rf(const char *path)
{
	/* Tests may leave directories without permissions behind. */
	(void)nftw(path, harness_rm_chmod, 16, FTW_PHYS | FTW_MOUNT);
	(void)nftw(path, harness_rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* ---- Config ---- */

/* True when extra text has a line setting key, so the default is skipped
 * (the daemon may refuse duplicate keys). */
static bool harness_extra_sets(const char *extra, const char *key)
{
	size_t klen = strlen(key);
	const char *p = extra;

	while (p != NULL && *p != '\0') {
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncmp(p, key, klen) == 0 &&
		    (p[klen] == ' ' || p[klen] == '\t' || p[klen] == '='))
			return true;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return false;
}

static void harness_put_default(FILE *f, const char *extra, const char *key,
				const char *value)
{
	if (!harness_extra_sets(extra, key))
		fprintf(f, "%s = %s\n", key, value);
}

int daemon_write_config(struct daemon *d, const struct daemon_opts *opts)
{
	const char *sx = opts->server_extra ? opts->server_extra : "";
	const char *shx = opts->shares_extra ? opts->shares_extra : "";
	char listen[64], workers[16], status[320];
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)d->port);
	snprintf(workers, sizeof(workers), "%u", opts->workers ? opts->workers : 2);
	f = open_memstream(&text, &len);
	if (f == NULL)
		return -errno;
	fprintf(f, "# written by the integration test harness\n[server]\n");
	harness_put_default(f, sx, "listen", listen);
	harness_put_default(f, sx, "workers", workers);
	/* A fixed pool unless a test asks for a dynamic one, so that worker
	 * counts stay what each test configured. */
	harness_put_default(f, sx, "max_workers", workers);
	/* Never the system's /run/tcpfiled/status. */
	snprintf(status, sizeof(status), "%s/status", d->dir);
	harness_put_default(f, sx, "status_file", status);
	harness_put_default(f, sx, "shutdown_timeout", "5s");
	harness_put_default(f, sx, "idle_timeout", "30s");
	harness_put_default(f, sx, "crash_loop_timeout", "30s");
	harness_put_default(f, sx, "log_level", "debug");
	harness_put_default(f, sx, "fsync", "yes");
	/* Loopback clients without a login, as the shipped config has it. */
	fprintf(f, "%s\n\n[files]\npath = %s\nanonymous = write\n\n[ro]\npath = %s\n"
		"read_only = yes\nanonymous = write\n\n%s\n", sx, d->share_dir, d->ro_dir, shx);
	if (fclose(f) != 0) {
		free(text);
		return -ENOMEM;
	}
	r = harness_write_file(d->conf_path, text, len);
	free(text);
	return r;
}

/* ---- Start and stop ---- */

static int harness_notify_socket(struct daemon *d)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, r;

	if (strlen(d->notify_path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, d->notify_path, strlen(d->notify_path) + 1);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	d->notify_fd = fd;
	return 0;
}

static int harness_paths(struct daemon *d)
{
	struct {
		char *dst;
		size_t cap;
		const char *leaf;
	} paths[] = {
		{ d->conf_path, sizeof(d->conf_path), "tcpfiled.conf" },
		{ d->share_dir, sizeof(d->share_dir), "files" },
		{ d->ro_dir, sizeof(d->ro_dir), "ro" },
		{ d->log_path, sizeof(d->log_path), "stderr.log" },
		{ d->notify_path, sizeof(d->notify_path), "notify" },
	};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if ((size_t)snprintf(paths[i].dst, paths[i].cap, "%s/%s", d->dir,
				     paths[i].leaf) >= paths[i].cap)
			return -ENAMETOOLONG;
	return 0;
}

static void harness_cleanup(struct daemon *d)
{
	notify_queue_unregister(d);
	if (d->notify_fd >= 0)
		close(d->notify_fd);
	d->notify_fd = -1;
	if (d->listen_fd >= 0)
		close(d->listen_fd);
	d->listen_fd = -1;
	if (d->dir[0] != '\0')
		harness_rm_rf(d->dir);
	d->dir[0] = '\0';
}

int daemon_prepare(struct daemon *d, const struct daemon_opts *opts)
{
	int r;

	memset(d, 0, sizeof(*d));
	d->notify_fd = -1;
	d->listen_fd = -1;
	snprintf(d->dir, sizeof(d->dir), "/tmp/tcpfiled-it.XXXXXX");
	if (mkdtemp(d->dir) == NULL) {
		r = -errno;
		d->dir[0] = '\0';
		return r;
	}
	r = harness_paths(d);
	if (r < 0)
		goto err_cleanup;
	if (mkdir(d->share_dir, 0755) < 0 || mkdir(d->ro_dir, 0755) < 0) {
		r = -errno;
		goto err_cleanup;
	}
	r = notify_queue_register(d);
	if (r < 0)
		goto err_cleanup;
	if (!opts->no_notify) {
		r = harness_notify_socket(d);
		if (r < 0)
			goto err_cleanup;
	}
	if (opts->self_bind) {
		r = harness_free_port(&d->port);
	} else {
		r = harness_listen_socket(0, true, &d->port);
		if (r >= 0)
			d->listen_fd = r;
	}
	if (r < 0)
		goto err_cleanup;
	snprintf(d->server, sizeof(d->server), "127.0.0.1:%u", (unsigned)d->port);
	r = daemon_write_config(d, opts);
	if (r < 0)
		goto err_cleanup;
	return 0;

err_cleanup:
	harness_cleanup(d);
	return r;
}

/* True when env entry e ("NAME=value") sets name. */
static bool harness_env_is(const char *e, const char *name, size_t nlen)
{
	return strncmp(e, name, nlen) == 0 && e[nlen] == '=';
}

/* True when extra sets the variable that entry e sets. */
static bool harness_env_overridden(const char *e, const char *const *extra)
{
	for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
		const char *eq = strchr(extra[i], '=');

		if (eq != NULL && harness_env_is(e, extra[i], (size_t)(eq - extra[i])))
			return true;
	}
	return false;
}

static bool harness_env_dropped(const char *e, const char *const *extra)
{
	static const char *const drop[] = {
		"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET",
		"JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID",
		/* tcpfile must only get the server a test means it to have. */
		"TCPFILE_SERVER",
	};

	for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
		if (harness_env_is(e, drop[i], strlen(drop[i])))
			return true;
	return harness_env_overridden(e, extra);
}

struct harness_env {
	char **envp;              /* pointers into environ, extra and bufs */
	char notify[sizeof("NOTIFY_SOCKET=") + 300];
	char listen_pid[HARNESS_PID_ENV];  /* "LISTEN_PID=" + digits, after fork */
};

/* Builds the child's environment before fork, so the child only has to
 * fill in its own pid (async-signal-safe). */
static int harness_env_build(struct harness_env *he, const struct daemon *d,
			     bool pass_listener, const char *const *extra)
{
	size_t n = 0, cap = 8, i;

	for (i = 0; environ[i] != NULL; i++)
		cap++;
	for (i = 0; extra != NULL && extra[i] != NULL; i++)
		cap++;
	he->envp = calloc(cap, sizeof(*he->envp));
	if (he->envp == NULL)
		return -ENOMEM;
	for (i = 0; environ[i] != NULL; i++)
		if (!harness_env_dropped(environ[i], extra))
			he->envp[n++] = environ[i];
	if (d != NULL && d->notify_fd >= 0) {
		snprintf(he->notify, sizeof(he->notify), "NOTIFY_SOCKET=%s",
			 d->notify_path);
		if (!harness_env_overridden(he->notify, extra))
			he->envp[n++] = he->notify;
	}
	if (pass_listener) {
		snprintf(he->listen_pid, sizeof(he->listen_pid), "LISTEN_PID=");
		if (!harness_env_overridden("LISTEN_FDS=1", extra))
			he->envp[n++] = (char *)"LISTEN_FDS=1";
		if (!harness_env_overridden(he->listen_pid, extra))
			he->envp[n++] = he->listen_pid;
	}
	for (i = 0; extra != NULL && extra[i] != NULL; i++)
		he->envp[n++] = (char *)extra[i];
	he->envp[n] = NULL;
	return 0;
}

/* Appends the decimal pid to buf (which ends in '='); async-signal-safe. */
static void harness_format_pid(char *buf, size_t cap, pid_t pid)
{
	char digits[24];
	size_t nd = 0, len = strlen(buf);
	unsigned long v = (unsigned long)pid;

	do {
		digits[nd++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0 && nd < sizeof(digits));
	while (nd > 0 && len + 1 < cap)
		buf[len++] = digits[--nd];
	buf[len] = '\0';
}

/* In the forked child: stdio, fd 3, clean signal state, then exec.  Only
 * async-signal-safe calls.  Never returns. */
static void harness_child_exec(const char *const *argv, char **envp,
			       char *listen_pid, int in_fd, int out_fd,
			       int pass_fd, pid_t parent)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;
	int in, out, pass = -1;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &dfl, NULL);
	/* If the test process dies (crash, Criterion timeout) without its
	 * .fini, the daemon must not outlive it. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);
	/* Move everything above the target numbers first so no dup2() below
	 * can clobber a source or be a no-op that keeps FD_CLOEXEC. */
	in = fcntl(in_fd, F_DUPFD_CLOEXEC, 10);
	out = fcntl(out_fd, F_DUPFD_CLOEXEC, 10);
	if (pass_fd >= 0)
		pass = fcntl(pass_fd, F_DUPFD_CLOEXEC, 10);
	if (in < 0 || out < 0 || (pass_fd >= 0 && pass < 0))
		_exit(127);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(127);
	if (pass >= 0) {
		if (dup2(pass, 3) < 0)
			_exit(127);
		harness_format_pid(listen_pid, HARNESS_PID_ENV, getpid());
	}
	/* Criterion's own descriptors may lack CLOEXEC. */
	if (close_range(pass >= 0 ? 4 : 3, ~0U, 0) < 0)
		_exit(127);
	execve(argv[0], (char *const *)argv, envp);
	_exit(127);
}

/* Forks and execs argv with stdin from in_fd (-1: /dev/null), stdout+stderr on out_fd
 * and, for a daemon d with a listener, that listener as fd 3.  0 or
 * -errno; *pid set on success. */
static int harness_fork_exec(const char *const *argv, const struct daemon *d,
			     const char *const *env, int in_fd, int out_fd,
			     pid_t *pid)
{
	int pass_fd = d != NULL ? d->listen_fd : -1;
	struct harness_env he = { 0 };
	pid_t parent = getpid();
	int null_fd = -1, r;

	r = harness_env_build(&he, d, pass_fd >= 0, env);
	if (r < 0)
		return r;
	if (in_fd < 0) {
		null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null_fd < 0) {
			r = -errno;
			goto err_free_env;
		}
		in_fd = null_fd;
	}
	*pid = fork();
	if (*pid < 0) {
		r = -errno;
		goto err_close_null;
	}
	if (*pid == 0)
		harness_child_exec(argv, he.envp, he.listen_pid, in_fd, out_fd,
				   pass_fd, parent);
	r = 0;

err_close_null:
	if (null_fd >= 0)
		close(null_fd);
err_free_env:
	free(he.envp);
	return r;
}

int daemon_spawn(struct daemon *d, const char *const *argv,
		 const char *const *env)
{
	int log_fd, r;
	pid_t pid;

	if (d->dir[0] == '\0' || argv == NULL || argv[0] == NULL)
		return -EINVAL;
	log_fd = open(d->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (log_fd < 0)
		return -errno;
	/* Workers orphaned by a killed master then become our children, and
	 * daemon_stop reaps them instead of leaving zombies to an init that
	 * may not reap (the test process ends soon anyway). */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		r = -errno;
		goto err_close_log;
	}
	r = harness_fork_exec(argv, d, env, -1, log_fd, &pid);
	if (r < 0)
		goto err_close_log;
	d->pid = pid;
	d->reaped = false;
	d->wait_status = 0;
	/* Only the daemon may hold the listener: a port kept open here would
	 * hide a daemon that stopped listening. */
	if (d->listen_fd >= 0)
		close(d->listen_fd);
	d->listen_fd = -1;

err_close_log:
	close(log_fd);
	return r;
}

static bool harness_master_exited(struct daemon *d)
{
	siginfo_t si = { 0 };

	if (d->reaped)
		return true;
	/* WNOWAIT: only peek, daemon_stop/daemon_wait_exit reap. */
	if (waitid(P_PID, (id_t)d->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return errno == ECHILD;
	return si.si_pid == d->pid;
}

static bool harness_greeting_cond(void *arg)
{
	struct daemon *d = arg;
	int fd = daemon_connect_hello(d);

	if (fd >= 0)
		close(fd);
	return fd >= 0 || harness_master_exited(d);
}

static bool harness_notify_has_line(const char *msg, const char *prefix)
{
	size_t plen = strlen(prefix);

	for (const char *p = msg; p != NULL; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, prefix, plen) == 0)
			return true;
	}
	return false;
}

int daemon_wait_ready(struct daemon *d)
{
	int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;
	char msg[HARNESS_NOTIFY_MAX + 1];

	if (d->notify_fd < 0) {
		if (!wait_until(harness_greeting_cond, d, HARNESS_TIMEOUT_MS))
			return -ETIMEDOUT;
		return harness_master_exited(d) ? -ECHILD : 0;
	}
	for (;;) {
		int r = daemon_recv_notify(d, harness_slice_ms(deadline), msg,
					   sizeof(msg));

		if (r == 0 && harness_notify_has_line(msg, "READY=1"))
			return 0;
		if (r < 0 && r != -ETIMEDOUT)
			return r;
		if (harness_master_exited(d))
			return -ECHILD;
		if (harness_remaining_ms(deadline) == 0)
			return -ETIMEDOUT;
	}
}

int daemon_start(struct daemon *d, const struct daemon_opts *opts)
{
	const char *bin = harness_bin("TCPFILED_BIN");
	int r;

	if (bin == NULL) {
		fprintf(stderr, "harness: TCPFILED_BIN is not set\n");
		return -ENOENT;
	}
	r = daemon_prepare(d, opts);
	if (r < 0)
		return r;
	{
		const char *argv[] = { bin, "-c", d->conf_path, NULL };

		r = daemon_spawn(d, argv, NULL);
	}
	if (r < 0)
		goto err_stop;
	r = daemon_wait_ready(d);
	if (r < 0)
		goto err_stop;
	return 0;

err_stop:
	fprintf(stderr, "harness: daemon did not become ready: %s\n", strerror(-r));
	daemon_dump_log(d);
	daemon_stop(d);
	return r;
}

static bool harness_reap_cond(void *arg)
{
	struct daemon *d = arg;
	int st;
	pid_t p;

	if (d->reaped)
		return true;
	p = waitpid(d->pid, &st, WNOHANG);
	if (p == d->pid) {
		d->reaped = true;
		d->wait_status = st;
		return true;
	}
	/* ECHILD: someone else reaped it; there is no status to report. */
	if (p < 0 && errno == ECHILD) {
		d->reaped = true;
		d->wait_status = -ECHILD;
		return true;
	}
	return false;
}

int daemon_wait_exit(struct daemon *d, int timeout_ms)
{
	if (d->pid <= 0)
		return -ECHILD;
	if (!wait_until(harness_reap_cond, d, timeout_ms))
		return -ETIMEDOUT;
	return d->wait_status;
}

/* Reaps orphaned members of the daemon's group (we are a subreaper);
 * true once none is left. */
static bool harness_reap_group_cond(void *arg)
{
	const struct daemon *d = arg;

	for (;;) {
		pid_t p = waitpid(-d->pid, NULL, WNOHANG);

		if (p < 0)
			return errno == ECHILD;
		if (p == 0)
			return false;
	}
}

int daemon_stop(struct daemon *d)
{
	int r = 0;

	if (d->dir[0] == '\0')
		return d->reaped ? d->wait_status : 0;
	if (d->pid > 0 && !d->reaped) {
		if (kill(d->pid, SIGTERM) < 0 && errno != ESRCH)
			fprintf(stderr, "harness: kill: %s\n", strerror(errno));
		r = daemon_wait_exit(d, HARNESS_TIMEOUT_MS);
		if (r == -ETIMEDOUT) {
			fprintf(stderr, "harness: tcpfiled %d ignored SIGTERM, killing\n",
				(int)d->pid);
			(void)kill(-d->pid, SIGKILL);
			(void)kill(d->pid, SIGKILL);
			(void)daemon_wait_exit(d, HARNESS_TIMEOUT_MS);
			r = -ETIMEDOUT;
		}
	} else if (d->reaped) {
		r = d->wait_status;
	}
	/* The master leads its own group: take down any straggling worker
	 * (ESRCH when none is left, which is the normal case). */
	if (daemon_log_has_sanitizer_report(d)) {
		fprintf(stderr, "harness: sanitizer report in the daemon's log\n");
		daemon_dump_log(d);
	} else if (getenv("ITEST_DUMP_LOG") != NULL) {
		daemon_dump_log(d);
	}
	if (d->pid > 0) {
		(void)kill(-d->pid, SIGKILL);
		if (!wait_until(harness_reap_group_cond, d, HARNESS_TIMEOUT_MS))
			fprintf(stderr, "harness: workers of %d not reaped\n", (int)d->pid);
	}
	harness_cleanup(d);
	return r;
}

int daemon_recv_notify(struct daemon *d, int timeout_ms, char *out, size_t cap)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	struct notify_queue *q = notify_queue_of(d);

	if (d->notify_fd < 0 || q == NULL)
		return -EBADF;
	for (;;) {
		char *msg;
		int r;

		notify_queue_drain(q);
		msg = notify_queue_pop(q);
		if (msg != NULL) {
			if (cap > 0)
				snprintf(out, cap, "%s", msg);
			free(msg);
			return 0;
		}
		if (harness_remaining_ms(deadline) == 0)
			return -ETIMEDOUT;
		r = harness_poll_fd(d->notify_fd, POLLIN, deadline);
		if (r < 0)
			return r;
	}
}

int daemon_wait_notify(struct daemon *d, const char *prefix, int timeout_ms,
		       char *out, size_t cap)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	char msg[HARNESS_NOTIFY_MAX + 1];

	for (;;) {
		int r = daemon_recv_notify(d, harness_remaining_ms(deadline), msg,
					   sizeof(msg));

		if (r < 0)
			return r;
		if (harness_notify_has_line(msg, prefix)) {
			if (cap > 0)
				snprintf(out, cap, "%s", msg);
			return 0;
		}
	}
}

/* ---- /proc ---- */

/* State letter and parent pid from /proc/PID/stat.  0 or -errno. */
static int proc_stat(pid_t pid, char *state, pid_t *ppid)
{
	char path[64], buf[1024], tok[32];
	const char *p, *sp;
	uint64_t v;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read_full(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return (int)n;
	buf[n] = '\0';
	/* comm may contain spaces and parentheses: parse after the last ')'. */
	p = strrchr(buf, ')');
	if (p == NULL || p[1] != ' ' || p[2] == '\0' || p[3] != ' ')
		return -EPROTO;
	*state = p[2];
	p += 4;
	sp = strchr(p, ' ');
	if (sp == NULL || (size_t)(sp - p) >= sizeof(tok))
		return -EPROTO;
	memcpy(tok, p, (size_t)(sp - p));
	tok[sp - p] = '\0';
	if (parse_u64(tok, &v) < 0 || v > INT32_MAX)
		return -EPROTO;
	*ppid = (pid_t)v;
	return 0;
}

static bool proc_parse_pid(const char *name, pid_t *pid)
{
	uint64_t v;

	if (parse_u64(name, &v) < 0 || v == 0 || v > INT32_MAX)
		return false;
	*pid = (pid_t)v;
	return true;
}

size_t proc_children(pid_t pid, pid_t *pids, size_t cap)
{
	DIR *dir = opendir("/proc");
	struct dirent *de;
	size_t n = 0;

	if (dir == NULL)
		return 0;
	while (n < cap && (de = readdir(dir)) != NULL) {
		pid_t p, ppid;
		char state;

		if (!proc_parse_pid(de->d_name, &p))
			continue;
		if (proc_stat(p, &state, &ppid) < 0)
			continue;
		if (ppid == pid && state != 'Z' && state != 'X')
			pids[n++] = p;
	}
	closedir(dir);
	return n;
}

bool proc_is_alive(pid_t pid)
{
	pid_t ppid;
	char state;

	if (pid <= 0 || proc_stat(pid, &state, &ppid) < 0)
		return false;
	return state != 'Z' && state != 'X';
}

static bool proc_syscall_waits(uint64_t nr)
{
	static const long waits[] = {
		SYS_ppoll, SYS_accept4, SYS_accept, SYS_epoll_pwait,
		SYS_pselect6,
#ifdef SYS_poll
		SYS_poll,
#endif
#ifdef SYS_epoll_wait
		SYS_epoll_wait,
#endif
#ifdef SYS_epoll_pwait2
		SYS_epoll_pwait2,
#endif
#ifdef SYS_select
		SYS_select,
#endif
	};

	for (size_t i = 0; i < sizeof(waits) / sizeof(waits[0]); i++)
		if ((uint64_t)waits[i] == nr)
			return true;
	return false;
}

bool proc_waits_for_connection(pid_t pid)
{
	char path[64], buf[256];
	pid_t ppid;
	char state, *sp;
	uint64_t nr;
	ssize_t n;
	int fd;

	if (proc_stat(pid, &state, &ppid) < 0 || state != 'S')
		return false;
	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read_full(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* "271 0x... ..." while blocked in a syscall; "running" or "-1 ..."
	 * otherwise. */
	sp = strchr(buf, ' ');
	if (sp == NULL)
		return false;
	*sp = '\0';
	return parse_u64(buf, &nr) == 0 && proc_syscall_waits(nr);
}

long proc_count_fds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	long n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (dir == NULL)
		return -errno;
	while ((de = readdir(dir)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/* ---- Log ---- */

char *daemon_log_read(struct daemon *d)
{
	struct stat st;
	char *buf;
	ssize_t n;
	int fd;

	fd = open(d->log_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		close(fd);
		return NULL;
	}
	n = read_full(fd, buf, (size_t)st.st_size);
	close(fd);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

bool daemon_log_contains(struct daemon *d, const char *needle)
{
	char *log = daemon_log_read(d);
	bool found = log != NULL && strstr(log, needle) != NULL;

	free(log);
	return found;
}

bool daemon_log_has_sanitizer_report(struct daemon *d)
{
	static const char *const marks[] = {
		"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
	};
	char *log = daemon_log_read(d);
	bool found = false;

	for (size_t i = 0; log != NULL && i < sizeof(marks) / sizeof(marks[0]); i++)
		found = found || strstr(log, marks[i]) != NULL;
	free(log);
	return found;
}

void daemon_dump_log(struct daemon *d)
{
	char *log = daemon_log_read(d);

	fprintf(stderr, "---- %s ----\n%s---- end of log ----\n", d->log_path,
		log != NULL ? log : "(unreadable)\n");
	free(log);
}

/* ---- Protocol over a socket ---- */

int daemon_connect(struct daemon *d)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons(d->port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int fd, r;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		r = -errno;
		goto err_close_fd;
	}
	/* A request line followed at once by its body, or lines sent back to
	 * back, must not wait ~40 ms for the peer's delayed ACK. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int)) < 0) {
		r = -errno;
		goto err_close_fd;
	}
	r = socket_set_timeouts(fd, HARNESS_TIMEOUT_MS);
	if (r < 0)
		goto err_close_fd;
	return fd;

err_close_fd:
	close(fd);
	return r;
}

static int proto_vsend_line(int fd, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static int proto_vsend_line(int fd, const char *fmt, va_list ap)
{
	va_list measure;
	char *line;
	int len, r;

	va_copy(measure, ap);
	len = vsnprintf(NULL, 0, fmt, measure);
	va_end(measure);
	if (len < 0)
		return -EINVAL;
	line = malloc((size_t)len + 2);
	if (line == NULL)
		return -ENOMEM;
	vsnprintf(line, (size_t)len + 1, fmt, ap);
	/* Line and LF in one write: a lone LF segment would wait for the
	 * delayed ACK of the first (Nagle). */
	line[len] = '\n';
	r = write_full(fd, line, (size_t)len + 1);
	free(line);
	return r;
}

int proto_send_line(int fd, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = proto_vsend_line(fd, fmt, ap);
	va_end(ap);
	return r;
}

ssize_t proto_recv_line(int fd, char *buf, size_t cap)
{
	int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;
	size_t len = 0;

	if (cap == 0)
		return -EINVAL;
	/* One byte at a time: body bytes that follow the line stay in the
	 * socket for the caller's read_full(). */
	for (;;) {
		ssize_t n;
		char c;
		int r = harness_wait_readable(fd, deadline);

		if (r < 0)
			return r;
		n = read_full(fd, &c, 1);
		if (n < 0)
			return n;
		if (n == 0)
			return len == 0 ? -ENODATA : -EPROTO;
		if (c == '\n')
			break;
		if (len + 1 >= cap)
			return -EMSGSIZE;
		buf[len++] = c;
	}
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	return (ssize_t)len;
}

/* ---- Running the client and other programs ---- */

struct harness_child {
	pid_t pid;
	int status;
	bool reaped;
};

static bool harness_child_cond(void *arg)
{
	struct harness_child *c = arg;
	pid_t p = waitpid(c->pid, &c->status, WNOHANG);

	if (p == c->pid || (p < 0 && errno == ECHILD))
		c->reaped = p == c->pid;
	return p == c->pid || (p < 0 && errno == ECHILD);
}

/* Collects the child's output until EOF or the deadline.  Returns 0 or
 * -ETIMEDOUT / -errno. */
static int harness_capture(int fd, char *out, size_t cap, int64_t deadline)
{
	size_t len = 0;
	char chunk[4096];

	/* A poll()-bounded read per chunk: the child may hang, and read_full
	 * would wait for a whole chunk. */
	for (;;) {
		ssize_t n;
		int r = harness_wait_readable(fd, deadline);

		if (r < 0)
			return r;
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		if (cap > 0 && len < cap - 1) {
			size_t take = (size_t)n < cap - 1 - len ? (size_t)n : cap - 1 - len;

			memcpy(out + len, chunk, take);
			len += take;
			out[len] = '\0';
		}
	}
}

int harness_spawn(const char *const *argv, const char *const *env,
		  struct harness_proc *p)
{
	return harness_spawn_in(argv, env, -1, p);
}

int harness_spawn_in(const char *const *argv, const char *const *env,
		     int in_fd, struct harness_proc *p)
{
	int pipefd[2], r;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	r = harness_fork_exec(argv, NULL, env, in_fd, pipefd[1], &p->pid);
	close(pipefd[1]);
	if (r < 0) {
		close(pipefd[0]);
		return r;
	}
	p->out_fd = pipefd[0];
	return 0;
}

int harness_proc_wait(struct harness_proc *p, char *out, size_t cap,
		      int timeout_ms)
{
	int64_t deadline = harness_now_ms() + timeout_ms;
	struct harness_child child = { .pid = p->pid };
	int r;

	if (cap > 0)
		out[0] = '\0';
	r = harness_capture(p->out_fd, out, cap, deadline);
	close(p->out_fd);
	p->out_fd = -1;
	if (r == 0 && !wait_until(harness_child_cond, &child,
				  harness_remaining_ms(deadline)))
		r = -ETIMEDOUT;
	if (r < 0 && !child.reaped) {
		(void)kill(child.pid, SIGKILL);
		(void)wait_until(harness_child_cond, &child, HARNESS_TIMEOUT_MS);
	}
	if (r == 0 && !child.reaped)
		r = -ECHILD;
	if (r == 0)
		r = WIFEXITED(child.status) ? WEXITSTATUS(child.status)
					    : 128 + WTERMSIG(child.status);
	return r;
}

int harness_run(const char *const *argv, char *out, size_t cap)
{
	struct harness_proc p;
	int r;

	if (cap > 0)
		out[0] = '\0';
	r = harness_spawn(argv, NULL, &p);
	if (r < 0)
		return r;
	return harness_proc_wait(&p, out, cap, HARNESS_RUN_TIMEOUT_MS);
}

int tcpfile_spawnv(struct daemon *d, const char *const argv[],
		   const char *server_env, struct harness_proc *p)
{
	char server_var[sizeof("TCPFILE_SERVER=") + 256];
	const char *env[] = { server_var, NULL };

	if (server_env != NULL &&
	    (size_t)snprintf(server_var, sizeof(server_var), "TCPFILE_SERVER=%s",
			     server_env) >= sizeof(server_var))
		return -ENAMETOOLONG;
	return tcpfile_spawn_env(d, argv, server_env != NULL ? env : NULL, -1, p);
}

int tcpfile_spawn_env(struct daemon *d, const char *const argv[],
		      const char *const *env, int in_fd, struct harness_proc *p)
{
	const char *bin = harness_bin("TCPFILE_BIN");
	const char **full;
	size_t nargs = 0, n = 0;
	int r;

	if (bin == NULL)
		return -ENOENT;
	while (argv[nargs] != NULL)
		nargs++;
	full = calloc(nargs + 4, sizeof(*full));
	if (full == NULL)
		return -ENOMEM;
	full[n++] = bin;
	if (d != NULL) {
		full[n++] = "-s";
		full[n++] = d->server;
	}
	for (size_t i = 0; i < nargs; i++)
		full[n++] = argv[i];
	full[n] = NULL;
	r = harness_spawn_in(full, env, in_fd, p);
	free(full);
	return r;
}

int tcpfile_runv(struct daemon *d, char *out, size_t cap,
		 const char *const argv[], const char *server_env)
{
	struct harness_proc p;
	int r;

	if (cap > 0)
		out[0] = '\0';
	r = tcpfile_spawnv(d, argv, server_env, &p);
	if (r < 0)
		return r;
	return harness_proc_wait(&p, out, cap, HARNESS_RUN_TIMEOUT_MS);
}

int tcpfile_run(struct daemon *d, char *out, size_t cap, ...)
{
	const char *argv[HARNESS_MAX_ARGS + 1];
	size_t n = 0;
	const char *a;
	va_list ap;

	va_start(ap, cap);
	while ((a = va_arg(ap, const char *)) != NULL) {
		if (n == HARNESS_MAX_ARGS) {
			va_end(ap);
			return -E2BIG;
		}
		argv[n++] = a;
	}
	va_end(ap);
	argv[n] = NULL;
	return tcpfile_runv(d, out, cap, argv, NULL);
}

/* ---- Files ---- */

int fill_random(void *buf, size_t len)
{
	unsigned char *p = buf;

	/* getrandom() may return fewer bytes than asked beyond 256. */
	while (len > 0) {
		ssize_t got = getrandom(p, len, 0);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		p += got;
		len -= (size_t)got;
	}
	return 0;
}

int make_random_file(const char *path, size_t len)
{
	char buf[65536];
	int fd, r = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	while (len > 0 && r == 0) {
		size_t want = len < sizeof(buf) ? len : sizeof(buf);

		r = fill_random(buf, want);
		if (r == 0)
			r = write_full(fd, buf, want);
		len -= want;
	}
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

bool files_equal(const char *a, const char *b)
{
	static char ba[65536], bb[65536];
	struct stat sa, sb;
	bool equal = false;
	int fa, fb;

	fa = open(a, O_RDONLY | O_CLOEXEC);
	if (fa < 0)
		return false;
	fb = open(b, O_RDONLY | O_CLOEXEC);
	if (fb < 0)
		goto out_close_a;
	if (fstat(fa, &sa) < 0 || fstat(fb, &sb) < 0 || sa.st_size != sb.st_size)
		goto out_close_b;
	for (;;) {
		ssize_t na = read_full(fa, ba, sizeof(ba));
		ssize_t nb = read_full(fb, bb, sizeof(bb));

		if (na < 0 || nb < 0 || na != nb || memcmp(ba, bb, (size_t)na) != 0)
			break;
		if (na == 0) {
			equal = true;
			break;
		}
	}

out_close_b:
	close(fb);
out_close_a:
	close(fa);
	return equal;
}

/* Takes ownership of dfd. */
static long count_entries_fd(int dfd, const char *prefix)
{
	size_t plen = strlen(prefix);
	struct dirent *de;
	long n = 0;
	DIR *dir;

	dir = fdopendir(dfd);
	if (dir == NULL) {
		long r = -errno;

		close(dfd);
		return r;
	}
	for (;;) {
		bool is_dir;

		errno = 0;
		de = readdir(dir);
		if (de == NULL) {
			if (errno != 0)
				n = -errno;
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		/* The share's state directory itself is not litter; what it
		 * holds is (it is counted below). */
		if (strncmp(de->d_name, prefix, plen) == 0 &&
		    strcmp(de->d_name, ".tcpfiled") != 0)
			n++;
		is_dir = de->d_type == DT_DIR;
		if (de->d_type == DT_UNKNOWN) {
			struct stat st;

			is_dir = fstatat(dirfd(dir), de->d_name, &st,
					 AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
		}
		if (is_dir) {
			int sub = openat(dirfd(dir), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			long m;

			if (sub < 0) {
				n = -errno;
				break;
			}
			m = count_entries_fd(sub, prefix);
			if (m < 0) {
				n = m;
				break;
			}
			n += m;
		}
	}
	closedir(dir);
	return n;
}

long count_entries(const char *dir, const char *prefix)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return count_entries_fd(fd, prefix);
}

char *daemon_notify_history(struct daemon *d)
{
	struct notify_queue *q = notify_queue_of(d);

	if (q == NULL)
		return NULL;
	notify_queue_drain(q);
	return strdup(q->history != NULL ? q->history : "");
}

bool daemon_notify_seen(struct daemon *d, const char *prefix)
{
	char *h = daemon_notify_history(d);
	bool seen = h != NULL && harness_notify_has_line(h, prefix);

	free(h);
	return seen;
}

struct harness_workers {
	pid_t master;
	size_t want;
	pid_t *pids;
	size_t cap;
	size_t n;
};

static bool harness_workers_cond(void *arg)
{
	struct harness_workers *w = arg;
	pid_t found[HARNESS_MAX_WORKERS];

	w->n = proc_children(w->master, found, HARNESS_MAX_WORKERS);
	if (w->n != w->want)
		return false;
	for (size_t i = 0; i < w->n; i++)
		if (!proc_waits_for_connection(found[i]))
			return false;
	for (size_t i = 0; i < w->n && i < w->cap; i++)
		w->pids[i] = found[i];
	return true;
}

int daemon_wait_workers(struct daemon *d, size_t n, pid_t *pids, size_t cap,
			int timeout_ms)
{
	struct harness_workers w = {
		.master = d->pid, .want = n, .pids = pids, .cap = cap,
	};

	if (n > HARNESS_MAX_WORKERS)
		return -EINVAL;
	return wait_until(harness_workers_cond, &w, timeout_ms) ? 0 : -ETIMEDOUT;
}

bool greeting_is_v2(const char *line)
{
	const char *v, *end;

	if (strncmp(line, "TCPFILE ", 8) != 0)
		return false;
	v = line + 8;
	end = v + strcspn(v, " ");
	/* <versions> is a comma-separated list: "2", "2,3", "1,2". */
	while (v < end) {
		size_t len = strcspn(v, ", ");

		if (len == 1 && v[0] == '2')
			return true;
		v += len;
		if (*v == ',')
			v++;
	}
	return false;
}

static bool harness_hello_ok(const char *line)
{
	char version[16];

	return strncmp(line, "OK ", 3) == 0 &&
	       reply_token(line, "version", version, sizeof(version)) &&
	       strcmp(version, "2") == 0;
}

int daemon_connect_hello(struct daemon *d)
{
	char line[HARNESS_LINE_CAP];
	ssize_t n;
	int fd = daemon_connect(d);
	int r;

	if (fd < 0)
		return fd;
	r = proto_send_line(fd, HARNESS_HELLO);
	if (r < 0)
		goto err_close_fd;
	n = proto_recv_line(fd, line, sizeof(line));
	if (n < 0) {
		r = (int)n;
		goto err_close_fd;
	}
	r = -EPROTO;
	if (!greeting_is_v2(line))
		goto err_close_fd;
	n = proto_recv_line(fd, line, sizeof(line));
	if (n < 0) {
		r = (int)n;
		goto err_close_fd;
	}
	if (!harness_hello_ok(line))
		goto err_close_fd;
	return fd;

err_close_fd:
	close(fd);
	return r;
}

bool reply_token(const char *line, const char *name, char *out, size_t cap)
{
	size_t nlen = strlen(name);
	const char *p = line;

	while (*p != '\0') {
		size_t len = strcspn(p, " ");

		if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
			size_t vlen = len - nlen - 1;

			if (vlen + 1 > cap)
				return false;
			memcpy(out, p + nlen + 1, vlen);
			out[vlen] = '\0';
			return true;
		}
		if (len == nlen && strncmp(p, name, nlen) == 0) {
			if (cap == 0)
				return false;
			out[0] = '\0';
			return true;
		}
		p += len;
		while (*p == ' ')
			p++;
	}
	return false;
}

int daemon_log_op_bytes(struct daemon *d, const char *op, const char *path,
			uint64_t *bytes, char *line, size_t cap)
{
	char *log = daemon_log_read(d), *found = NULL, *p;
	char head[PROTO_MAX_LINE];
	int r = -ENOENT;

	if (log == NULL)
		return -EIO;
	snprintf(head, sizeof(head), "%s %s from ", op, path);
	for (p = strstr(log, head); p != NULL; p = strstr(p + 1, head))
		found = p;
	if (found != NULL) {
		size_t len = strcspn(found, "\n");
		char *rec = strndup(found, len);
		char *tail = rec != NULL ? strstr(rec, " bytes in ") : NULL;
		char *num = tail;

		/* ", N bytes in M ms": N is the word before " bytes in ". */
		while (num != NULL && num > rec && num[-1] >= '0' && num[-1] <= '9')
			num--;
		if (tail != NULL && num < tail) {
			*tail = '\0';
			r = parse_u64(num, bytes) < 0 ? -EPROTO : 0;
			*tail = ' ';
		} else {
			r = rec == NULL ? -ENOMEM : -EPROTO;
		}
		if (r == 0 && line != NULL && cap > 0)
			snprintf(line, cap, "%s", rec);
		free(rec);
	}
	free(log);
	return r;
}

void xxh128_hex(const void *buf, size_t len, char out[33])
{
	XXH128_hash_t h = XXH3_128bits(buf, len);
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, h);
	for (size_t i = 0; i < sizeof(c.digest); i++)
		snprintf(out + 2 * i, 3, "%02x", c.digest[i]);
}

int file_xxh128_hex(const char *path, char out[33])
{
	static char buf[65536];
	XXH3_state_t *st;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	st = XXH3_createState();
	if (st == NULL) {
		r = -ENOMEM;
		goto out_close_fd;
	}
	if (XXH3_128bits_reset(st) != XXH_OK) {
		r = -EIO;
		goto out_free_state;
	}
	for (;;) {
		ssize_t n = read_full(fd, buf, sizeof(buf));

		if (n < 0) {
			r = (int)n;
			goto out_free_state;
		}
		if (n == 0)
			break;
		if (XXH3_128bits_update(st, buf, (size_t)n) != XXH_OK) {
			r = -EIO;
			goto out_free_state;
		}
	}
	{
		XXH128_canonical_t c;

		XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
		for (size_t i = 0; i < sizeof(c.digest); i++)
			snprintf(out + 2 * i, 3, "%02x", c.digest[i]);
	}

out_free_state:
	XXH3_freeState(st);
out_close_fd:
	close(fd);
	return r;
}

bool pid_in(pid_t pid, const pid_t *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == pid)
			return true;
	return false;
}

/* ---- Asserting helpers ----
 * Criterion forks a process per test, so these pools start empty in every
 * test; test_release_all() empties them for a test that failed early. */

struct raw_conn {
	bool live;
	struct conn conn;       /* the socket; netio's conn_close closes it */
	struct linebuf lb;
};

static void *test_owned[TEST_MAX_OWNED];
static struct raw_conn test_conns[TEST_MAX_CONNS];

void start_daemon(struct daemon *d, const struct daemon_opts *opts)
{
	struct daemon_opts def = { 0 };
	int r = daemon_start(d, opts != NULL ? opts : &def);

	cr_assert_eq(r, 0, "daemon_start: %s", strerror(-r));
}

void *test_alloc(size_t n)
{
	for (size_t i = 0; i < TEST_MAX_OWNED; i++) {
		if (test_owned[i] == NULL) {
			test_owned[i] = malloc(n ? n : 1);
			cr_assert_not_null(test_owned[i], "out of memory");
			return test_owned[i];
		}
	}
	cr_assert_fail("more than %d live test buffers", TEST_MAX_OWNED);
	return NULL;
}

void test_free(void *p)
{
	for (size_t i = 0; p != NULL && i < TEST_MAX_OWNED; i++) {
		if (test_owned[i] == p) {
			free(p);
			test_owned[i] = NULL;
			return;
		}
	}
}

void test_release_all(void)
{
	for (size_t i = 0; i < TEST_MAX_CONNS; i++)
		if (test_conns[i].live)
			raw_conn_close(&test_conns[i]);
	for (size_t i = 0; i < TEST_MAX_OWNED; i++) {
		free(test_owned[i]);
		test_owned[i] = NULL;
	}
}

void *random_buf(size_t n)
{
	void *p = test_alloc(n);
	int r = fill_random(p, n);

	cr_assert_eq(r, 0, "getrandom: %s", strerror(-r));
	return p;
}

char *proc_text(pid_t pid, const char *name)
{
	char path[64], *text = NULL, *out;
	size_t cap = 0;
	ssize_t len;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	f = fopen(path, "re");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	len = getdelim(&text, &cap, '\0', f);
	fclose(f);
	cr_assert_gt(len, 0, "%s: empty or unreadable", path);
	out = test_alloc((size_t)len + 1);
	memcpy(out, text, (size_t)len);
	out[len] = '\0';
	free(text);
	return out;
}

void write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(write_full(fd, p, n), 0, "write %s", path);
	cr_assert_eq(close(fd), 0);
}

bool file_is(const char *path, const void *p, size_t n)
{
	unsigned char *got = test_alloc(n + 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool same;

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	/* One byte more than expected detects a longer file. */
	same = read_full(fd, got, n + 1) == (ssize_t)n && memcmp(got, p, n) == 0;
	close(fd);
	test_free(got);
	return same;
}

void path_join(char *out, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);

	cr_assert(n > 0 && (size_t)n < cap, "path too long: %s/%s", dir, name);
}

bool path_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

void scratch_create(char *dir, size_t cap, const char *tag)
{
	cr_assert_eq(dir[0], '\0', "scratch dir created twice");
	cr_assert_lt((size_t)snprintf(dir, cap, "/tmp/%s.XXXXXX", tag), cap);
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

void scratch_remove(char *dir)
{
	if (dir[0] != '\0')
		harness_rm_rf(dir);
	dir[0] = '\0';
}

void expect_line(int fd, const char *prefix, char *line, size_t cap)
{
	ssize_t n = proto_recv_line(fd, line, cap);

	cr_assert_geq(n, 0, "no line (%s), wanted %s", strerror((int)-n), prefix);
	cr_assert(strncmp(line, prefix, strlen(prefix)) == 0,
		  "got \"%s\", wanted \"%s...\"", line, prefix);
}

static void test_check_greeting(const char *line, char *greeting, size_t cap)
{
	cr_assert(greeting_is_v2(line), "greeting: %s", line);
	if (greeting != NULL)
		cr_assert_lt((size_t)snprintf(greeting, cap, "%s", line), cap,
			     "greeting too long: %s", line);
}

static void test_check_hello_ok(const char *line)
{
	cr_assert(harness_hello_ok(line), "answer to the hello: %s", line);
}

int raw_open(struct daemon *d, char *greeting, size_t cap)
{
	char line[PROTO_MAX_LINE];
	int fd = daemon_connect(d);
	ssize_t n;

	cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
	cr_assert_eq(proto_send_line(fd, HARNESS_HELLO), 0, "sending the hello");
	n = proto_recv_line(fd, line, sizeof(line));
	cr_assert_geq(n, 0, "greeting: %s", strerror((int)-n));
	test_check_greeting(line, greeting, cap);
	n = proto_recv_line(fd, line, sizeof(line));
	cr_assert_geq(n, 0, "answer to the hello: %s", strerror((int)-n));
	test_check_hello_ok(line);
	return fd;
}

void raw_recv(int fd, char *out, size_t cap)
{
	ssize_t n = proto_recv_line(fd, out, cap);

	cr_assert_geq(n, 0, "reading an answer: %s", strerror((int)-n));
}

/* Formats one request line, failing the test when it exceeds the limit. */
static void test_format_request(char *req, size_t cap, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void test_format_request(char *req, size_t cap, const char *fmt, va_list ap)
{
	int n = vsnprintf(req, cap, fmt, ap);

	cr_assert(n > 0 && (size_t)n < cap);
}

void raw_cmd(int fd, char *out, size_t cap, const char *fmt, ...)
{
	char req[PROTO_MAX_LINE];
	va_list ap;

	va_start(ap, fmt);
	test_format_request(req, sizeof(req), fmt, ap);
	va_end(ap);
	cr_assert_eq(proto_send_line(fd, "%s", req), 0, "send %s", req);
	raw_recv(fd, out, cap);
}

void raw_send_data(int fd, const void *p, size_t n, size_t chunk)
{
	static char frame[32 + 1024 * 1024];
	const unsigned char *b = p;

	if (chunk == 0 || chunk > PROTO_MAX_CHUNK)
		chunk = PROTO_MAX_CHUNK;
	while (n > 0) {
		size_t len = n < chunk ? n : chunk;
		int hl = snprintf(frame, 32, "DATA %zu\n", len);

		/* Header and bytes in one write where they fit: no frame
		 * header waits alone for a delayed ACK. */
		if (len <= sizeof(frame) - (size_t)hl) {
			memcpy(frame + hl, b, len);
			cr_assert_eq(write_full(fd, frame, (size_t)hl + len), 0,
				     "sending a DATA frame");
		} else {
			cr_assert_eq(write_full(fd, frame, (size_t)hl), 0);
			cr_assert_eq(write_full(fd, b, len), 0, "sending DATA bytes");
		}
		b += len;
		n -= len;
	}
}

void raw_send_body(int fd, const void *p, size_t n, size_t chunk,
		   const char *end_tokens)
{
	raw_send_data(fd, p, n, chunk);
	if (end_tokens != NULL && end_tokens[0] != '\0')
		cr_assert_eq(proto_send_line(fd, "END %s", end_tokens), 0);
	else
		cr_assert_eq(proto_send_line(fd, "END"), 0);
}

void raw_put_end(int fd, const char *remote, const void *p, size_t n,
		 const char *opts, const char *end_tokens, char *final, size_t cap)
{
	char req[PROTO_MAX_LINE];
	int len = snprintf(req, sizeof(req), "PUT %s size=%zu%s%s", remote, n,
			   opts ? " " : "", opts ? opts : "");

	cr_assert(len > 0 && (size_t)len < sizeof(req));
	cr_assert_eq(proto_send_line(fd, "%s", req), 0, "send %s", req);
	raw_send_body(fd, p, n, 0, end_tokens);
	raw_recv(fd, final, cap);
}

void raw_put_buf(int fd, const char *remote, const void *p, size_t n,
		 const char *opts, char *final, size_t cap)
{
	raw_put_end(fd, remote, p, n, opts, NULL, final, cap);
}

/* ---- Digests ---- */

static void harness_hex(const unsigned char *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 0xf];
	}
	out[2 * n] = '\0';
}

void hasher_init(struct hasher *h, bool with_sha256)
{
	h->xxh = XXH3_createState();
	h->sha = with_sha256 ? EVP_MD_CTX_new() : NULL;
	cr_assert(h->xxh != NULL && (h->sha != NULL || !with_sha256), "out of memory");
	cr_assert_eq(XXH3_128bits_reset(h->xxh), XXH_OK);
	if (h->sha != NULL)
		cr_assert_eq(EVP_DigestInit_ex(h->sha, EVP_sha256(), NULL), 1);
}

void hasher_update(struct hasher *h, const void *p, size_t n)
{
	cr_assert_eq(XXH3_128bits_update(h->xxh, p, n), XXH_OK);
	if (h->sha != NULL)
		cr_assert_eq(EVP_DigestUpdate(h->sha, p, n), 1);
}

void hasher_final(struct hasher *h, char *xxh, char *sha)
{
	XXH128_canonical_t canon;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(h->xxh));
	strcpy(xxh, "xxh3-128:");
	harness_hex(canon.digest, sizeof(canon.digest), xxh + strlen(xxh));
	XXH3_freeState(h->xxh);
	h->xxh = NULL;
	if (sha != NULL)
		sha[0] = '\0';
	if (h->sha == NULL)
		return;
	cr_assert_eq(EVP_DigestFinal_ex(h->sha, md, &mdlen), 1);
	cr_assert_eq(mdlen, 32u);
	if (sha != NULL) {
		strcpy(sha, "sha256:");
		harness_hex(md, mdlen, sha + strlen(sha));
	}
	EVP_MD_CTX_free(h->sha);
	h->sha = NULL;
}

void digest_buf(const void *p, size_t n, char *xxh, char *sha)
{
	struct hasher h;

	hasher_init(&h, sha != NULL);
	hasher_update(&h, p, n);
	hasher_final(&h, xxh, sha);
}

void digest_file(const char *path, char *xxh, char *sha)
{
	static char chunk[1024 * 1024];
	struct hasher h;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	hasher_init(&h, sha != NULL);
	while ((n = read_full(fd, chunk, sizeof(chunk))) > 0)
		hasher_update(&h, chunk, (size_t)n);
	cr_assert_geq(n, 0, "read %s: %s", path, strerror((int)-n));
	close(fd);
	hasher_final(&h, xxh, sha);
}

/* ---- Connections with bodies ---- */

struct raw_conn *raw_conn_open(struct daemon *d, int io_timeout_ms,
			       char *greeting, size_t cap)
{
	char line[PROTO_MAX_LINE];
	struct raw_conn *c = NULL;
	int fd;

	for (size_t i = 0; i < TEST_MAX_CONNS && c == NULL; i++)
		if (!test_conns[i].live)
			c = &test_conns[i];
	cr_assert_not_null(c, "more than %d connections", TEST_MAX_CONNS);

	fd = daemon_connect(d);
	cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
	if (socket_set_timeouts(fd, (uint64_t)io_timeout_ms) < 0) {
		close(fd);
		cr_assert_fail("setting the socket timeouts failed");
	}
	conn_init_plain(&c->conn, fd);
	if (linebuf_init(&c->lb, &c->conn, PROTO_MAX_LINE) < 0) {
		conn_close(&c->conn);
		cr_assert_fail("setting up the connection failed");
	}
	c->live = true;
	cr_assert_eq(proto_send_line(fd, HARNESS_HELLO), 0, "sending the hello");
	raw_conn_line(c, line, sizeof(line));
	test_check_greeting(line, greeting, cap);
	raw_conn_line(c, line, sizeof(line));
	test_check_hello_ok(line);
	return c;
}

void raw_conn_close(struct raw_conn *c)
{
	linebuf_finish(&c->lb);
	conn_close(&c->conn);
	c->live = false;
}

int raw_conn_fd(const struct raw_conn *c)
{
	return c->conn.fd;
}

void raw_conn_line(struct raw_conn *c, char *out, size_t cap)
{
	char *line;
	size_t len;
	int r = linebuf_read_line(&c->lb, &line, &len);

	cr_assert_eq(r, 1, "reading a line: %d (%s)", r, r < 0 ? strerror(-r) : "EOF");
	cr_assert_lt(len, cap);
	memcpy(out, line, len + 1);
}

void raw_conn_cmd(struct raw_conn *c, char *status, size_t cap, const char *fmt, ...)
{
	char req[PROTO_MAX_LINE];
	va_list ap;

	va_start(ap, fmt);
	test_format_request(req, sizeof(req), fmt, ap);
	va_end(ap);
	cr_assert_eq(proto_send_line(c->conn.fd, "%s", req), 0, "send %s", req);
	raw_conn_line(c, status, cap);
}

void raw_conn_read(struct raw_conn *c, void *p, size_t n)
{
	unsigned char *b = p;
	size_t done = 0;

	while (done < n) {
		ssize_t r = linebuf_read(&c->lb, b + done, n - done);

		cr_assert_gt(r, 0, "stream ended after %zu of %zu bytes: %zd", done, n, r);
		done += (size_t)r;
	}
}

/* Parses "DATA <n>" strictly (decimal, 1..PROTO_MAX_CHUNK). */
static bool harness_data_len(const char *line, uint64_t *n)
{
	if (strncmp(line, "DATA ", 5) != 0 || line[5] == '\0' ||
	    strspn(line + 5, "0123456789") != strlen(line + 5))
		return false;
	return parse_u64(line + 5, n) == 0 && *n >= 1 && *n <= PROTO_MAX_CHUNK;
}

/* Where a body comes from: a raw_conn's buffer, or a plain fd whose lines
 * proto_recv_line reads byte by byte (so nothing is read ahead). */
struct body_src {
	struct raw_conn *c;
	int fd;
};

static void body_src_line(const struct body_src *src, char *out, size_t cap)
{
	if (src->c != NULL)
		raw_conn_line(src->c, out, cap);
	else
		raw_recv(src->fd, out, cap);
}

static void body_src_read(const struct body_src *src, void *p, size_t n)
{
	ssize_t got;

	if (src->c != NULL) {
		raw_conn_read(src->c, p, n);
		return;
	}
	got = read_full(src->fd, p, n);
	cr_assert_eq(got, (ssize_t)n, "stream ended inside a DATA frame: %zd of %zu",
		     got, n);
}

static void body_read(const struct body_src *src, int out_fd, void *buf,
		      size_t cap, struct body_info *bi)
{
	static unsigned char chunk[1024 * 1024];
	char line[PROTO_MAX_LINE];
	char xxh[DIGEST_TEXT_LEN], sha[DIGEST_TEXT_LEN];
	struct hasher h;
	bool want_sha = false;

	memset(bi, 0, sizeof(*bi));
	/* END names the algorithm only after the bytes: hash both ways while
	 * they pass. */
	hasher_init(&h, true);
	for (;;) {
		uint64_t n;

		body_src_line(src, line, sizeof(line));
		if (!harness_data_len(line, &n))
			break;
		bi->frames++;
		while (n > 0) {
			/* The very first byte alone, so its arrival is timed. */
			size_t want = bi->len == 0 ? 1 : n < sizeof(chunk) ? (size_t)n
									   : sizeof(chunk);

			body_src_read(src, chunk, want);
			if (bi->len == 0)
				bi->first_byte_ms = harness_now_ms();
			hasher_update(&h, chunk, want);
			if (out_fd >= 0)
				cr_assert_eq(write_full(out_fd, chunk, want), 0,
					     "writing the body out");
			if (buf != NULL) {
				cr_assert_leq(bi->len + want, cap, "body longer than %zu", cap);
				memcpy((unsigned char *)buf + bi->len, chunk, want);
			}
			bi->len += want;
			n -= want;
		}
	}
	hasher_final(&h, xxh, sha);
	snprintf(bi->last, sizeof(bi->last), "%s", line);
	if (strcmp(line, "ABORT") == 0 || strncmp(line, "ABORT ", 6) == 0) {
		bi->aborted = true;
		return;
	}
	cr_assert(strcmp(line, "END") == 0 || strncmp(line, "END ", 4) == 0,
		  "framing error in a body: \"%s\"", line);
	if (reply_token(line, "digest", bi->digest, sizeof(bi->digest)))
		want_sha = strncasecmp(bi->digest, "sha256:", 7) == 0;
	snprintf(bi->computed, sizeof(bi->computed), "%s", want_sha ? sha : xxh);
}

void raw_conn_read_body(struct raw_conn *c, int out_fd, void *buf, size_t cap,
			struct body_info *bi)
{
	struct body_src src = { .c = c, .fd = -1 };

	body_read(&src, out_fd, buf, cap, bi);
}

void raw_recv_body(int fd, void *buf, size_t cap, struct body_info *bi)
{
	struct body_src src = { .c = NULL, .fd = fd };

	body_read(&src, -1, buf, cap, bi);
}

void body_check(const struct body_info *bi, uint64_t n)
{
	cr_assert_not(bi->aborted, "body aborted after %" PRIu64 " bytes: %s",
		      bi->len, bi->last);
	cr_assert_eq(bi->len, n, "body of %" PRIu64 " bytes, wanted %" PRIu64, bi->len, n);
	cr_assert_neq(bi->digest[0], '\0', "END without digest=: %s", bi->last);
	cr_assert(strcasecmp(bi->digest, bi->computed) == 0,
		  "END says %s, the bytes are %s", bi->digest, bi->computed);
}

unsigned char *raw_conn_body(struct raw_conn *c, uint64_t n)
{
	unsigned char *p = test_alloc((size_t)n);
	struct body_info bi;

	raw_conn_read_body(c, -1, p, (size_t)n, &bi);
	body_check(&bi, n);
	return p;
}

void raw_conn_body_to_file(struct raw_conn *c, uint64_t n, const char *path)
{
	struct body_info bi;
	int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	cr_assert_geq(out, 0, "open %s: %s", path, strerror(errno));
	raw_conn_read_body(c, out, NULL, 0, &bi);
	cr_assert_eq(close(out), 0);
	body_check(&bi, n);
}
