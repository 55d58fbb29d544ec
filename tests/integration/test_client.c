/* test_client: the tcpfile command line against the real daemon: commands,
 * a pipelined batch, exit codes and what is left behind on failure. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "netio.h"

#define OUT_CAP 65536
#define BATCH 2000

static struct daemon d;
static char local[PATH_MAX];

/* ---- fixtures ---------------------------------------------------------- */

static void setup_local(void)
{
	scratch_create(local, sizeof(local), "itclient");
}

static void setup(void)
{
	setup_local();
	start_daemon(&d, NULL);
}

static void teardown(void)
{
	daemon_stop(&d);
	scratch_remove(local);
}

#define NARGS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- file helpers ------------------------------------------------------- */

static void local_file(char *path, size_t cap, const char *name, size_t size)
{
	path_join(path, cap, local, name);
	cr_assert_eq(make_random_file(path, size), 0, "make_random_file %s", path);
}

static void local_dir(char *path, size_t cap, const char *name)
{
	path_join(path, cap, local, name);
	cr_assert_eq(mkdir(path, 0755), 0, "mkdir %s: %s", path, strerror(errno));
}

static void share_path(char *out, size_t cap, const char *rel)
{
	path_join(out, cap, d.share_dir, rel);
}

/* True when some whitespace-separated token of some line equals a, and
 * another token of that same line equals b (b may be NULL). */
static bool output_has_line(const char *out, const char *a, const char *b)
{
	const char *line = out;

	while (*line) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		bool has_a = false, has_b = b == NULL;
		char *copy = strndup(line, len), *save = NULL;

		cr_assert_not_null(copy);
		for (char *t = strtok_r(copy, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
			has_a = has_a || strcmp(t, a) == 0;
			has_b = has_b || (b && strcmp(t, b) == 0);
		}
		free(copy);
		if (has_a && has_b)
			return true;
		line += len + (eol ? 1 : 0);
	}
	return false;
}

/* ---- tests --------------------------------------------------------------- */

/* "client" tests run against a daemon; "client_offline" ones need none. */
TestSuite(client, .init = setup, .fini = teardown, .timeout = 120);

Test(client, put_stat_ls_get_rm)
{
	char src[PATH_MAX], src2[PATH_MAX], got[PATH_MAX], gotdir[PATH_MAX], path[PATH_MAX];
	char out[OUT_CAP];
	int rc;

	local_file(src, sizeof(src), "alpha.bin", 5000);
	local_file(src2, sizeof(src2), "beta.bin", 123);

	rc = tcpfile_run(&d, out, sizeof(out), "put", src, "files/dir/a.bin", NULL);
	cr_assert_eq(rc, 0, "put: %d\n%s", rc, out);
	share_path(path, sizeof(path), "dir/a.bin");
	cr_assert(files_equal(src, path), "stored file differs");

	rc = tcpfile_run(&d, out, sizeof(out), "stat", "files/dir/a.bin", NULL);
	cr_assert_eq(rc, 0, "stat: %d\n%s", rc, out);
	cr_assert_not_null(strstr(out, "5000"), "stat output lacks the size:\n%s", out);

	rc = tcpfile_run(&d, out, sizeof(out), "ls", "files/dir", NULL);
	cr_assert_eq(rc, 0, "ls: %d\n%s", rc, out);
	cr_assert(output_has_line(out, "a.bin", NULL), "ls output:\n%s", out);

	path_join(got, sizeof(got), local, "got.bin");
	rc = tcpfile_run(&d, out, sizeof(out), "get", "files/dir/a.bin", got, NULL);
	cr_assert_eq(rc, 0, "get: %d\n%s", rc, out);
	cr_assert(files_equal(src, got), "downloaded file differs");

	/* Several LOCALs, or a trailing '/', name a remote directory. */
	rc = tcpfile_run(&d, out, sizeof(out), "put", src, src2, "files/multi", NULL);
	cr_assert_eq(rc, 0, "put to a directory: %d\n%s", rc, out);
	share_path(path, sizeof(path), "multi/alpha.bin");
	cr_assert(files_equal(src, path));
	share_path(path, sizeof(path), "multi/beta.bin");
	cr_assert(files_equal(src2, path));
	rc = tcpfile_run(&d, out, sizeof(out), "put", src2, "files/slash/", NULL);
	cr_assert_eq(rc, 0, "put to dir/: %d\n%s", rc, out);
	share_path(path, sizeof(path), "slash/beta.bin");
	cr_assert(files_equal(src2, path));

	/* Several REMOTEs into a local directory. */
	local_dir(gotdir, sizeof(gotdir), "gotdir");
	rc = tcpfile_run(&d, out, sizeof(out), "get", "files/multi/alpha.bin",
			 "files/multi/beta.bin", gotdir, NULL);
	cr_assert_eq(rc, 0, "get into a directory: %d\n%s", rc, out);
	path_join(path, sizeof(path), gotdir, "alpha.bin");
	cr_assert(files_equal(src, path));
	path_join(path, sizeof(path), gotdir, "beta.bin");
	cr_assert(files_equal(src2, path));
	cr_assert_eq(count_entries(gotdir, ""), 2);

	rc = tcpfile_run(&d, out, sizeof(out), "rm", "files/dir/a.bin",
			 "files/multi/beta.bin", NULL);
	cr_assert_eq(rc, 0, "rm: %d\n%s", rc, out);
	share_path(path, sizeof(path), "dir/a.bin");
	cr_assert(!path_exists(path), "rm left the file");
	share_path(path, sizeof(path), "multi/beta.bin");
	cr_assert(!path_exists(path), "rm left the second file");
	share_path(path, sizeof(path), "multi/alpha.bin");
	cr_assert(path_exists(path), "rm removed too much");
	rc = tcpfile_run(&d, out, sizeof(out), "stat", "files/dir/a.bin", NULL);
	cr_assert_eq(rc, 1, "stat of a removed file: %d\n%s", rc, out);
}

struct log_count {
	long puts;
	long clients;
	char client[64];
	char bad[256];
};

/* Counts "put files/batch/..." records and the distinct client= values. */
static void count_batch_records(struct log_count *lc)
{
	char line[4096];
	FILE *f = fopen(d.log_path, "re");

	memset(lc, 0, sizeof(*lc));
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		const char *c;
		size_t len;

		if (!strstr(line, "put files/batch/"))
			continue;
		lc->puts++;
		c = strstr(line, "client=");
		if (!c) {
			snprintf(lc->bad, sizeof(lc->bad), "%.200s", line);
			continue;
		}
		c += strlen("client=");
		len = strcspn(c, " \t\n");
		if (lc->clients == 0 || strlen(lc->client) != len ||
		    strncmp(lc->client, c, len) != 0) {
			lc->clients++;
			snprintf(lc->client, sizeof(lc->client), "%.*s", (int)len, c);
		}
	}
	fclose(f);
}

static bool batch_logged(void *arg)
{
	struct log_count *lc = arg;

	count_batch_records(lc);
	return lc->puts >= BATCH;
}

Test(client, batch_of_small_files, .timeout = 300)
{
	static char names[BATCH][PATH_MAX];
	static const char *args[BATCH + 6];
	static char out[OUT_CAP];
	uint16_t sizes[BATCH];
	char dir[PATH_MAX], path[PATH_MAX], base[16];
	struct log_count lc;
	size_t n = 0;
	int rc;

	local_dir(dir, sizeof(dir), "batch");
	cr_assert_eq(getrandom(sizes, sizeof(sizes), 0), (ssize_t)sizeof(sizes));
	args[n++] = "-q";
	args[n++] = "put";
	for (size_t i = 0; i < BATCH; i++) {
		snprintf(base, sizeof(base), "f%04zu", i);
		path_join(names[i], sizeof(names[i]), dir, base);
		cr_assert_eq(make_random_file(names[i], sizes[i] % 4097u), 0);
		args[n++] = names[i];
	}
	args[n++] = "files/batch/";
	args[n] = NULL;

	rc = tcpfile_runv(&d, out, sizeof(out), args, NULL);
	cr_assert_eq(rc, 0, "put of %d files: %d\n%s", BATCH, rc, out);

	cr_assert_eq(count_entries(d.share_dir, ""), BATCH + 1);
	for (size_t i = 0; i < BATCH; i++) {
		snprintf(base, sizeof(base), "batch/f%04zu", i);
		share_path(path, sizeof(path), base);
		cr_assert(files_equal(names[i], path), "%s differs", base);
	}

	/* One record per file, all from one connection (one client port). */
	cr_assert(wait_until(batch_logged, &lc, HARNESS_TIMEOUT_MS),
		  "only %ld put records logged", lc.puts);
	cr_assert_eq(lc.puts, BATCH);
	cr_assert_str_empty(lc.bad, "record without client=: %s", lc.bad);
	cr_assert_eq(lc.clients, 1, "records from %ld connections", lc.clients);
}

Test(client, put_into_read_only_share)
{
	char src[PATH_MAX], out[OUT_CAP];
	int rc;

	local_file(src, sizeof(src), "ro.bin", 100);
	rc = tcpfile_run(&d, out, sizeof(out), "put", src, "ro/ro.bin", NULL);
	cr_assert_eq(rc, 1, "put into ro: %d\n%s", rc, out);
	cr_assert(strstr(out, "553") || strcasestr(out, "read-only") ||
		  strcasestr(out, "forbidden"), "no server message:\n%s", out);
	cr_assert_eq(count_entries(d.ro_dir, ""), 0);
}

Test(client, get_missing_leaves_nothing)
{
	char dst_dir[PATH_MAX], dst[PATH_MAX], out[OUT_CAP];
	int rc;

	local_dir(dst_dir, sizeof(dst_dir), "dl");
	path_join(dst, sizeof(dst), dst_dir, "out.bin");
	rc = tcpfile_run(&d, out, sizeof(out), "get", "files/missing", dst, NULL);
	cr_assert_eq(rc, 1, "get of a missing file: %d\n%s", rc, out);
	cr_assert(strstr(out, "550") || strcasestr(out, "not found"),
		  "no server message:\n%s", out);
	cr_assert_eq(count_entries(dst_dir, ""), 0, "something left beside the destination");
}

Test(client, no_overwrite_flag)
{
	char a[PATH_MAX], b[PATH_MAX], path[PATH_MAX], out[OUT_CAP];
	int rc;

	local_file(a, sizeof(a), "a.bin", 300);
	local_file(b, sizeof(b), "b.bin", 400);
	rc = tcpfile_run(&d, out, sizeof(out), "put", "-n", a, "files/n.bin", NULL);
	cr_assert_eq(rc, 0, "first put -n: %d\n%s", rc, out);
	rc = tcpfile_run(&d, out, sizeof(out), "put", "-n", b, "files/n.bin", NULL);
	cr_assert_eq(rc, 1, "second put -n: %d\n%s", rc, out);
	cr_assert(strstr(out, "554") || strcasestr(out, "exists"), "message:\n%s", out);
	share_path(path, sizeof(path), "n.bin");
	cr_assert(files_equal(a, path), "the file was overwritten");
	/* Without -n the share allows it. */
	rc = tcpfile_run(&d, out, sizeof(out), "put", b, "files/n.bin", NULL);
	cr_assert_eq(rc, 0, "put without -n: %d\n%s", rc, out);
	cr_assert(files_equal(b, path));
}

static uint16_t dead_port(void)
{
	uint16_t port = 0;

	cr_assert_eq(harness_free_port(&port), 0);
	return port;
}

Test(client_offline, cannot_connect, .init = setup_local, .fini = teardown,
     .timeout = 60)
{
	char server[64], out[OUT_CAP];
	int rc;

	snprintf(server, sizeof(server), "127.0.0.1:%u", dead_port());
	const char *args[] = { "-s", server, "ls", "files", NULL };
	rc = tcpfile_runv(NULL, out, sizeof(out), args, NULL);
	cr_assert_eq(rc, 69, "exit %d\n%s", rc, out);
}

Test(client, env_server)
{
	char src[PATH_MAX], dead[64], out[OUT_CAP];
	int rc;

	local_file(src, sizeof(src), "envfile.bin", 10);
	rc = tcpfile_run(&d, out, sizeof(out), "put", src, "files/envfile.bin", NULL);
	cr_assert_eq(rc, 0, "put: %d\n%s", rc, out);

	const char *ls[] = { "ls", "files", NULL };
	rc = tcpfile_runv(NULL, out, sizeof(out), ls, d.server);
	cr_assert_eq(rc, 0, "ls via TCPFILE_SERVER: %d\n%s", rc, out);
	cr_assert(output_has_line(out, "envfile.bin", NULL), "ls output:\n%s", out);

	/* The variable is really used: pointing it nowhere fails ... */
	snprintf(dead, sizeof(dead), "127.0.0.1:%u", dead_port());
	rc = tcpfile_runv(NULL, out, sizeof(out), ls, dead);
	cr_assert_eq(rc, 69, "ls via a dead TCPFILE_SERVER: %d\n%s", rc, out);
	/* ... and -s wins over it. */
	const char *ls_s[] = { "-s", d.server, "ls", "files", NULL };
	rc = tcpfile_runv(NULL, out, sizeof(out), ls_s, dead);
	cr_assert_eq(rc, 0, "-s over TCPFILE_SERVER: %d\n%s", rc, out);
}

Test(client, ls_long)
{
	static const struct {
		const char *name, *size;
		size_t n;
	} files[] = {
		{ "zero", "0", 0 },
		{ "seventeen", "17", 17 },
		{ "fivethousand", "5000", 5000 },
	};
	char src[PATH_MAX], remote[64], out[OUT_CAP];
	int rc;

	for (size_t i = 0; i < NARGS(files); i++) {
		local_file(src, sizeof(src), files[i].name, files[i].n);
		snprintf(remote, sizeof(remote), "files/long/%s", files[i].name);
		rc = tcpfile_run(&d, out, sizeof(out), "put", src, remote, NULL);
		cr_assert_eq(rc, 0, "put %s: %d\n%s", files[i].name, rc, out);
	}
	rc = tcpfile_run(&d, out, sizeof(out), "ls", "-l", "files/long", NULL);
	cr_assert_eq(rc, 0, "ls -l: %d\n%s", rc, out);
	for (size_t i = 0; i < NARGS(files); i++)
		cr_assert(output_has_line(out, files[i].name, files[i].size),
			  "no line with %s and %s:\n%s", files[i].name, files[i].size, out);
}

Test(client_offline, usage_errors, .init = setup_local, .fini = teardown,
     .timeout = 60)
{
	/* Rows end in NULL (the unset last column). */
	static const char *const bad[][4] = {
		{ "frobnicate", NULL, NULL },
		{ "put", "only-one", NULL },
		{ "get", "files/x", NULL },
		{ "--no-such-option", "ls", "files" },
	};
	char out[OUT_CAP];

	for (size_t i = 0; i < NARGS(bad); i++) {
		int rc = tcpfile_runv(NULL, out, sizeof(out), bad[i], "127.0.0.1:1");

		cr_assert_eq(rc, 64, "tcpfile %s: exit %d\n%s", bad[i][0], rc, out);
	}
	const char *none[] = { "-q", NULL };
	cr_assert_eq(tcpfile_runv(NULL, out, sizeof(out), none, "127.0.0.1:1"), 64);
}

/* A one-shot fake server: accepts one connection, sends greeting (and,
 * after the first request line, answer when non-NULL), then closes. */
static int fake_server_run(const char *greeting, const char *answer)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	char server[64], out[OUT_CAP], line[512];
	struct harness_proc c;
	struct pollfd p;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int fd, rc;

	cr_assert_geq(lfd, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(lfd, 4), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	snprintf(server, sizeof(server), "127.0.0.1:%u", ntohs(sa.sin_port));

	const char *args[] = { "-s", server, "ls", "files", NULL };
	cr_assert_eq(tcpfile_spawnv(NULL, args, NULL, &c), 0, "spawning tcpfile");
	p = (struct pollfd){ .fd = lfd, .events = POLLIN };
	cr_assert_eq(poll(&p, 1, HARNESS_TIMEOUT_MS), 1, "the client never connected");
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write_full(fd, greeting, strlen(greeting)), 0);
	if (answer) {
		cr_assert_eq(socket_set_timeouts(fd, HARNESS_TIMEOUT_MS), 0);
		ssize_t n = proto_recv_line(fd, line, sizeof(line));

		cr_assert_gt(n, 0, "no request from the client");
		cr_assert_eq(write_full(fd, answer, strlen(answer)), 0);
	}
	rc = harness_proc_wait(&c, out, sizeof(out), HARNESS_TIMEOUT_MS);
	close(fd);
	close(lfd);
	return rc;
}

Test(client_offline, exit_codes_from_server_answers, .init = setup_local,
     .fini = teardown, .timeout = 60)
{
	static const char nonce[] = "0123456789abcdef0123456789abcdef";
	char greeting[128];
	int rc;

	rc = fake_server_run("HELLO WORLD\n", NULL);
	cr_assert_eq(rc, 76, "not a tcpfile server: exit %d", rc);
	rc = fake_server_run("ERR 421 shutting down\n", NULL);
	cr_assert_eq(rc, 75, "temporary refusal: exit %d", rc);
	snprintf(greeting, sizeof(greeting), "TCPFILE 1 %s\n", nonce);
	rc = fake_server_run(greeting, "WHAT IS THIS\n");
	cr_assert_eq(rc, 76, "garbage answer: exit %d", rc);
	rc = fake_server_run(greeting, "ERR 451 internal error\n");
	cr_assert_eq(rc, 75, "temporary error answer: exit %d", rc);
	rc = fake_server_run(greeting, "ERR 550 not found\n");
	cr_assert_eq(rc, 1, "permanent error answer: exit %d", rc);
}

/* A server that shuts down right after answering the last file says
 * "ERR 421 shutting down" to the then idle connection: the upload is
 * complete and acknowledged, so tcpfile must succeed. */
Test(client_offline, put_acknowledged_then_server_shuts_down, .init = setup_local,
     .fini = teardown, .timeout = 60)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	static const char body[] = "hello";
	socklen_t len = sizeof(sa);
	char server[64], out[OUT_CAP], line[512], file[PATH_MAX], hex[33], answer[128];
	struct harness_proc c;
	struct pollfd p;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int fd, rc;

	path_join(file, sizeof(file), local, "hello.txt");
	write_file(file, body, sizeof(body) - 1);
	xxh128_hex(body, sizeof(body) - 1, hex);
	snprintf(answer, sizeof(answer), "OK %zu xxh3-128:%s\nERR 421 shutting down\n",
		 sizeof(body) - 1, hex);

	cr_assert_geq(lfd, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(lfd, 4), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	snprintf(server, sizeof(server), "127.0.0.1:%u", ntohs(sa.sin_port));

	const char *args[] = { "-s", server, "put", file, "files/hello.txt", NULL };
	cr_assert_eq(tcpfile_spawnv(NULL, args, NULL, &c), 0, "spawning tcpfile");
	p = (struct pollfd){ .fd = lfd, .events = POLLIN };
	cr_assert_eq(poll(&p, 1, HARNESS_TIMEOUT_MS), 1, "the client never connected");
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(socket_set_timeouts(fd, HARNESS_TIMEOUT_MS), 0);
	cr_assert_eq(write_full(fd, "TCPFILE 1 0123456789abcdef0123456789abcdef\n", 43), 0);
	cr_assert_gt(proto_recv_line(fd, line, sizeof(line)), 0, "no PUT from the client");
	cr_assert(strncmp(line, "PUT files/hello.txt 5 ", 22) == 0, "request: %s", line);
	char got[sizeof(body) - 1];
	cr_assert_eq(read_full(fd, got, sizeof(got)), (ssize_t)sizeof(got));
	cr_assert_eq(memcmp(got, body, sizeof(got)), 0);
	cr_assert_eq(write_full(fd, answer, strlen(answer)), 0);
	close(fd);
	rc = harness_proc_wait(&c, out, sizeof(out), HARNESS_TIMEOUT_MS);
	close(lfd);
	cr_assert_eq(rc, 0, "exit %d after an acknowledged upload:\n%s", rc, out);
}
