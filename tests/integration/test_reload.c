/* Integration: SIGHUP reload of tcpfiled (worker generations, bad configs, open connections, shares, listen). */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "netio.h"

static struct daemon d;
static pid_t client = -1;

static void reload_fini(void)
{
	if (client > 0) {
		kill(client, SIGKILL);
		waitpid(client, NULL, 0);
		client = -1;
	}
	daemon_stop(&d);
}

TestSuite(reload, .fini = reload_fini, .timeout = 120);

/* Rewrites the config, sends SIGHUP and waits for RELOADING=1 then the
 * READY=1 that follows it; the READY datagram lands in ready. */
static void reload(const struct daemon_opts *opts, char *ready, size_t cap)
{
	char msg[1024];

	cr_assert_eq(daemon_write_config(&d, opts), 0);
	cr_assert_eq(kill(d.pid, SIGHUP), 0);
	cr_assert_eq(daemon_wait_notify(&d, "RELOADING=1", HARNESS_TIMEOUT_MS, msg,
					sizeof(msg)), 0, "RELOADING=1 after SIGHUP");
	cr_assert_eq(daemon_wait_notify(&d, "READY=1", HARNESS_TIMEOUT_MS,
					ready ? ready : msg, ready ? cap : sizeof(msg)),
		     0, "READY=1 after the reload");
}

struct generation {
	pid_t master;
	const pid_t *old;
	size_t n_old;
	size_t want;
	size_t n;
};

/* want children, none of them from the old generation. */
static bool generation_replaced(void *arg)
{
	struct generation *g = arg;
	pid_t now[HARNESS_MAX_WORKERS];

	g->n = proc_children(g->master, now, HARNESS_MAX_WORKERS);
	if (g->n != g->want)
		return false;
	for (size_t i = 0; i < g->n; i++)
		if (pid_in(now[i], g->old, g->n_old))
			return false;
	return true;
}

static bool pid_gone(void *arg)
{
	return !proc_is_alive(*(pid_t *)arg);
}

/* ---- A client hammering the daemon through a reload ---- */

struct hammer_result {
	long attempts;
	long ok_before;
	long ok_after;      /* successes after the parent said "reloaded" */
	long failures;
	int first_error;    /* errno of the first failure */
};

/* Hello, greeting, QUIT, "OK bye": 0 or -errno. */
static int hammer_once(void)
{
	char line[256];
	int r, fd = daemon_connect_hello(&d);

	if (fd < 0)
		return fd;
	r = proto_send_line(fd, "QUIT");
	if (r == 0) {
		ssize_t n = proto_recv_line(fd, line, sizeof(line));

		r = n < 0 ? (int)n : strcmp(line, "OK bye") == 0 ? 0 : -EPROTO;
	}
	close(fd);
	return r;
}

/* Child: connects in a tight loop.  Writes 'p' to out after 10 successes;
 * after reading 'r' on in, makes 20 more attempts and writes the result. */
static void hammer_run(int in, int out)
{
	struct hammer_result res = { 0 };
	bool reloaded = false;
	long after = 0;
	int64_t deadline = harness_now_ms() + 60000;

	while (harness_now_ms() < deadline && (!reloaded || after < 20)) {
		struct pollfd pfd = { .fd = in, .events = POLLIN };
		int r;

		if (!reloaded && poll(&pfd, 1, 0) == 1) {
			char c;

			if (read_full(in, &c, 1) == 1 && c == 'r')
				reloaded = true;
		}
		res.attempts++;
		r = hammer_once();
		if (r < 0) {
			if (res.failures++ == 0)
				res.first_error = -r;
			continue;
		}
		if (reloaded) {
			res.ok_after++;
			after++;
		} else if (++res.ok_before == 10) {
			if (write_full(out, "p", 1) < 0)
				_exit(2);
		}
	}
	_exit(write_full(out, &res, sizeof(res)) == 0 ? 0 : 1);
}

static bool readable(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, timeout_ms) == 1;
}

Test(reload, sighup_grows_workers_without_refusing_connections)
{
	struct generation g = { 0 };
	static const unsigned steps[] = { 4, 3, 5, 2, 4, 4 };
	struct hammer_result res;
	pid_t old[4];
	int to_child[2], from_child[2], status;
	char c;

	start_daemon(&d, &(struct daemon_opts){ .workers = 2 });
	cr_assert_eq(daemon_wait_workers(&d, 2, old, 4, HARNESS_TIMEOUT_MS), 0);
	cr_assert_eq(pipe2(to_child, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(from_child, O_CLOEXEC), 0);
	client = fork();
	cr_assert_geq(client, 0);
	if (client == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		hammer_run(to_child[0], from_child[1]);
	}
	close(to_child[0]);
	close(from_child[1]);

	cr_assert(readable(from_child[0], HARNESS_TIMEOUT_MS), "client got going");
	cr_assert_eq(read_full(from_child[0], &c, 1), 1);
	cr_assert_eq(c, 'p');

	/* 2 -> 4 as the test is named, then a few more back and forth so that
	 * many connections overlap a generation change. */
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		reload(&(struct daemon_opts){ .workers = steps[i] }, NULL, 0);
	g = (struct generation){ .master = d.pid, .old = old, .n_old = 2, .want = 4 };
	cr_assert(wait_until(generation_replaced, &g, HARNESS_TIMEOUT_MS),
		  "4 new-generation workers, old ones gone (%zu children)", g.n);
	cr_assert_eq(write_full(to_child[1], "r", 1), 0);

	cr_assert(readable(from_child[0], 30000), "client finished");
	cr_assert_eq(read_full(from_child[0], &res, sizeof(res)), (ssize_t)sizeof(res));
	cr_assert_eq(waitpid(client, &status, 0), client);
	client = -1;
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_log_info("%ld connections through the reload, %ld after it",
		    res.attempts, res.ok_after);
	cr_assert_eq(res.failures, 0, "%ld of %ld connections failed (first: %s)",
		     res.failures, res.attempts, strerror(res.first_error));
	cr_assert_geq(res.ok_after, 1, "served after the reload");
	cr_assert(daemon_log_contains(&d, "generation 7"));
	close(to_child[1]);
	close(from_child[0]);
}

/* Line number (1-based) of the first line of path containing needle. */
static int line_of(const char *path, const char *needle)
{
	char line[1024];
	FILE *f = fopen(path, "re");
	int n = 0, found = -1;

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		n++;
		if (strstr(line, needle) != NULL) {
			found = n;
			break;
		}
	}
	fclose(f);
	return found;
}

Test(reload, invalid_config_keeps_the_old_one)
{
	pid_t before[4], after[4];
	char where[PATH_MAX + 16], line[512];
	char *hist;
	int fd, lineno;

	start_daemon(&d, &(struct daemon_opts){ .workers = 2 });
	cr_assert_eq(daemon_wait_workers(&d, 2, before, 4, HARNESS_TIMEOUT_MS), 0);
	reload(&(struct daemon_opts){ .workers = 5,
				      .server_extra = "no_such_key = 1" }, NULL, 0);
	lineno = line_of(d.conf_path, "no_such_key");
	cr_assert_gt(lineno, 0);
	snprintf(where, sizeof(where), "%s:%d", d.conf_path, lineno);
	cr_assert(daemon_log_contains(&d, where), "log names %s", where);
	hist = daemon_notify_history(&d);
	cr_assert_not_null(hist);
	{
		/* A STATUS= line that carries the failure (it stays there until
		 * the next successful reload). */
		const char *st = strstr(hist, "STATUS=");
		bool said = false;

		for (; st && !said; st = strstr(st + 1, "STATUS="))
			said = strncmp(st, "STATUS=", 7) == 0 &&
			       strstr(st, "reload failed: ") != NULL &&
			       strstr(st, "reload failed: ") < st + strcspn(st, "\n");
		cr_assert(said, "notify: %s", hist);
	}
	free(hist);

	cr_assert_eq(daemon_wait_workers(&d, 2, after, 4, HARNESS_TIMEOUT_MS), 0);
	cr_assert(pid_in(after[0], before, 2) && pid_in(after[1], before, 2),
		  "the old workers keep running");
	fd = daemon_connect_hello(&d);
	cr_assert_geq(fd, 0, "still serving: %s", strerror(-fd));
	cr_assert_eq(proto_send_line(fd, "STAT files"), 0);
	expect_line(fd, "OK type=d ", line, sizeof(line));
	close(fd);
}

static bool log_has(void *needle)
{
	return daemon_log_contains(&d, needle);
}

static bool three_children(void *arg)
{
	pid_t pids[8];

	return proc_children(d.pid, pids, 8) == 3;
}

Test(reload, open_connection_survives_reload)
{
	static char body[100000], back[100000];
	char line[512], want[128], hex[33], size[64];
	struct body_info bi;
	pid_t old;
	int fd;

	start_daemon(&d, &(struct daemon_opts){ .workers = 1 });
	cr_assert_eq(daemon_wait_workers(&d, 1, &old, 1, HARNESS_TIMEOUT_MS), 0);
	fd = daemon_connect_hello(&d);
	cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));

	reload(&(struct daemon_opts){ .workers = 2 }, NULL, 0);
	cr_assert(wait_until(three_children, NULL, HARNESS_TIMEOUT_MS),
		  "2 new workers beside the busy old one");
	cr_assert(proc_is_alive(old), "the busy old worker keeps our connection");

	cr_assert_eq(getrandom(body, sizeof(body), 0), (ssize_t)sizeof(body));
	xxh128_hex(body, sizeof(body), hex);
	snprintf(want, sizeof(want), "OK size=%zu digest=xxh3-128:%s", sizeof(body), hex);
	raw_put_buf(fd, "files/across.bin", body, sizeof(body), NULL, line, sizeof(line));
	cr_assert_str_eq(line, want);
	cr_assert_eq(proto_send_line(fd, "GET files/across.bin"), 0);
	expect_line(fd, "OK ", line, sizeof(line));
	snprintf(want, sizeof(want), "%zu", sizeof(body));
	cr_assert(reply_token(line, "size", size, sizeof(size)) && strcmp(size, want) == 0,
		  "GET answer: %s", line);
	raw_recv_body(fd, back, sizeof(back), &bi);
	body_check(&bi, sizeof(body));
	cr_assert_eq(memcmp(body, back, sizeof(body)), 0);
	snprintf(want, sizeof(want), "xxh3-128:%s", hex);
	cr_assert_str_eq(bi.digest, want);
	cr_assert(proc_is_alive(old));

	cr_assert_eq(proto_send_line(fd, "QUIT"), 0);
	expect_line(fd, "OK bye", line, sizeof(line));
	cr_assert_eq(proto_recv_line(fd, line, sizeof(line)), -ENODATA);
	close(fd);
	cr_assert(wait_until(pid_gone, &old, 2000), "old worker exits after QUIT");
	snprintf(want, sizeof(want), "worker %d exited with status 0", (int)old);
	cr_assert(wait_until(log_has, want, 2000), "log: %s", want);
}

/* STAT SHARE over a fresh connection; returns the status line. */
static void stat_share(const char *share, char *line, size_t cap)
{
	int fd = daemon_connect_hello(&d);

	cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
	cr_assert_eq(proto_send_line(fd, "STAT %s", share), 0);
	cr_assert_gt(proto_recv_line(fd, line, cap), 0);
	close(fd);
}

/* Reloads and waits until no worker of the previous generation is left,
 * so the next connection is served with the new configuration. */
static void reload_and_settle(const struct daemon_opts *opts, size_t workers)
{
	pid_t old[HARNESS_MAX_WORKERS];
	struct generation g;
	size_t n = proc_children(d.pid, old, HARNESS_MAX_WORKERS);

	reload(opts, NULL, 0);
	g = (struct generation){ .master = d.pid, .old = old, .n_old = n,
				 .want = workers };
	cr_assert(wait_until(generation_replaced, &g, HARNESS_TIMEOUT_MS),
		  "new generation only (%zu children)", g.n);
}

Test(reload, shares_added_and_removed)
{
	char extra_dir[PATH_MAX], extra[PATH_MAX + 64], line[512];
	struct daemon_opts with, without = { .workers = 2 };

	start_daemon(&d, &without);
	snprintf(extra_dir, sizeof(extra_dir), "%s/extra", d.dir);
	cr_assert_eq(mkdir(extra_dir, 0755), 0);
	snprintf(extra, sizeof(extra), "[extra]\npath = %s\nanonymous = write\n", extra_dir);
	with = (struct daemon_opts){ .workers = 2, .shares_extra = extra };

	stat_share("extra", line, sizeof(line));
	cr_assert(strncmp(line, "ERR 550", 7) == 0, "before: %s", line);

	reload_and_settle(&with, 2);
	stat_share("extra", line, sizeof(line));
	cr_assert(strncmp(line, "OK type=d ", 10) == 0, "added share: %s", line);

	reload_and_settle(&without, 2);
	stat_share("extra", line, sizeof(line));
	cr_assert(strncmp(line, "ERR 550", 7) == 0, "removed share: %s", line);
	stat_share("files", line, sizeof(line));
	cr_assert(strncmp(line, "OK type=d ", 10) == 0, "kept share: %s", line);
}

Test(reload, changed_listen_needs_a_restart)
{
	char listen[64];
	uint16_t other;
	int fd;

	start_daemon(&d, &(struct daemon_opts){ .workers = 2, .self_bind = true });
	cr_assert_eq(harness_free_port(&other), 0);
	snprintf(listen, sizeof(listen), "listen = 127.0.0.1:%u", (unsigned)other);
	reload_and_settle(&(struct daemon_opts){ .workers = 2, .server_extra = listen }, 2);
	cr_assert(daemon_log_contains(&d, "needs a restart"));

	fd = daemon_connect_hello(&d);
	cr_assert_geq(fd, 0, "the old address still serves: %s", strerror(-fd));
	close(fd);
	{
		uint16_t port = d.port;

		d.port = other;
		fd = daemon_connect(&d);
		d.port = port;
	}
	cr_assert_eq(fd, -ECONNREFUSED, "the new address is not bound before a restart");
}
