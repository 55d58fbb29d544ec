/* Integration: the worker pool: faults versus crash loops, dynamic size, busy answer, recycling, hung workers and tcpfiled status. */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "netio.h"

static struct daemon d;

static void pool_fini(void)
{
	daemon_stop(&d);
	test_release_all();
}

TestSuite(pool, .fini = pool_fini, .timeout = 180);

static void expect_exit_status(int status, int code)
{
	cr_assert(status >= 0 && WIFEXITED(status),
		  "master did not exit normally (wait status %d)", status);
	cr_assert_eq(WEXITSTATUS(status), code, "master exit status %d, want %d",
		     WEXITSTATUS(status), code);
}

/* Sockets pid holds: an idle worker only the listener, a busy one its
 * client's connection too (both wait in ppoll, so the syscall cannot tell
 * them apart). */
static long socket_fds(pid_t pid)
{
	char path[64], target[64];
	long n = 0;

	for (int fd = 0; fd < 256; fd++) {
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
		len = readlink(path, target, sizeof(target) - 1);
		if (len < 0)
			continue;
		target[len] = '\0';
		if (strncmp(target, "socket:", 7) == 0)
			n++;
	}
	return n;
}

/* Live children of the master that serve a connection. */
static size_t busy_workers(pid_t *out, size_t cap)
{
	pid_t kids[HARNESS_MAX_WORKERS];
	size_t n = proc_children(d.pid, kids, HARNESS_MAX_WORKERS), k = 0;

	for (size_t i = 0; i < n && k < cap; i++)
		if (socket_fds(kids[i]) >= 2)
			out[k++] = kids[i];
	return k;
}

struct busy_wait {
	pid_t *out;
	size_t want;
};

static bool busy_cond(void *arg)
{
	struct busy_wait *w = arg;

	return busy_workers(w->out, w->want) == w->want;
}

/* Waits until want workers hold a connection (the one a client sees
 * greeted is accepted, but its descriptor may just be on its way). */
static void wait_busy(pid_t *out, size_t want)
{
	struct busy_wait w = { out, want };

	cr_assert(wait_until(busy_cond, &w, HARNESS_TIMEOUT_MS), "no %zu busy workers", want);
}

/* ---- faults are not a crash loop ---------------------------------------- */

#define CLIENTS 4
#define KILL_RUN_MS 15000

/* One client process: uploads in a loop until the deadline, then reports
 * "ok failed" on fd. */
static _Noreturn void upload_loop(int fd, int id, int64_t until)
{
	char src[PATH_MAX], remote[64], out[4096], line[64];
	unsigned ok = 0, failed = 0;
	int n;

	snprintf(src, sizeof(src), "%s/src%d", d.dir, id);
	if (make_random_file(src, 64 * 1024) < 0)
		_exit(1);
	for (unsigned i = 0; harness_now_ms() < until; i++) {
		snprintf(remote, sizeof(remote), "files/c%d-%u", id, i % 8);
		if (tcpfile_run(&d, out, sizeof(out), "put", src, remote, NULL) == 0)
			ok++;
		else
			failed++;
	}
	n = snprintf(line, sizeof(line), "%u %u\n", ok, failed);
	_exit(write_full(fd, line, (size_t)n) == 0 ? 0 : 1);
}

Test(pool, killing_busy_workers_never_stops_the_daemon)
{
	pid_t clients[CLIENTS], victims[HARNESS_MAX_WORKERS], workers[8];
	unsigned ok = 0, failed = 0, kills = 0;
	int pipes[CLIENTS][2];
	int64_t until;

	/* crash_loop_timeout far below the run: the old rule gave up here. */
	start_daemon(&d, &(struct daemon_opts){ .workers = 4,
		.server_extra = "crash_loop_timeout = 2s" });
	until = harness_now_ms() + KILL_RUN_MS;
	for (int i = 0; i < CLIENTS; i++) {
		cr_assert_eq(pipe2(pipes[i], O_CLOEXEC), 0);
		clients[i] = fork();
		cr_assert_geq(clients[i], 0);
		if (clients[i] == 0)
			upload_loop(pipes[i][1], i, until);
		close(pipes[i][1]);
	}
	while (harness_now_ms() < until) {
		size_t n = busy_workers(victims, HARNESS_MAX_WORKERS);

		if (n > 0 && kill(victims[(unsigned)rand() % n], SIGKILL) == 0)
			kills++;
		cr_assert(proc_is_alive(d.pid), "the master gave up after %u kills", kills);
		/* The pacing of the fault injection, not synchronisation. */
		usleep(100 * 1000);
	}
	for (int i = 0; i < CLIENTS; i++) {
		char line[64] = "";
		unsigned a = 0, b = 0;
		int status;

		cr_assert_gt(read(pipes[i][0], line, sizeof(line) - 1), 0);
		close(pipes[i][0]);
		cr_assert_eq(sscanf(line, "%u %u", &a, &b), 2, "client %d: %s", i, line);
		cr_assert_eq(waitpid(clients[i], &status, 0), clients[i]);
		ok += a;
		failed += b;
	}
	cr_log_info("%u kills: %u uploads succeeded, %u failed", kills, ok, failed);
	cr_assert_geq(kills, 20, "too few kills (%u) to test anything", kills);
	cr_assert(proc_is_alive(d.pid), "the master gave up");
	cr_assert_gt(ok, 2 * failed, "%u succeeded, %u failed", ok, failed);
	cr_assert_eq(daemon_wait_workers(&d, 4, workers, 8, HARNESS_TIMEOUT_MS), 0,
		     "the slots were not refilled");
	cr_assert(daemon_log_contains(&d, "while serving; a fault"));
	cr_assert_not(daemon_log_contains(&d, "crash loop"));
}

static bool log_has_first_accept_note(void *arg)
{
	return daemon_log_contains(&d, "before its first accept");
}

Test(pool, crash_loop_through_the_test_hook_exits_70)
{
	const char *argv[] = { harness_bin("TCPFILED_BIN"), "-c", NULL, NULL };
	const char *env[] = { "TCPFILED_TEST_WORKER_EXIT=1", NULL };
	int64_t start;
	int status;

	cr_assert_not_null(argv[0]);
	cr_assert_eq(daemon_prepare(&d, &(struct daemon_opts){ .workers = 2,
		.server_extra = "crash_loop_timeout = 3s" }), 0);
	argv[2] = d.conf_path;
	start = harness_now_ms();
	cr_assert_eq(daemon_spawn(&d, argv, env), 0);
	cr_assert(wait_until(log_has_first_accept_note, NULL, HARNESS_TIMEOUT_MS));
	status = daemon_wait_exit(&d, 20000);
	expect_exit_status(status, 70);
	cr_assert_geq(harness_now_ms() - start, 3000, "gave up before crash_loop_timeout");
	cr_assert(daemon_log_contains(&d, "crash loop"));
	cr_assert(daemon_notify_seen(&d, "STATUS=crash loop"));
}

/* ---- the dynamic pool and the busy answer --------------------------------- */

static size_t n_children(void)
{
	pid_t kids[HARNESS_MAX_WORKERS];

	return proc_children(d.pid, kids, HARNESS_MAX_WORKERS);
}

/* Connects and reads the first line within timeout_ms. */
static int first_line(char *line, size_t cap, int64_t *elapsed_ms)
{
	int64_t t0 = harness_now_ms();
	int fd = daemon_connect(&d);

	cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
	/* A protocol 2 client speaks first (and only then leaves the
	 * kernel's TCP_DEFER_ACCEPT queue). */
	cr_assert_eq(proto_send_line(fd, "HELLO 2 client=itest/1"), 0);
	cr_assert_gt(proto_recv_line(fd, line, cap), 0, "no first line");
	*elapsed_ms = harness_now_ms() - t0;
	return fd;
}

/* A connection whose worker is busy for good: an upload that stopped
 * after `sent` of its 1000 bytes (the daemon runs with min_rate = 0, so
 * nothing cuts it, and a worker in a body does not yield it to queued
 * clients as one that only waits for a request line does). */
static int hold_worker(int i, size_t sent)
{
	char body[1000];
	int fd = daemon_connect_hello(&d);

	if (fd < 0)
		return fd;
	memset(body, 'h', sizeof(body));
	if (proto_send_line(fd, "PUT files/held%d size=1000", i) < 0 ||
	    proto_send_line(fd, "DATA 1000") < 0 ||
	    (sent && write(fd, body, sent) != (ssize_t)sent)) {
		close(fd);
		return -EIO;
	}
	return fd;
}

Test(pool, grows_to_max_workers_answers_busy_and_shrinks_back)
{
	int held[6];
	pid_t workers[8];
	char line[512];
	int64_t ms;
	int fd;

	start_daemon(&d, &(struct daemon_opts){ .workers = 1,
		.server_extra = "min_spare = 1\nmax_spare = 2\nmax_workers = 6\nmin_rate = 0" });
	cr_assert_eq(daemon_wait_workers(&d, 1, workers, 8, HARNESS_TIMEOUT_MS), 0);
	/* Each connection holds a worker; the pool grows to greet the next. */
	for (int i = 0; i < 6; i++) {
		held[i] = hold_worker(i, 0);
		cr_assert_geq(held[i], 0, "connection %d: %s", i, strerror(-held[i]));
	}
	cr_assert_eq(n_children(), 6, "pool of %zu", n_children());

	fd = first_line(line, sizeof(line), &ms);
	cr_assert(strncmp(line, "ERR 421 ", 8) == 0, "%s", line);
	cr_assert_not_null(strstr(line, "busy: all 6 workers are busy, retry after"), "%s",
			   line);
	cr_assert_lt(ms, 1000, "busy answer after %lld ms", (long long)ms);
	close(fd);
	cr_assert_eq(n_children(), 6, "the pool went past max_workers");

	for (int i = 0; i < 6; i++)
		close(held[i]);
	/* One retirement a second down to max_spare idle workers. */
	cr_assert_eq(daemon_wait_workers(&d, 2, workers, 8, 15000), 0,
		     "the idle pool did not shrink to max_spare (%zu)", n_children());
}

Test(pool, full_fixed_pool_answers_busy_at_once)
{
	char line[512], out[4096], src[PATH_MAX];
	int held[2];
	int64_t ms;
	int fd;

	start_daemon(&d, &(struct daemon_opts){ .workers = 2, .server_extra = "min_rate = 0" });
	for (int i = 0; i < 2; i++) {
		held[i] = hold_worker(i, 0);
		cr_assert_geq(held[i], 0);
	}
	fd = first_line(line, sizeof(line), &ms);
	cr_assert(strncmp(line, "ERR 421 ", 8) == 0, "%s", line);
	cr_assert_lt(ms, 1000, "busy answer after %lld ms", (long long)ms);
	cr_log_info("busy answer after %lld ms", (long long)ms);
	/* Nothing more comes: the master closes without reading. */
	cr_assert_eq(proto_recv_line(fd, line, sizeof(line)), -ENODATA);
	close(fd);

	snprintf(src, sizeof(src), "%s/small", d.dir);
	cr_assert_eq(make_random_file(src, 100), 0);
	cr_assert_eq(tcpfile_run(&d, out, sizeof(out), "put", src, "files/small", NULL), 75,
		     "%s", out);

	/* A freed worker takes the next client; the master no longer answers. */
	close(held[0]);
	cr_assert_eq(tcpfile_run(&d, out, sizeof(out), "put", src, "files/small", NULL), 0,
		     "%s", out);
	close(held[1]);
}

/* ---- recycling and hung workers ------------------------------------------ */

static void quit_once(void)
{
	char line[512];
	int fd = daemon_connect_hello(&d);

	cr_assert_geq(fd, 0);
	cr_assert_eq(proto_send_line(fd, "QUIT"), 0);
	cr_assert_gt(proto_recv_line(fd, line, sizeof(line)), 0);
	close(fd);
}

Test(pool, max_requests_recycles_a_worker)
{
	pid_t first, next;

	start_daemon(&d, &(struct daemon_opts){ .workers = 1,
		.server_extra = "max_requests = 3\nmax_requests_jitter = 0" });
	cr_assert_eq(daemon_wait_workers(&d, 1, &first, 1, HARNESS_TIMEOUT_MS), 0);
	quit_once();
	quit_once();
	cr_assert_eq(daemon_wait_workers(&d, 1, &next, 1, HARNESS_TIMEOUT_MS), 0);
	cr_assert_eq(next, first, "retired before max_requests");
	quit_once();
	cr_assert_eq(daemon_wait_workers(&d, 1, &next, 1, HARNESS_TIMEOUT_MS), 0);
	cr_assert_neq(next, first, "still the same worker after max_requests");
	cr_assert(daemon_log_contains(&d, "exited with status 0"));
	cr_assert_not(daemon_log_contains(&d, "before its first accept"));
}

/* ---- a connection wakes one idle worker, not the pool ------------------- */

/* How often pid has given up the CPU of its own accord: every wake-up from
 * a wait counts one. */
static long voluntary_switches(pid_t pid)
{
	static const char key[] = "\nvoluntary_ctxt_switches:";
	char *text = proc_text(pid, "status"), *p = strstr(text, key);
	long n = p ? strtol(p + strlen(key), NULL, 10) : -1;

	test_free(text);
	cr_assert_geq(n, 0, "no voluntary_ctxt_switches for %d", (int)pid);
	return n;
}

#define HERD_WORKERS 8
#define HERD_CONNECTIONS 3

/* How many of an idle pool of HERD_WORKERS woke while it served
 * HERD_CONNECTIONS connections one after the other. */
static size_t herd_woken(void)
{
	pid_t pids[HERD_WORKERS], again[HERD_WORKERS];
	long before[HERD_WORKERS];
	size_t woken = 0;

	start_daemon(&d, &(struct daemon_opts){ .workers = HERD_WORKERS });
	cr_assert_eq(daemon_wait_workers(&d, HERD_WORKERS, pids, HERD_WORKERS,
					 HARNESS_TIMEOUT_MS), 0);
	for (size_t i = 0; i < HERD_WORKERS; i++)
		before[i] = voluntary_switches(pids[i]);
	for (int c = 0; c < HERD_CONNECTIONS; c++) {
		quit_once();
		cr_assert_eq(daemon_wait_workers(&d, HERD_WORKERS, again, HERD_WORKERS,
						 HARNESS_TIMEOUT_MS), 0);
	}
	/* Woken for nothing, an idle worker would also count a switch: with
	 * every idle worker polling the listener, all of them woke for each
	 * connection. */
	for (size_t i = 0; i < HERD_WORKERS; i++)
		if (voluntary_switches(pids[i]) != before[i])
			woken++;
	return woken;
}

/* Linux 6.0 takes a woken epoll waiter off the queue at once; before it
 * the daemon keeps ppoll() (see src/daemon/idlewait.h). */
static bool kernel_at_least_6(void)
{
	struct utsname u;
	unsigned major = 0;

	cr_assert_eq(uname(&u), 0);
	return sscanf(u.release, "%u.", &major) == 1 && major >= 6;
}

Test(pool, a_connection_wakes_one_idle_worker_not_the_pool)
{
	size_t woken;

	if (!kernel_at_least_6())
		cr_skip_test("kernel before 6.0: the daemon keeps ppoll() there");
	woken = herd_woken();
	cr_expect_leq(woken, HERD_CONNECTIONS, "%zu of %d idle workers woke for %d connections",
		      woken, HERD_WORKERS, HERD_CONNECTIONS);
}

/* The path of older kernels: every idle worker wakes (which the test
 * above tells apart), and every connection is served. */
Test(pool, before_linux_6_every_idle_worker_polls_the_listeners)
{
	size_t woken;

	cr_assert_eq(setenv("TCPFILED_TEST_PPOLL", "1", 1), 0);
	woken = herd_woken();
	cr_expect_eq(woken, HERD_WORKERS, "%zu of %d idle workers woke for %d connections",
		     woken, HERD_WORKERS, HERD_CONNECTIONS);
}

static bool log_has_hung(void *arg)
{
	return daemon_log_contains(&d, "is hung");
}

Test(pool, hung_worker_is_killed_and_replaced)
{
	pid_t victim, fresh;
	int fd;

	start_daemon(&d, &(struct daemon_opts){ .workers = 1,
		.server_extra = "idle_timeout = 1s\nhung_timeout = 2s" });
	fd = daemon_connect_hello(&d);
	cr_assert_geq(fd, 0);
	wait_busy(&victim, 1);
	/* A stopped worker makes no progress and cannot close its client. */
	cr_assert_eq(kill(victim, SIGSTOP), 0);
	cr_assert(wait_until(log_has_hung, NULL, HARNESS_TIMEOUT_MS), "no hung report");
	cr_assert_eq(daemon_wait_workers(&d, 1, &fresh, 1, HARNESS_TIMEOUT_MS), 0);
	cr_assert_neq(fresh, victim);
	close(fd);
}

/* ---- tcpfiled status -------------------------------------------------------- */

static int run_status(char *out, size_t cap, bool json)
{
	const char *argv[] = { harness_bin("TCPFILED_BIN"), "status", "-c", d.conf_path,
			       json ? "--json" : NULL, NULL };

	cr_assert_not_null(argv[0]);
	return harness_run(argv, out, cap);
}

static bool status_shows_upload(void *arg)
{
	char out[65536];

	(void)arg;
	if (run_status(out, sizeof(out), true) != 0)
		return false;
	return strstr(out, "\"op\":\"put\",\"share\":\"files\",\"path\":\"held7\"") &&
	       strstr(out, "\"bytes_done\":300,\"bytes_total\":1000,");
}

Test(pool, status_json_parses_and_lists_the_workers)
{
	const char *py[] = { "/usr/bin/python3", "-m", "json.tool", NULL, NULL };
	char *out = test_alloc(1 << 20), path[PATH_MAX], want[64], pyout[256];
	pid_t workers[2], busy;
	int fd, held;

	start_daemon(&d, &(struct daemon_opts){ .workers = 2, .server_extra = "min_rate = 0" });
	cr_assert_eq(daemon_wait_workers(&d, 2, workers, 2, HARNESS_TIMEOUT_MS), 0);
	held = hold_worker(7, 300);
	cr_assert_geq(held, 0);
	wait_busy(&busy, 1);
	/* The upload in progress shows with its path and byte count. */
	cr_assert(wait_until(status_shows_upload, NULL, HARNESS_TIMEOUT_MS),
		  "tcpfiled status never showed put files/held7 at 300 of 1000 bytes");

	cr_assert_eq(run_status(out, 1 << 20, true), 0, "%s", out);
	path_join(path, sizeof(path), d.dir, "status.json");
	write_file(path, out, strlen(out));
	py[3] = path;
	cr_assert_eq(harness_run(py, pyout, sizeof(pyout)), 0, "invalid JSON: %s\n%s", pyout,
		     out);
	for (int i = 0; i < 2; i++) {
		snprintf(want, sizeof(want), "{\"pid\":%d,", (int)workers[i]);
		cr_assert_not_null(strstr(out, want), "worker %d missing: %s", (int)workers[i],
				   out);
	}
	snprintf(want, sizeof(want), "{\"pid\":%d,\"generation\":1,\"state\":\"busy\"",
		 (int)busy);
	cr_assert_not_null(strstr(out, want), "%s", out);
	cr_assert_not_null(strstr(out, "\"client\":\"127.0.0.1:"), "%s", out);
	snprintf(want, sizeof(want), "\"master_pid\":%d,", (int)d.pid);
	cr_assert_not_null(strstr(out, want), "%s", out);

	cr_assert_eq(run_status(out, 1 << 20, false), 0, "%s", out);
	cr_assert_not_null(strstr(out, "busy"), "%s", out);
	cr_assert_not_null(strstr(out, "127.0.0.1:"), "%s", out);
	close(held);

	/* A stopped daemon removes its board: status says it is not running. */
	fd = daemon_stop(&d);
	cr_assert_geq(fd, 0);
	cr_assert_eq(daemon_prepare(&d, &(struct daemon_opts){ .workers = 1 }), 0);
	cr_assert_eq(run_status(out, 1 << 20, false), 3, "%s", out);
	cr_assert_not_null(strstr(out, "not running"), "%s", out);
}
