/* Integration: silent, line-trickling and body-trickling clients cannot keep
 * a legitimate upload from completing, and are dropped within their
 * deadlines; a reload reaches connections in flight; LIST streams. */
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
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static struct daemon d;

static void teardown(void)
{
	daemon_stop(&d);
	test_release_all();
}

TestSuite(starvation, .fini = teardown, .timeout = 120);

/* Attackers, scaled to what two cores and a CI run afford. */
#define N_SILENT  300
#define N_LINE     60
#define N_BODY     20
#define N_ALL (N_SILENT + N_LINE + N_BODY)

struct attacker {
	int fd;
	int kind;            /* 0 silent, 1 line trickler, 2 body trickler */
	size_t sent;         /* bytes of its script sent */
	int64_t closed_ms;   /* when the server closed it, 0 while open */
};

static const char line_script[] = "HELLO 2 client=trickle/1\n";
static const char body_script[] = "HELLO 2 client=trickle/1\nPUT files/trickle size=100000\nDATA 100000\n";

static int connect_nonblocking(void)
{
	int fd = daemon_connect(&d);

	if (fd >= 0 && fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

/* One byte a second for tricklers (a body trickler sends its header at
 * once, then one body byte a second); notes connections the server closed. */
static void attackers_step(struct attacker *a, size_t n, bool tick)
{
	char drain[4096];

	for (size_t i = 0; i < n; i++) {
		ssize_t r;

		if (a[i].closed_ms)
			continue;
		while ((r = recv(a[i].fd, drain, sizeof(drain), MSG_DONTWAIT)) > 0)
			;
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
			a[i].closed_ms = harness_now_ms();
			continue;
		}
		if (!tick || a[i].kind == 0)
			continue;
		if (a[i].kind == 1 && a[i].sent < sizeof(line_script) - 1) {
			if (send(a[i].fd, line_script + a[i].sent, 1, MSG_NOSIGNAL) == 1)
				a[i].sent++;
		} else if (a[i].kind == 2) {
			const char *p = a[i].sent ? "x" : body_script;
			size_t len = a[i].sent ? 1 : strlen(body_script);

			if (send(a[i].fd, p, len, MSG_NOSIGNAL) == (ssize_t)len)
				a[i].sent += len;
		}
	}
}

struct legit {
	struct harness_proc proc;
	int64_t start_ms;
};

static bool legit_done(void *arg)
{
	struct legit *l = arg;

	return !proc_is_alive(l->proc.pid);
}

Test(starvation, tricklers_and_silent_clients_do_not_starve_an_upload)
{
	struct attacker *a = test_alloc(N_ALL * sizeof(*a));
	struct rlimit rl = { 4096, 4096 };
	char src[PATH_MAX], dst[PATH_MAX], out[4096];
	const char *argv[] = { "put", src, "files/legit", NULL };
	struct legit l;
	int64_t start, last_tick, ms;
	size_t open_line = 0, open_body = 0;
	int rc;

	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0, "setrlimit: %s", strerror(errno));
	/* The defaults, but deadlines short enough for a test run. */
	start_daemon(&d, &(struct daemon_opts){ .workers = 4, .self_bind = true,
		.server_extra = "max_workers = 16\nhandshake_timeout = 4s\n"
				"min_rate_window = 4s\ndefer_accept = 2s" });
	path_join(src, sizeof(src), d.dir, "legit");
	cr_assert_eq(make_random_file(src, 1024), 0);

	for (size_t i = 0; i < N_ALL; i++) {
		a[i].kind = i < N_SILENT ? 0 : i < N_SILENT + N_LINE ? 1 : 2;
		a[i].fd = connect_nonblocking();
		cr_assert_geq(a[i].fd, 0, "attacker %zu: %s", i, strerror(-a[i].fd));
	}
	start = last_tick = harness_now_ms();
	/* Let the flood reach the pool before the legitimate client comes. */
	while (harness_now_ms() - start < 3000) {
		bool tick = harness_now_ms() - last_tick >= 1000;

		attackers_step(a, N_ALL, tick);
		if (tick)
			last_tick = harness_now_ms();
		(void)poll(NULL, 0, 50);
	}

	l.start_ms = harness_now_ms();
	rc = tcpfile_spawn_env(&d, argv, NULL, -1, &l.proc);
	cr_assert_eq(rc, 0, "starting tcpfile: %s", strerror(-rc));
	while (!legit_done(&l) && harness_now_ms() - l.start_ms < 30000) {
		bool tick = harness_now_ms() - last_tick >= 1000;

		attackers_step(a, N_ALL, tick);
		if (tick)
			last_tick = harness_now_ms();
		(void)poll(NULL, 0, 20);
	}
	ms = harness_now_ms() - l.start_ms;
	rc = harness_proc_wait(&l.proc, out, sizeof(out), HARNESS_TIMEOUT_MS);
	cr_log_info("legitimate 1 KiB upload under the flood: %lld ms, exit %d",
		    (long long)ms, rc);
	cr_assert_eq(rc, 0, "tcpfile put under the flood: exit %d after %lld ms\n%s", rc,
		     (long long)ms, out);
	cr_assert_lt(ms, 10000, "the upload took %lld ms", (long long)ms);
	path_join(dst, sizeof(dst), d.share_dir, "legit");
	cr_assert(files_equal(src, dst), "the stored upload differs");

	/* Attackers are dropped within their deadlines: tricklers by
	 * handshake_timeout and min_rate_window (4 s each) plus slack. */
	while (harness_now_ms() - start < 3000 + 12000) {
		attackers_step(a, N_ALL, harness_now_ms() - last_tick >= 1000);
		if (harness_now_ms() - last_tick >= 1000)
			last_tick = harness_now_ms();
		open_line = open_body = 0;
		for (size_t i = N_SILENT; i < N_ALL; i++)
			if (!a[i].closed_ms && a[i].kind == 1)
				open_line++;
			else if (!a[i].closed_ms)
				open_body++;
		if (!open_line && !open_body)
			break;
		(void)poll(NULL, 0, 50);
	}
	cr_assert_eq(open_line, 0, "%zu line tricklers still connected", open_line);
	cr_assert_eq(open_body, 0, "%zu body tricklers still connected", open_body);
	for (size_t i = 0; i < N_ALL; i++)
		close(a[i].fd);
}

static bool reloaded(void *arg)
{
	(void)arg;
	return daemon_log_contains(&d, "reloaded: generation 2");
}

/* Rewrites the daemon's config with read_only = yes in [files]. */
static void make_files_read_only(void)
{
	char path[PATH_MAX], buf[16384];
	const char *at;
	ssize_t n;
	FILE *f;
	int fd;

	path_join(path, sizeof(path), d.dir, "tcpfiled.conf");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	at = strstr(buf, "[files]\n");
	cr_assert_not_null(at, "%s", buf);
	f = fopen(path, "we");
	cr_assert_not_null(f);
	fprintf(f, "%.*s[files]\nread_only = yes\n%s", (int)(at - buf), buf,
		at + strlen("[files]\n"));
	cr_assert_eq(fclose(f), 0);
}

Test(starvation, reload_reaches_a_connection_in_flight)
{
	char line[512], path[PATH_MAX];
	int fd;

	start_daemon(&d, &(struct daemon_opts){ .workers = 1 });
	fd = daemon_connect_hello(&d);
	cr_assert_geq(fd, 0);
	cr_assert_eq(proto_send_line(fd, "PUT files/before size=1"), 0);
	cr_assert_eq(proto_send_line(fd, "DATA 1"), 0);
	cr_assert_eq(write(fd, "bEND\n", 5), 5);
	cr_assert_gt(proto_recv_line(fd, line, sizeof(line)), 0);
	cr_assert(strncmp(line, "OK size=1 ", 10) == 0, "%s", line);

	/* The share turns read-only; the open connection's next upload is
	 * judged by the new configuration. */
	make_files_read_only();
	cr_assert_eq(kill(d.pid, SIGHUP), 0);
	cr_assert(wait_until(reloaded, NULL, HARNESS_TIMEOUT_MS), "no reload in the log");
	cr_assert_eq(proto_send_line(fd, "PUT files/after size=1"), 0);
	cr_assert_eq(proto_send_line(fd, "DATA 1"), 0);
	cr_assert_eq(write(fd, "aEND\n", 5), 5);
	cr_assert_gt(proto_recv_line(fd, line, sizeof(line)), 0);
	cr_assert(strncmp(line, "ERR 553 ", 8) == 0, "after the reload: %s", line);
	path_join(path, sizeof(path), d.share_dir, "after");
	cr_assert(!path_exists(path), "the upload was stored");
	close(fd);
}

/* VmHWM (peak resident set) of pid, in KiB; -1 if unreadable. */
static long proc_hwm_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

#define LIST_ENTRIES 30000

Test(starvation, list_streams_in_bounded_memory)
{
	char dir[PATH_MAX], name[PATH_MAX + 64], line[1024];
	long before, after;
	unsigned long entries = 0;
	int64_t t0, first_ms = -1;
	pid_t worker;
	int fd;

	start_daemon(&d, &(struct daemon_opts){ .workers = 1 });
	cr_assert_eq(daemon_wait_workers(&d, 1, &worker, 1, HARNESS_TIMEOUT_MS), 0);
	path_join(dir, sizeof(dir), d.share_dir, "big");
	cr_assert_eq(mkdir(dir, 0755), 0);
	for (int i = 0; i < LIST_ENTRIES; i++) {
		int f;

		snprintf(name, sizeof(name), "%s/entry-with-a-longish-name-%07d", dir, i);
		f = open(name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		cr_assert_geq(f, 0, "%s: %s", name, strerror(errno));
		close(f);
	}
	fd = daemon_connect_hello(&d);
	cr_assert_geq(fd, 0);
	before = proc_hwm_kib(worker);
	cr_assert_gt(before, 0);
	t0 = harness_now_ms();
	cr_assert_eq(proto_send_line(fd, "LIST files/big"), 0);
	cr_assert_gt(proto_recv_line(fd, line, sizeof(line)), 0);
	cr_assert_str_eq(line, "OK");
	for (;;) {
		cr_assert_gt(proto_recv_line(fd, line, sizeof(line)), 0, "listing cut short");
		if (strncmp(line, "ENTRY ", 6) != 0)
			break;
		if (first_ms < 0)
			first_ms = harness_now_ms() - t0;
		entries++;
	}
	snprintf(name, sizeof(name), "END count=%d", LIST_ENTRIES);
	cr_assert_str_eq(line, name);
	cr_assert_eq(entries, LIST_ENTRIES);
	after = proc_hwm_kib(worker);
	cr_log_info("LIST of %d entries: first entry after %lld ms, worker peak RSS %ld -> %ld KiB",
		    LIST_ENTRIES, (long long)first_ms, before, after);
	/* Holding the listing would take ~3.5 MiB here (protocol 1 needed
	 * 46.8 MiB for 400,000 entries); streaming needs a few pages. */
	cr_assert_lt(after - before, 1024, "the worker grew by %ld KiB", after - before);
	close(fd);
}

/* An upload waiting in the group commit (fsync = yes) when a reload swaps
 * the configuration is still named in its own share: the old share roots
 * outlive the swap. */
Test(starvation, reload_between_a_batched_upload_and_its_commit)
{
	char other[PATH_MAX], shares[PATH_MAX + 64], line[512], path[PATH_MAX + 32];
	int fd;

	scratch_create(other, sizeof(other), "itest_other_share");
	snprintf(shares, sizeof(shares), "[other]\npath = %s\nanonymous = write\n", other);
	start_daemon(&d, &(struct daemon_opts){ .workers = 1, .server_extra = "fsync = yes",
						 .shares_extra = shares });
	fd = daemon_connect_hello(&d);
	cr_assert_geq(fd, 0);
	/* The first upload's body, all but its END. */
	cr_assert_eq(proto_send_line(fd, "PUT files/x/y/a.txt size=3"), 0);
	cr_assert_eq(proto_send_line(fd, "DATA 3"), 0);
	cr_assert_eq(write(fd, "abc", 3), 3);
	cr_assert_eq(kill(d.pid, SIGHUP), 0);
	cr_assert(wait_until(reloaded, NULL, HARNESS_TIMEOUT_MS), "no reload in the log");
	/* Its END and a second upload in one write: the first waits in the
	 * batch while the second request takes the reloaded configuration. */
	static const char rest[] = "END\nPUT other/b.txt size=1\nDATA 1\nbEND\n";
	cr_assert_eq(write(fd, rest, sizeof(rest) - 1), (ssize_t)(sizeof(rest) - 1));
	for (int i = 0; i < 2; i++) {
		cr_assert_gt(proto_recv_line(fd, line, sizeof(line)), 0);
		cr_assert(strncmp(line, "OK size=", 8) == 0, "answer %d: %s", i, line);
	}
	close(fd);
	path_join(path, sizeof(path), d.share_dir, "x/y/a.txt");
	cr_assert(file_is(path, "abc", 3), "files/x/y/a.txt is not where it was acknowledged");
	path_join(path, sizeof(path), other, "b.txt");
	cr_assert(file_is(path, "b", 1), "other/b.txt");
	path_join(path, sizeof(path), other, "x");
	cr_assert(!path_exists(path), "the first upload landed in the other share");
	scratch_remove(other);
}

/* ---- space ---- */

struct small_uploads {
	int ok, failed;
	char detail[512];
};

/* One connection uploading count small files to tiny/, pipelined one at a
 * time; counts the OK and ERR answers. */
static void upload_small_files(int n, struct small_uploads *r)
{
	char line[512];
	int fd = daemon_connect_hello(&d);

	cr_assert_geq(fd, 0);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(proto_send_line(fd, "PUT tiny/s%d size=4096", i), 0);
		cr_assert_eq(proto_send_line(fd, "DATA 4096"), 0);
		{
			char body[4096];

			memset(body, 's', sizeof(body));
			cr_assert_eq(write(fd, body, sizeof(body)), (ssize_t)sizeof(body));
		}
		cr_assert_eq(proto_send_line(fd, "END"), 0);
		cr_assert_gt(proto_recv_line(fd, line, sizeof(line)), 0);
		if (strncmp(line, "OK ", 3) == 0) {
			r->ok++;
		} else {
			r->failed++;
			snprintf(r->detail, sizeof(r->detail), "%s", line);
		}
	}
	close(fd);
}

/* Sends oversize headers (4 MiB, twice what the nearly full file system
 * has free) as fast as the server refuses them, until killed. */
static _Noreturn void hammer_oversize(void)
{
	char line[512];
	int fd = daemon_connect_hello(&d);

	if (fd < 0)
		_exit(2);
	for (;;) {
		if (proto_send_line(fd, "PUT tiny/big size=4194304 continue=1") < 0 ||
		    proto_recv_line(fd, line, sizeof(line)) <= 0)
			_exit(3);
		if (strncmp(line, "ERR 452 ", 8) != 0)
			_exit(4);
		if (proto_send_line(fd, "ABORT") < 0)
			_exit(5);
	}
}

Test(starvation, an_oversize_header_reserves_nothing)
{
	char mnt[PATH_MAX], shares[PATH_MAX + 64];
	struct small_uploads r = { 0 };
	struct statvfs before, after;
	pid_t hammer;
	int status;

	if (geteuid() != 0)
		cr_skip_test("mounting a small tmpfs needs root");
	scratch_create(mnt, sizeof(mnt), "itest_tiny");
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=8m") != 0)
		cr_skip_test("cannot mount a tmpfs: %s", strerror(errno));
	snprintf(shares, sizeof(shares), "[tiny]\npath = %s\nanonymous = write\n", mnt);
	/* Nearly full: 6 of its 8 MiB taken. */
	{
		char fill[PATH_MAX + 16];
		void *six = random_buf(6 << 20);

		path_join(fill, sizeof(fill), mnt, "fill");
		write_file(fill, six, 6 << 20);
	}
	start_daemon(&d, &(struct daemon_opts){ .workers = 2, .shares_extra = shares });
	cr_assert_eq(statvfs(mnt, &before), 0);

	/* Headers larger than what is free, refused with 452 as fast as they
	 * come, while small uploads run beside them: none may fail. */
	hammer = fork();
	cr_assert_geq(hammer, 0);
	if (hammer == 0)
		hammer_oversize();
	upload_small_files(200, &r);
	cr_assert_eq(waitpid(hammer, &status, WNOHANG), 0, "the hammer stopped: %d", status);
	cr_assert_eq(kill(hammer, SIGKILL), 0);
	cr_assert_eq(waitpid(hammer, &status, 0), hammer);
	cr_assert_eq(statvfs(mnt, &after), 0);
	cr_assert_eq(r.failed, 0, "%d of 200 small uploads failed: %s", r.failed, r.detail);
	cr_assert_eq(r.ok, 200);
	/* What is used is the small files (200 x 4 KiB), nothing reserved. */
	cr_assert_leq((before.f_bfree - after.f_bfree) * before.f_frsize, 200 * 4096 + 256 * 1024,
		      "%llu bytes taken", (unsigned long long)((before.f_bfree - after.f_bfree) *
							       before.f_frsize));
	daemon_stop(&d);
	cr_assert_eq(umount(mnt), 0, "umount: %s", strerror(errno));
	scratch_remove(mnt);
}
