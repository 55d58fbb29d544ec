/* Integration: client admission (hosts_allow, hosts_deny, max_per_ip),
 * TCP_DEFER_ACCEPT, and shares checked by -t and reload as the service
 * user. */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "netio.h"

#define NOBODY "65534"
#define SETPRIV "/usr/bin/setpriv"

static struct daemon d;
static char scratch[256];

static void access_fini(void)
{
	daemon_stop(&d);
	scratch_remove(scratch);
	test_release_all();
}

TestSuite(access, .fini = access_fini, .timeout = 120);

/* Connects, speaks first (as a protocol-2 client does) and returns the
 * first line the server sends. */
/* A protocol 2 client's first words: it speaks before the greeting. */
#define CLIENT_HELLO_QUIT "HELLO 2 client=itest/1\nQUIT\n"

static int open_and_read_first(char *line, size_t cap)
{
	int fd = daemon_connect(&d);
	ssize_t n;

	cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
	cr_assert_eq(write_full(fd, CLIENT_HELLO_QUIT, strlen(CLIENT_HELLO_QUIT)), 0);
	n = proto_recv_line(fd, line, cap);
	cr_assert_geq(n, 0, "first line: %s", strerror((int)-n));
	return fd;
}

/* The refusal is the one line the client gets: then the connection ends. */
static void expect_refused_alone(const char *want)
{
	char line[512];
	int fd = open_and_read_first(line, sizeof(line));

	cr_assert_str_eq(line, want);
	cr_assert_eq(proto_recv_line(fd, line, sizeof(line)), -ENODATA,
		     "nothing may follow the refusal, got \"%s\"", line);
	close(fd);
}

struct retry {
	char line[512];
};

/* A new connection is admitted again (the slot of a closed one freed). */
static bool admitted(void *arg)
{
	struct retry *r = arg;
	int fd = open_and_read_first(r->line, sizeof(r->line));

	close(fd);
	return strncmp(r->line, "TCPFILE ", 8) == 0;
}

Test(access, hosts_deny_refuses_before_the_greeting)
{
	struct daemon_opts o = { .workers = 1, .server_extra = "hosts_deny = 10.0.0.0/8 127.0.0.0/8" };

	start_daemon(&d, &o);
	for (int i = 0; i < 8; i++)
		expect_refused_alone("ERR 553 forbidden: your address is not allowed");
	cr_assert(daemon_log_contains(&d, "127.0.0.1:"), "the refusal names the client");

	/* Rate-limited: 5 records, then one summary when the worker stops. */
	cr_assert_eq(kill(d.pid, SIGTERM), 0);
	cr_assert_geq(daemon_wait_exit(&d, HARNESS_TIMEOUT_MS), 0);
	char *log = daemon_log_read(&d);
	cr_assert_not_null(log);
	size_t n = 0;
	for (const char *p = log; (p = strstr(p, "connection refused: address not allowed")); p++)
		n++;
	bool summary = strstr(log, "3 more refused connections suppressed") != NULL;
	free(log);
	cr_expect_eq(n, 5, "records of refused connections: %zu", n);
	cr_expect(summary, "a summary counts the suppressed records");
}

Test(access, hosts_allow_must_match)
{
	struct daemon_opts o = { .server_extra = "hosts_allow = 10.0.0.0/8, ::1/128" };
	struct retry r;
	char line[512];

	start_daemon(&d, &o);
	expect_refused_alone("ERR 553 forbidden: your address is not allowed");

	/* A reload that lets loopback in applies to the next connection. */
	o.server_extra = "hosts_allow = 10.0.0.0/8 ::ffff:127.0.0.0/104";
	cr_assert_eq(daemon_write_config(&d, &o), 0);
	cr_assert_eq(kill(d.pid, SIGHUP), 0);
	cr_assert_eq(daemon_wait_notify(&d, "RELOADING=1", HARNESS_TIMEOUT_MS, line,
					sizeof(line)), 0);
	cr_assert_eq(daemon_wait_notify(&d, "READY=1", HARNESS_TIMEOUT_MS, line,
					sizeof(line)), 0);
	/* Old workers may take a connection or two before they retire. */
	cr_assert(wait_until(admitted, &r, HARNESS_TIMEOUT_MS), "greeting: %s", r.line);
}

Test(access, max_per_ip_caps_concurrent_connections)
{
	struct daemon_opts o = { .workers = 4, .server_extra = "max_per_ip = 2" };
	struct retry r;
	char line[512];
	int a, b;

	start_daemon(&d, &o);
	a = raw_open(&d, NULL, 0);
	b = raw_open(&d, NULL, 0);
	/* Two held, two workers idle: the third is refused all the same. */
	expect_refused_alone("ERR 421 unavailable: too many connections from your address, "
			     "retry later");
	raw_cmd(a, line, sizeof(line), "STAT files");
	cr_assert(strncmp(line, "OK ", 3) == 0, "held connections still work: %s", line);

	close(a);
	cr_assert(wait_until(admitted, &r, HARNESS_TIMEOUT_MS),
		  "a place freed by a closed connection is given again: %s", r.line);
	close(b);
}

/* A worker killed mid-connection never leaves its entry behind. */
Test(access, dead_worker_releases_its_place)
{
	struct daemon_opts o = { .workers = 2, .server_extra = "max_per_ip = 1" };
	pid_t workers[2];
	struct retry r;
	int a;

	start_daemon(&d, &o);
	cr_assert_eq(daemon_wait_workers(&d, 2, workers, 2, HARNESS_TIMEOUT_MS), 0);
	a = raw_open(&d, NULL, 0);
	expect_refused_alone("ERR 421 unavailable: too many connections from your address, "
			     "retry later");
	/* The worker serving a holds one descriptor more than the other. */
	long fds0 = proc_count_fds(workers[0]), fds1 = proc_count_fds(workers[1]);
	cr_assert(fds0 > 0 && fds1 > 0 && fds0 != fds1, "fds: %ld %ld", fds0, fds1);
	cr_assert_eq(kill(workers[fds0 > fds1 ? 0 : 1], SIGKILL), 0);
	cr_assert(wait_until(admitted, &r, HARNESS_TIMEOUT_MS),
		  "the killed worker's place is released: %s", r.line);
	close(a);
}

/* With defer_accept, a silent connection does not occupy the one worker. */
Test(access, defer_accept_keeps_silent_clients_in_the_kernel)
{
	struct daemon_opts o = { .workers = 1, .server_extra = "defer_accept = 5s" };
	struct pollfd pfd;
	char line[512];
	int silent, fd;

	start_daemon(&d, &o);
	silent = daemon_connect(&d);
	cr_assert_geq(silent, 0);
	/* A client that speaks is served at once by the only worker. */
	fd = open_and_read_first(line, sizeof(line));
	cr_assert(strncmp(line, "TCPFILE ", 8) == 0, "greeting: %s", line);
	expect_line(fd, "OK version=2", line, sizeof(line));
	expect_line(fd, "OK bye", line, sizeof(line));
	close(fd);
	/* The silent one was never handed to the worker. */
	pfd = (struct pollfd){ .fd = silent, .events = POLLIN };
	cr_assert_eq(poll(&pfd, 1, 0), 0, "the silent connection got nothing");
	cr_assert_eq(write_full(silent, CLIENT_HELLO_QUIT, strlen(CLIENT_HELLO_QUIT)), 0);
	expect_line(silent, "TCPFILE ", line, sizeof(line));
	expect_line(silent, "OK version=2", line, sizeof(line));
	expect_line(silent, "OK bye", line, sizeof(line));
	close(silent);
}

/* ---- Shares the service user cannot open ---- */

/* argv prefix that runs a program as nobody (as root), or as ourselves
 * when we are not root (then permissions apply already). */
static size_t as_service_user(const char **argv)
{
	if (geteuid() != 0)
		return 0;
	if (access(SETPRIV, X_OK) != 0)
		cr_skip_test("running as root and %s is missing: cannot drop privileges", SETPRIV);
	argv[0] = SETPRIV;
	argv[1] = "--reuid=" NOBODY;
	argv[2] = "--regid=" NOBODY;
	argv[3] = "--clear-groups";
	return 4;
}

Test(access, check_fails_on_an_unopenable_share)
{
	const char *argv[16] = { 0 };
	char conf[300], share[300], locked[300], text[1024], out[2048], want[800];
	size_t n;
	int st;

	scratch_create(scratch, sizeof(scratch), "itest_access");
	cr_assert_eq(chmod(scratch, 0755), 0);
	path_join(conf, sizeof(conf), scratch, "t.conf");
	path_join(share, sizeof(share), scratch, "files");
	path_join(locked, sizeof(locked), scratch, "locked");
	cr_assert_eq(mkdir(share, 0777), 0);
	cr_assert_eq(chmod(share, 0777), 0);
	cr_assert_eq(mkdir(locked, 0), 0);
	snprintf(text, sizeof(text), "[server]\nworkers = 1\n\n[files]\npath = %s\nanonymous = write\n\n"
		 "[locked]\nread_only = yes\npath = %s\nanonymous = write\n", share, locked);
	write_file(conf, text, strlen(text));
	cr_assert_eq(chmod(conf, 0644), 0);

	n = as_service_user(argv);
	argv[n++] = harness_bin("TCPFILED_BIN");
	argv[n++] = "-t";
	argv[n++] = "-c";
	argv[n++] = conf;
	st = harness_run(argv, out, sizeof(out));
	cr_assert_eq(st, 78, "exit %d: %s", st, out);
	snprintf(want, sizeof(want), "%s:10: [locked] path: \"%s\": cannot open: "
		 "Permission denied\n", conf, locked);
	cr_assert_str_eq(out, want);

	/* The same check passes once the service user may list it. */
	cr_assert_eq(chmod(locked, 0555), 0);
	st = harness_run(argv, out, sizeof(out));
	cr_assert_eq(st, 0, "exit %d: %s", st, out);
}

static bool put_works(void *arg)
{
	char out[1024];
	const char *src = arg;

	return tcpfile_run(&d, out, sizeof(out), "put", src, "files/after-reload.bin",
			   (char *)NULL) == 0;
}

Test(access, reload_to_an_unopenable_share_keeps_the_old_config)
{
	const char *argv[16] = { 0 };
	struct daemon_opts o = { .workers = 2 };
	pid_t before[2], after[2];
	char locked[300], extra[400], src[320], msg[1024];
	size_t n;
	int r;

	/* The daemon runs as nobody, as under its unit, so permissions
	 * apply to it. */
	cr_assert_eq(daemon_prepare(&d, &o), 0);
	cr_assert_eq(chmod(d.dir, 0755), 0);
	cr_assert_eq(chmod(d.share_dir, 0777), 0);
	cr_assert_eq(chmod(d.notify_path, 0777), 0);
	n = as_service_user(argv);
	argv[n++] = harness_bin("TCPFILED_BIN");
	argv[n++] = "-c";
	argv[n++] = d.conf_path;
	cr_assert_eq(daemon_spawn(&d, argv, NULL), 0);
	cr_assert_eq(daemon_wait_ready(&d), 0);
	cr_assert_eq(daemon_wait_workers(&d, 2, before, 2, HARNESS_TIMEOUT_MS), 0);

	path_join(locked, sizeof(locked), d.dir, "locked");
	cr_assert_eq(mkdir(locked, 0), 0);
	snprintf(extra, sizeof(extra), "[locked]\npath = %s\nanonymous = write\n", locked);
	o.shares_extra = extra;
	cr_assert_eq(daemon_write_config(&d, &o), 0);
	cr_assert_eq(kill(d.pid, SIGHUP), 0);
	cr_assert_eq(daemon_wait_notify(&d, "RELOADING=1", HARNESS_TIMEOUT_MS, msg,
					sizeof(msg)), 0);
	cr_assert_eq(daemon_wait_notify(&d, "READY=1", HARNESS_TIMEOUT_MS, msg,
					sizeof(msg)), 0);
	cr_assert(daemon_notify_seen(&d, "STATUS="), "a status line");
	char *hist = daemon_notify_history(&d);
	cr_assert_not_null(hist);
	bool said = strstr(hist, "reload failed") != NULL;
	free(hist);
	cr_assert(said, "STATUS= says the reload failed");
	cr_assert(daemon_log_contains(&d, "[locked] path: \""), "the log names the share");

	/* The same workers serve on, under the old configuration. */
	cr_assert_eq(daemon_wait_workers(&d, 2, after, 2, HARNESS_TIMEOUT_MS), 0);
	for (size_t i = 0; i < 2; i++)
		cr_assert(pid_in(after[i], before, 2), "worker %d is new", (int)after[i]);
	path_join(src, sizeof(src), d.dir, "src.bin");
	cr_assert_eq(make_random_file(src, 4096), 0);
	cr_assert(put_works(src), "uploads still work");
	r = (int)proc_children(d.pid, after, 2);
	cr_assert_eq(r, 2);
}

static bool log_says_refusing(void *arg)
{
	return daemon_log_contains(&d, "refusing its requests until a reload");
}

/* A worker that cannot open one share serves the others. */
Test(access, worker_serves_other_shares_when_one_cannot_be_opened)
{
	struct daemon_opts o = { .workers = 1 };
	pid_t workers[1];
	char line[512];
	int fd;

	start_daemon(&d, &o);
	cr_assert_eq(daemon_wait_workers(&d, 1, workers, 1, HARNESS_TIMEOUT_MS), 0);
	cr_assert_eq(rmdir(d.share_dir), 0);
	cr_assert_eq(kill(workers[0], SIGKILL), 0);
	cr_assert(wait_until(log_says_refusing, NULL, HARNESS_TIMEOUT_MS),
		  "the new worker logs the share it cannot open");
	cr_assert_eq(daemon_wait_workers(&d, 1, workers, 1, HARNESS_TIMEOUT_MS), 0);
	fd = raw_open(&d, NULL, 0);
	raw_cmd(fd, line, sizeof(line), "STAT ro");
	cr_assert(strncmp(line, "OK ", 3) == 0, "the other share is served: %s", line);
	close(fd);
}
