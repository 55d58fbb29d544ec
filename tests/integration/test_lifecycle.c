/* Integration: process model, respawn, graceful shutdown, crash loop and command line of tcpfiled. */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#define BIG_SIZE (8u * 1024 * 1024)

/* One daemon per test; .fini stops it even after a failed assertion. */
static struct daemon d;
static pid_t sibling = -1;

static void lifecycle_fini(void)
{
	daemon_stop(&d);
	if (sibling > 0) {
		kill(sibling, SIGKILL);
		waitpid(sibling, NULL, 0);
		sibling = -1;
	}
}

TestSuite(lifecycle, .fini = lifecycle_fini, .timeout = 120);

static bool log_has_kill9(void *arg)
{
	return daemon_log_contains(&d, "killed by signal 9");
}

static void expect_exit_status(int status, int code)
{
	cr_assert(status >= 0 && WIFEXITED(status),
		  "master did not exit normally (wait status %d)", status);
	cr_assert_eq(WEXITSTATUS(status), code, "master exit status %d, want %d",
		     WEXITSTATUS(status), code);
}

Test(lifecycle, workers_wait_for_connections)
{
	pid_t pids[8];
	char *hist;

	start_daemon(&d, &(struct daemon_opts){ .workers = 3 });
	cr_assert_eq(daemon_wait_workers(&d, 3, pids, 8, HARNESS_TIMEOUT_MS), 0,
		     "3 workers blocked waiting for a connection");
	for (size_t i = 0; i < 3; i++) {
		cr_assert_neq(pids[i], d.pid);
		cr_assert_eq(getpgid(pids[i]), d.pid, "worker in the master's group");
	}
	hist = daemon_notify_history(&d);
	cr_assert_not_null(hist);
	cr_assert_not_null(strstr(hist, "READY=1"), "notify: %s", hist);
	cr_assert(strstr(hist, "STATUS=3 workers") != NULL ||
		  daemon_wait_notify(&d, "STATUS=3 workers", 3000, NULL, 0) == 0,
		  "a STATUS line with 3 workers; got: %s", hist);
	free(hist);
}

struct replaced {
	pid_t master;
	pid_t victim;
	const pid_t *before;
	pid_t after[8];
	size_t n;
};

/* The victim is gone and a pid we have not seen before took its place. */
static bool worker_replaced(void *arg)
{
	struct replaced *r = arg;

	r->n = proc_children(r->master, r->after, 8);
	if (r->n != 3 || pid_in(r->victim, r->after, r->n))
		return false;
	for (size_t i = 0; i < r->n; i++)
		if (!pid_in(r->after[i], r->before, 3))
			return true;
	return false;
}

Test(lifecycle, killed_worker_is_replaced)
{
	pid_t before[8];
	struct replaced r = { .before = before };

	start_daemon(&d, &(struct daemon_opts){ .workers = 3 });
	cr_assert_eq(daemon_wait_workers(&d, 3, before, 8, HARNESS_TIMEOUT_MS), 0);
	r.master = d.pid;
	r.victim = before[1];
	cr_assert_eq(kill(r.victim, SIGKILL), 0);
	cr_assert(wait_until(worker_replaced, &r, 1000),
		  "no replacement worker within 1 s (%zu children)", r.n);
	cr_assert(pid_in(before[0], r.after, 3) && pid_in(before[2], r.after, 3),
		  "surviving workers were left alone");
	cr_assert(wait_until(log_has_kill9, NULL, 2000), "log: killed by signal 9");
}

/* Sends the body of src in two halves with a SIGTERM in between. */
Test(lifecycle, sigterm_lets_upload_finish)
{
	char src[PATH_MAX], dst[PATH_MAX], line[512], want[128], hex[33];
	static char body[BIG_SIZE];
	int fd, status;

	start_daemon(&d, &(struct daemon_opts){ .workers = 2 });
	snprintf(src, sizeof(src), "%s/big.src", d.dir);
	snprintf(dst, sizeof(dst), "%s/big.bin", d.share_dir);
	cr_assert_eq(make_random_file(src, BIG_SIZE), 0);
	fd = open(src, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(read_full(fd, body, BIG_SIZE), (ssize_t)BIG_SIZE);
	close(fd);
	xxh128_hex(body, BIG_SIZE, hex);

	fd = daemon_connect_hello(&d);
	cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
	cr_assert_eq(proto_send_line(fd, "PUT files/big.bin size=%u continue=1", BIG_SIZE), 0);
	expect_line(fd, "CONTINUE", line, sizeof(line));
	cr_assert_str_eq(line, "CONTINUE", "the go-ahead is a bare CONTINUE");
	raw_send_data(fd, body, BIG_SIZE / 2, 1024 * 1024);

	cr_assert_eq(kill(d.pid, SIGTERM), 0);
	cr_assert_eq(daemon_wait_notify(&d, "STOPPING=1", HARNESS_TIMEOUT_MS, NULL, 0), 0,
		     "STOPPING=1 after SIGTERM");

	raw_send_body(fd, body + BIG_SIZE / 2, BIG_SIZE - BIG_SIZE / 2, 1024 * 1024, NULL);
	snprintf(want, sizeof(want), "OK size=%u digest=xxh3-128:%s", BIG_SIZE, hex);
	expect_line(fd, "OK", line, sizeof(line));
	cr_assert_str_eq(line, want);
	close(fd);
	cr_assert(files_equal(src, dst), "uploaded file has the sent bytes");

	status = daemon_wait_exit(&d, 5000 + 3000);
	expect_exit_status(status, 0);
	cr_assert_eq(count_entries(d.share_dir, ".tcpfiled"), 0, "no temp litter");
}

static void idle_connection_gets_421(int sig)
{
	char line[512];
	int fd, status;

	start_daemon(&d, &(struct daemon_opts){ .workers = 2 });
	fd = daemon_connect_hello(&d);
	cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
	/* A request served proves this worker owns the connection. */
	cr_assert_eq(proto_send_line(fd, "STAT files"), 0);
	expect_line(fd, "OK type=d ", line, sizeof(line));

	cr_assert_eq(kill(d.pid, sig), 0);
	expect_line(fd, "ERR 421", line, sizeof(line));
	cr_assert_eq(proto_recv_line(fd, line, sizeof(line)), -ENODATA,
		     "closed after the 421");
	close(fd);
	status = daemon_wait_exit(&d, 5000 + 3000);
	expect_exit_status(status, 0);
	cr_assert(daemon_notify_seen(&d, "STOPPING=1"));
}

Test(lifecycle, sigterm_idle_connection_gets_421)
{
	idle_connection_gets_421(SIGTERM);
}

Test(lifecycle, sigint_behaves_like_sigterm)
{
	idle_connection_gets_421(SIGINT);
}

Test(lifecycle, stalled_upload_is_killed_after_shutdown_timeout)
{
	static char part[4096];
	char line[512];
	int64_t t0, elapsed;
	int fd, status;

	start_daemon(&d, &(struct daemon_opts){ .workers = 2,
						.server_extra = "shutdown_timeout = 1s" });
	fd = daemon_connect_hello(&d);
	cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
	cr_assert_eq(proto_send_line(fd, "PUT files/stall.bin size=1048576 continue=1"), 0);
	expect_line(fd, "CONTINUE", line, sizeof(line));
	/* Stalled inside a frame: 4 KiB of a 1 MiB DATA frame. */
	cr_assert_eq(proto_send_line(fd, "DATA 1048576"), 0);
	cr_assert_eq(getrandom(part, sizeof(part), 0), (ssize_t)sizeof(part));
	cr_assert_eq(write_full(fd, part, sizeof(part)), 0);

	t0 = harness_now_ms();
	cr_assert_eq(kill(d.pid, SIGTERM), 0);
	status = daemon_wait_exit(&d, 1000 + 4000);
	elapsed = harness_now_ms() - t0;
	expect_exit_status(status, 0);
	/* Killed by the timeout, not merely abandoned at once. */
	cr_assert_geq(elapsed, 900, "master waited for the straggler (%lld ms)",
		      (long long)elapsed);
	cr_assert(log_has_kill9(NULL));
	close(fd);
	cr_assert_eq(count_entries(d.share_dir, ""), 0,
		     "no file and no temp litter after a killed upload");
}

Test(lifecycle, master_leads_its_own_process_group)
{
	pid_t master, workers[4];
	int status;

	sibling = fork();
	cr_assert_geq(sibling, 0);
	if (sibling == 0) {
		/* Stays in the test's process group, like a pipeline member. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl("/bin/sleep", "sleep", "30", (char *)NULL);
		_exit(127);
	}
	cr_assert_eq(getpgid(sibling), getpgrp());
	start_daemon(&d, &(struct daemon_opts){ .workers = 2 });
	master = d.pid;
	cr_assert_eq(getpgid(master), master, "master is a process-group leader");
	cr_assert_neq(getpgid(master), getpgrp());
	cr_assert_eq(daemon_wait_workers(&d, 2, workers, 4, HARNESS_TIMEOUT_MS), 0);

	status = daemon_stop(&d);
	expect_exit_status(status, 0);
	cr_assert(!proc_is_alive(workers[0]) && !proc_is_alive(workers[1]));
	cr_assert(proc_is_alive(sibling), "shutdown did not signal our group");
	cr_assert_eq(waitpid(sibling, &status, WNOHANG), 0);
}

struct dead_set {
	pid_t *pids;
	size_t n;
};

static bool all_dead(void *arg)
{
	struct dead_set *s = arg;

	for (size_t i = 0; i < s->n; i++)
		if (proc_is_alive(s->pids[i]))
			return false;
	return true;
}

Test(lifecycle, workers_die_with_a_killed_master)
{
	pid_t workers[4];
	struct dead_set set = { .pids = workers, .n = 3 };
	int status;

	start_daemon(&d, &(struct daemon_opts){ .workers = 3 });
	cr_assert_eq(daemon_wait_workers(&d, 3, workers, 4, HARNESS_TIMEOUT_MS), 0);
	cr_assert_eq(kill(d.pid, SIGKILL), 0);
	cr_assert(wait_until(all_dead, &set, 1000), "workers outlived the master");
	status = daemon_stop(&d);
	cr_assert(status >= 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		  "stop copes with a dead master (status %d)", status);
}

static int run_daemon(char *out, size_t cap, const char *a1, const char *a2,
		      const char *a3)
{
	const char *argv[] = { harness_bin("TCPFILED_BIN"), a1, a2, a3, NULL };

	cr_assert_not_null(argv[0], "TCPFILED_BIN is set");
	return harness_run(argv, out, cap);
}

Test(lifecycle, config_check)
{
	char bad[PATH_MAX], out[4096], want[PATH_MAX + 8];
	int fd;

	cr_assert_eq(daemon_prepare(&d, &(struct daemon_opts){ .workers = 2 }), 0);
	cr_assert_eq(run_daemon(out, sizeof(out), "-t", "-c", d.conf_path), 0, "%s", out);
	cr_assert_not_null(strstr(out, "configuration OK"), "%s", out);

	snprintf(bad, sizeof(bad), "%s/bad.conf", d.dir);
	fd = open(bad, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	cr_assert_geq(fd, 0);
	/* Line 3 is out of range (workers is 1..512). */
	static const char text[] = "[server]\nlisten = 127.0.0.1:1\nworkers = 0\n";
	cr_assert_eq(write_full(fd, text, sizeof(text) - 1), 0);
	cr_assert_eq(close(fd), 0);
	cr_assert_eq(run_daemon(out, sizeof(out), "-t", "-c", bad), 78, "%s", out);
	snprintf(want, sizeof(want), "%s:3", bad);
	cr_assert_not_null(strstr(out, want), "error names file:line: %s", out);
	cr_assert_not_null(strstr(out, "workers"), "error names the key: %s", out);

	cr_assert_eq(run_daemon(out, sizeof(out), "-t", "-c", "/nonexistent/tcpfiled.conf"),
		     78, "%s", out);
}

Test(lifecycle, usage_and_bad_options)
{
	char out[4096];

	cr_assert_eq(run_daemon(out, sizeof(out), "-h", NULL, NULL), 0, "%s", out);
	cr_assert_not_null(strstr(out, "Usage"), "%s", out);
	cr_assert_eq(run_daemon(out, sizeof(out), "-x", NULL, NULL), 64, "%s", out);
	cr_assert_eq(run_daemon(out, sizeof(out), "-c", NULL, NULL), 64, "%s", out);
	cr_assert_eq(run_daemon(out, sizeof(out), "extra-argument", NULL, NULL), 64,
		     "%s", out);
}

Test(lifecycle, crash_loop_exits_70)
{
	const struct daemon_opts o = { .workers = 2, .server_extra = "crash_loop_timeout = 2s" };
	const char *argv[] = { harness_bin("TCPFILED_BIN"), "-c", d.conf_path, NULL };
	/* Every worker exits at once, before serving anything (an unopenable
	 * share no longer does that: its requests are refused instead). */
	const char *env[] = { "TCPFILED_TEST_WORKER_EXIT=1", NULL };
	int status;

	cr_assert_eq(daemon_prepare(&d, &o), 0);
	cr_assert_eq(daemon_spawn(&d, argv, env), 0);
	cr_assert_eq(daemon_wait_ready(&d), 0);
	status = daemon_wait_exit(&d, 15000);
	expect_exit_status(status, 70);
	cr_assert(daemon_log_contains(&d, "crash loop"));
	cr_assert(daemon_notify_seen(&d, "STATUS=crash loop"));
}

Test(lifecycle, self_bind_listens_and_serves)
{
	char line[512], port[16];
	int fd;

	start_daemon(&d, &(struct daemon_opts){ .workers = 2, .self_bind = true });
	cr_assert_eq(d.listen_fd, -1);
	fd = daemon_connect(&d);
	cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
	cr_assert_eq(proto_send_line(fd, HARNESS_HELLO), 0);
	expect_line(fd, "TCPFILE ", line, sizeof(line));
	cr_assert(greeting_is_v2(line), "greeting: %s", line);
	cr_assert(strstr(line, " server=tcpfiled/") != NULL, "greeting names the server: %s",
		  line);
	expect_line(fd, "OK ", line, sizeof(line));
	cr_assert(strstr(line, "version=2") != NULL, "hello answer: %s", line);
	cr_assert_eq(proto_send_line(fd, "QUIT"), 0);
	expect_line(fd, "OK bye", line, sizeof(line));
	close(fd);
	snprintf(port, sizeof(port), ":%u", (unsigned)d.port);
	cr_assert(daemon_log_contains(&d, port), "log names the bound address");
}

/* One short conversation.  Those without quit just hang up, some with
 * unread answer bytes (LIST, GET) still in flight; FOO is closed by the
 * server. */
static void poke(int i)
{
	static const struct {
		const char *req;    /* NULL: hang up right after the hello */
		bool quit;
	} convs[] = {
		{ "QUIT", false },              { "FOO bar", false },
		{ "GET files/missing", false }, { "PUT ro/x size=10\nABORT", true },
		{ "STAT files", true },         { "LIST files", false },
		{ "GET files/small.txt", false }, { NULL, false },
	};
	const char *req = convs[i % 8].req;
	char line[512];
	int fd = daemon_connect_hello(&d);

	cr_assert_geq(fd, 0, "connection %d: %s", i, strerror(-fd));
	if (req != NULL) {
		cr_assert_eq(proto_send_line(fd, "%s", req), 0);
		cr_assert_gt(proto_recv_line(fd, line, sizeof(line)), 0, "answer to %s", req);
	}
	if (convs[i % 8].quit) {
		cr_assert_eq(proto_send_line(fd, "QUIT"), 0);
		expect_line(fd, "OK bye", line, sizeof(line));
	}
	close(fd);
}

static long socket_fds(pid_t pid)
{
	char dir[64], path[128], target[256];
	long n = 0;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	for (int fd = 0; fd < 1024; fd++) {
		ssize_t len;

		snprintf(path, sizeof(path), "%s/%d", dir, fd);
		len = readlink(path, target, sizeof(target) - 1);
		if (len < 0)
			continue;
		target[len] = '\0';
		if (strncmp(target, "socket:", 7) == 0)
			n++;
	}
	return n;
}

Test(lifecycle, no_descriptor_leak_in_a_worker)
{
	char small[PATH_MAX];
	pid_t w, again;
	long before, after;

	start_daemon(&d, &(struct daemon_opts){ .workers = 1 });
	snprintf(small, sizeof(small), "%s/small.txt", d.share_dir);
	cr_assert_eq(make_random_file(small, 1000), 0);
	cr_assert_eq(daemon_wait_workers(&d, 1, &w, 1, HARNESS_TIMEOUT_MS), 0);
	before = proc_count_fds(w);
	cr_assert_gt(before, 0);
	cr_assert_leq(before, 12, "idle worker holds %ld descriptors", before);
	cr_assert_eq(socket_fds(w), 1, "an idle worker holds only the listener socket");

	for (int i = 0; i < 50; i++)
		poke(i);

	cr_assert_eq(daemon_wait_workers(&d, 1, &again, 1, HARNESS_TIMEOUT_MS), 0);
	cr_assert_eq(again, w, "the same worker served every connection");
	after = proc_count_fds(w);
	cr_assert_eq(after, before, "descriptors before %ld, after 50 connections %ld",
		     before, after);
	cr_assert_eq(socket_fds(w), 1);
}

/* Plants dir/.tcpfiled/name as a replacing commit cut short would leave it. */
static void plant_state_name(const char *dir, const char *name, char *path,
			     size_t cap)
{
	char state[PATH_MAX];

	path_join(state, sizeof(state), dir, ".tcpfiled");
	cr_assert(mkdir(state, 0700) == 0 || errno == EEXIST, "mkdir %s: %s",
		  state, strerror(errno));
	path_join(path, cap, state, name);
	write_file(path, "litter", 6);
}

Test(lifecycle, startup_sweeps_interrupted_replacements)
{
	const char *argv[] = { harness_bin("TCPFILED_BIN"), "-c", NULL, NULL };
	char litter[PATH_MAX], ro_litter[PATH_MAX];

	cr_assert_not_null(argv[0], "TCPFILED_BIN is set");
	cr_assert_eq(daemon_prepare(&d, &(struct daemon_opts){ .workers = 1 }), 0);
	plant_state_name(d.share_dir, "12345.0123456789abcdef", litter, sizeof(litter));
	/* A read-only share is never written to, not even to clean up. */
	plant_state_name(d.ro_dir, "12345.0123456789abcdef", ro_litter,
			 sizeof(ro_litter));
	argv[2] = d.conf_path;
	cr_assert_eq(daemon_spawn(&d, argv, NULL), 0);
	cr_assert_eq(daemon_wait_ready(&d), 0);
	cr_assert_not(path_exists(litter), "litter survived the start");
	cr_assert(path_exists(ro_litter), "the read-only share was swept");
	cr_assert(daemon_log_contains(&d, "removed temporary names of interrupted "
				      "uploads: 1"));
}

static bool path_gone(void *arg)
{
	return !path_exists(arg);
}

Test(lifecycle, killed_worker_names_are_swept)
{
	char mine[PATH_MAX], other[PATH_MAX], name[64];
	pid_t w;

	start_daemon(&d, &(struct daemon_opts){ .workers = 1 });
	cr_assert_eq(daemon_wait_workers(&d, 1, &w, 1, HARNESS_TIMEOUT_MS), 0);
	snprintf(name, sizeof(name), "%d.0123456789abcdef", (int)w);
	plant_state_name(d.share_dir, name, mine, sizeof(mine));
	/* The master's pid: never a worker's, so never swept while running. */
	snprintf(name, sizeof(name), "%d.0123456789abcdef", (int)d.pid);
	plant_state_name(d.share_dir, name, other, sizeof(other));

	cr_assert_eq(kill(w, SIGKILL), 0);
	cr_assert(wait_until(path_gone, mine, HARNESS_TIMEOUT_MS),
		  "the killed worker's name is still there");
	cr_assert(path_exists(other), "another pid's name was swept");
	cr_assert(wait_until(log_has_kill9, NULL, 2000), "log: killed by signal 9");
	cr_assert(daemon_log_contains(&d, "removed temporary names left by worker"));
}
