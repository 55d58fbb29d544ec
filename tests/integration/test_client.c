/* test_client: the tcpfile command line against the real daemon (commands,
 * a pipelined batch, exit codes, what is left behind on failure) and
 * against a scripted protocol 2 server (unknown tokens, refusals, aborts,
 * streams, greetings). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client.h"        /* CLIENT_CHUNK, no code */
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

/* Forks a child that writes data[0..first) to fd, then, when go_fd >= 0,
 * waits for a byte on it before the rest: data[first..total). */
static pid_t spawn_feeder(int fd, int go_fd, const unsigned char *data, size_t first,
			  size_t total)
{
	pid_t pid = fork();
	char g;

	cr_assert_geq(pid, 0);
	if (pid > 0)
		return pid;
	if (write_full(fd, data, first) < 0 || (go_fd >= 0 && read(go_fd, &g, 1) != 1) ||
	    write_full(fd, data + first, total - first) < 0)
		_exit(1);
	_exit(0);
}

static void feeder_wait(pid_t pid)
{
	int st;

	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the feeder failed");
}

/* Starts `tcpfile -s server put - remote` with stdin_fd as its stdin and
 * TMPDIR=tmpdir, output captured as tcpfile_spawnv does. */
static void spawn_tcpfile_stdin(const char *server, const char *remote, int stdin_fd,
				const char *tmpdir, struct harness_proc *c)
{
	const char *bin = harness_bin("TCPFILE_BIN");
	int outp[2];

	cr_assert_not_null(bin, "TCPFILE_BIN is not set");
	cr_assert_eq(pipe2(outp, O_CLOEXEC), 0);
	c->pid = fork();
	cr_assert_geq(c->pid, 0);
	if (c->pid == 0) {
		if (dup2(stdin_fd, 0) < 0 || dup2(outp[1], 1) < 0 || dup2(outp[1], 2) < 0 ||
		    setenv("TMPDIR", tmpdir, 1) < 0 || unsetenv("TCPFILE_SERVER") < 0)
			_exit(127);
		execl(bin, bin, "-q", "-s", server, "put", "-", remote, (char *)NULL);
		_exit(127);
	}
	close(outp[1]);
	c->out_fd = outp[0];
}

/* put - through the real daemon: a stream of unknown size arrives whole. */
Test(client, put_stdin_stream)
{
	const size_t total = 20 * 1024 * 1024 + 3;
	unsigned char *data = random_buf(total);
	char tmpdir[PATH_MAX], path[PATH_MAX], out[OUT_CAP];
	struct harness_proc c;
	pid_t feeder;
	int in[2], rc;

	local_dir(tmpdir, sizeof(tmpdir), "tmp");
	cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
	/* Before the feeder: a failed assertion must not leave it blocked. */
	cr_assert_not_null(harness_bin("TCPFILE_BIN"), "TCPFILE_BIN is not set");
	feeder = spawn_feeder(in[1], -1, data, total, total);
	close(in[1]);
	spawn_tcpfile_stdin(d.server, "files/stream.bin", in[0], tmpdir, &c);
	close(in[0]);
	rc = harness_proc_wait(&c, out, sizeof(out), HARNESS_TIMEOUT_MS * 6);
	feeder_wait(feeder);
	cr_assert_eq(rc, 0, "put -: %d\n%s", rc, out);
	share_path(path, sizeof(path), "stream.bin");
	cr_assert(file_is(path, data, total), "the stored stream differs");
	cr_assert_eq(count_entries(tmpdir, ""), 0);
}

/* get gives the file the remote mode through the client's umask. */
Test(client, get_applies_umask)
{
	char src[PATH_MAX], got[PATH_MAX], stored[PATH_MAX], out[OUT_CAP];
	struct stat st_stored, st_got;
	int rc;

	local_file(src, sizeof(src), "shared.bin", 4321);
	cr_assert_eq(chmod(src, 0666), 0);
	rc = tcpfile_run(&d, out, sizeof(out), "put", src, "files/shared.bin", NULL);
	cr_assert_eq(rc, 0, "put: %d\n%s", rc, out);
	share_path(stored, sizeof(stored), "shared.bin");
	cr_assert_eq(stat(stored, &st_stored), 0);

	path_join(got, sizeof(got), local, "got.bin");
	umask(027);
	rc = tcpfile_run(&d, out, sizeof(out), "get", "files/shared.bin", got, NULL);
	cr_assert_eq(rc, 0, "get: %d\n%s", rc, out);
	cr_assert(files_equal(src, got));
	cr_assert_eq(stat(got, &st_got), 0);
	cr_assert_eq(st_got.st_mode & 07777, st_stored.st_mode & 0777 & ~027u,
		     "got %o from %o", st_got.st_mode & 07777, st_stored.st_mode & 07777);
	cr_assert_eq(st_got.st_mtim.tv_sec, st_stored.st_mtim.tv_sec);
	cr_assert_eq(st_got.st_mtim.tv_nsec, st_stored.st_mtim.tv_nsec);
}

/* ---- a scripted protocol 2 server --------------------------------------- *
 * The test process plays the server for one tcpfile child at a time: one
 * connection per session, requests served in order from a small in-memory
 * store, with knobs for the answers under test. */

#define FAKE_FILES 8
#define FAKE_LINE 8192

struct fake_file {
	char name[256];          /* as on the wire (our names need no escapes) */
	unsigned char *body;
	size_t len;
};

struct fake {
	int lfd;
	int fd;
	char server[64];
	/* knobs */
	const char *greeting;    /* NULL: the default v2 greeting */
	const char *extra;       /* appended to every OK, ENTRY and END: " zzz=1 ..." */
	uint64_t refuse_over;    /* PUT size= above this: ERR 552 at the header */
	const char *abort_get;   /* GET of this name: half the body, then ABORT */
	int go_fd;               /* >= 0: written to after a stream's first frame */
	const char *shrink;      /* this local file is emptied after the first
				    frame of a continue=1 body, and only then
				    does CONTINUE go */
	pid_t client_pid;        /* for the go_fd check of its descriptors */
	char tmpdir[PATH_MAX];   /* no descriptor of the client may point here */
	/* what the fake saw */
	struct fake_file files[FAKE_FILES];
	size_t n_files;
	char last_put[FAKE_LINE];
	unsigned frames;         /* DATA frames of the last body */
	uint64_t refused_bytes;  /* body bytes of refused PUTs */
	bool refused_aborted;    /* the refused body ended with ABORT */
	unsigned hellos;
	bool tmp_fd_seen;
	bool shrunk;             /* shrink was applied */
};

static struct fake fk;

static void fake_listen(struct fake *f)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);

	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	f->fd = -1;
	f->go_fd = -1;
	f->extra = "";
	f->refuse_over = UINT64_MAX;
	cr_assert_geq(f->lfd, 0);
	cr_assert_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(f->lfd, 4), 0);
	cr_assert_eq(getsockname(f->lfd, (struct sockaddr *)&sa, &len), 0);
	snprintf(f->server, sizeof(f->server), "127.0.0.1:%u", ntohs(sa.sin_port));
}

static void fake_free(struct fake *f)
{
	for (size_t i = 0; i < f->n_files; i++)
		free(f->files[i].body);
	if (f->fd >= 0)
		close(f->fd);
	if (f->lfd > 0)
		close(f->lfd);
	memset(f, 0, sizeof(*f));
}

static void setup_fake(void)
{
	setup_local();
	fake_listen(&fk);
}

static void teardown_fake(void)
{
	fake_free(&fk);
	scratch_remove(local);
}

static void fake_accept(struct fake *f)
{
	struct pollfd p = { .fd = f->lfd, .events = POLLIN };

	cr_assert_eq(poll(&p, 1, HARNESS_TIMEOUT_MS), 1, "the client never connected");
	f->fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(f->fd, 0);
	cr_assert_eq(socket_set_timeouts(f->fd, HARNESS_TIMEOUT_MS), 0);
}

static void fake_send(struct fake *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fake_send(struct fake *f, const char *fmt, ...)
{
	char line[FAKE_LINE];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	cr_assert(n > 0 && (size_t)n < sizeof(line));
	/* The client may have gone already (a refusal it reported). */
	(void)write_full(f->fd, line, (size_t)n);
}

/* One line, or false at EOF. */
static bool fake_line(struct fake *f, char *line, size_t cap)
{
	ssize_t n = proto_recv_line(f->fd, line, cap);

	if (n == -ENODATA || n == -ECONNRESET)
		return false;
	cr_assert_geq(n, 0, "reading a line: %s", strerror((int)-n));
	return true;
}

static struct fake_file *fake_find(struct fake *f, const char *name)
{
	for (size_t i = 0; i < f->n_files; i++)
		if (strcmp(f->files[i].name, name) == 0)
			return &f->files[i];
	return NULL;
}

static struct fake_file *fake_store(struct fake *f, const char *name,
				    const void *body, size_t len)
{
	struct fake_file *ff = fake_find(f, name);

	if (!ff) {
		cr_assert_lt(f->n_files, FAKE_FILES);
		ff = &f->files[f->n_files++];
		snprintf(ff->name, sizeof(ff->name), "%s", name);
	}
	free(ff->body);
	ff->body = malloc(len ? len : 1);
	cr_assert_not_null(ff->body);
	memcpy(ff->body, body, len);
	ff->len = len;
	return ff;
}

/* True when one of pid's descriptors is a file under dir. */
static bool fd_under(pid_t pid, const char *dir)
{
	char path[64], target[PATH_MAX];
	bool found = false;
	struct dirent *e;
	DIR *fds;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	fds = opendir(path);
	cr_assert_not_null(fds, "%s: %s", path, strerror(errno));
	while ((e = readdir(fds)) != NULL) {
		char link[PATH_MAX];
		ssize_t n;

		snprintf(link, sizeof(link), "%s/%s", path, e->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		found = found || strncmp(target, dir, strlen(dir)) == 0;
	}
	closedir(fds);
	return found;
}

/* Reads body frames up to END or ABORT.  keep: collect the bytes into
 * *body (malloc'd).  Returns true for END (its line in end), false for
 * ABORT. */
static bool fake_body(struct fake *f, unsigned char **body, size_t *len,
		      uint64_t *count, char *end, size_t end_cap)
{
	char line[FAKE_LINE];
	size_t cap = 0;

	*len = 0;
	*count = 0;
	f->frames = 0;
	for (;;) {
		uint64_t n;

		cr_assert(fake_line(f, line, sizeof(line)), "EOF inside a body");
		if (strncmp(line, "END", 3) == 0) {
			snprintf(end, end_cap, "%s", line);
			return true;
		}
		if (strncmp(line, "ABORT", 5) == 0)
			return false;
		cr_assert(strncmp(line, "DATA ", 5) == 0, "not a frame: %s", line);
		n = strtoull(line + 5, NULL, 10);
		cr_assert(n >= 1 && n <= 16777216, "bad DATA: %s", line);
		if (body) {
			if (*len + n > cap) {
				cap = (*len + n) * 2;
				*body = realloc(*body, cap);
				cr_assert_not_null(*body);
			}
			cr_assert_eq(read_full(f->fd, *body + *len, n), (ssize_t)n);
		} else {
			char *scratch = malloc(n);

			cr_assert_not_null(scratch);
			cr_assert_eq(read_full(f->fd, scratch, n), (ssize_t)n);
			free(scratch);
		}
		*len += n;
		*count += n;
		f->frames++;
		if (f->frames == 1 && f->shrink) {
			cr_assert_eq(truncate(f->shrink, 0), 0);
			fake_send(f, "CONTINUE\n");
			f->shrink = NULL;
			f->shrunk = true;
		}
		if (f->frames == 1 && f->go_fd >= 0) {
			f->tmp_fd_seen = fd_under(f->client_pid, f->tmpdir);
			cr_assert_eq(write(f->go_fd, "g", 1), 1);
			close(f->go_fd);
			f->go_fd = -1;
		}
	}
}

static void fake_put(struct fake *f, const char *line)
{
	char name[256], end[FAKE_LINE], hex[33], want[64];
	unsigned char *body = NULL;
	const char *size_tok = strstr(line, " size=");
	uint64_t size = size_tok ? strtoull(size_tok + 6, NULL, 10) : 0;
	size_t len;
	uint64_t count;

	snprintf(f->last_put, sizeof(f->last_put), "%s", line);
	cr_assert_eq(sscanf(line, "PUT %255s", name), 1);
	if (size_tok && size > f->refuse_over) {
		/* Refused at the header: the answer goes at once, the body is
		 * read and dropped up to its end. */
		fake_send(f, "ERR 552 too large: over the fake's limit\n");
		f->refused_aborted = !fake_body(f, NULL, &len, &count, end, sizeof(end));
		f->refused_bytes += count;
		return;
	}
	if (strstr(line, " continue=1") && !f->shrink)
		fake_send(f, "CONTINUE\n");
	if (!fake_body(f, &body, &len, &count, end, sizeof(end))) {
		fake_send(f, "ERR 450 aborted: the client abandoned the body\n");
		free(body);
		return;
	}
	xxh128_hex(body, len, hex);
	snprintf(want, sizeof(want), "END digest=xxh3-128:%s", hex);
	cr_assert_str_eq(end, want, "END of %s", name);
	if (size_tok)
		cr_assert_eq(len, size, "size= of %s", name);
	fake_store(f, name, body, len);
	free(body);
	fake_send(f, "OK size=%zu digest=xxh3-128:%s%s\n", len, hex, f->extra);
}

static void fake_get(struct fake *f, const char *line)
{
	char name[256], hex[33];
	struct fake_file *ff;
	size_t half;

	cr_assert_eq(sscanf(line, "GET %255s", name), 1);
	ff = fake_find(f, name);
	if (!ff) {
		fake_send(f, "ERR 550 not found%s\n", f->extra);
		return;
	}
	fake_send(f, "OK size=%zu mtime=1700000000.25 mode=0666%s\n", ff->len, f->extra);
	half = f->abort_get && strcmp(f->abort_get, name) == 0 ? ff->len / 2 : ff->len;
	for (size_t off = 0; off < half;) {
		size_t n = half - off < 65536 ? half - off : 65536;

		fake_send(f, "DATA %zu\n", n);
		cr_assert_eq(write_full(f->fd, ff->body + off, n), 0);
		off += n;
	}
	if (half < ff->len) {
		fake_send(f, "ABORT 451 internal error: the file shrank\n");
		return;
	}
	xxh128_hex(ff->body, ff->len, hex);
	fake_send(f, "END digest=xxh3-128:%s%s\n", hex, f->extra);
}

static void fake_request(struct fake *f, const char *line)
{
	char name[256];

	if (strncmp(line, "PUT ", 4) == 0) {
		fake_put(f, line);
	} else if (strncmp(line, "GET ", 4) == 0) {
		fake_get(f, line);
	} else if (sscanf(line, "STAT %255s", name) == 1) {
		struct fake_file *ff = fake_find(f, name);

		if (ff)
			fake_send(f, "OK type=f size=%zu mtime=1700000000.5 mode=0640%s\n",
				  ff->len, f->extra);
		else
			fake_send(f, "ERR 550 not found\n");
	} else if (strncmp(line, "LIST ", 5) == 0) {
		fake_send(f, "OK%s\n", f->extra);
		/* Newest first: the client sorts. */
		for (size_t i = f->n_files; i-- > 0;)
			fake_send(f, "ENTRY %s type=f size=%zu mtime=1700000000.0 mode=0644%s\n",
				  strrchr(f->files[i].name, '/') + 1, f->files[i].len, f->extra);
		fake_send(f, "END count=%zu%s\n", f->n_files, f->extra);
	} else if (sscanf(line, "DEL %255s", name) == 1) {
		struct fake_file *ff = fake_find(f, name);

		cr_assert_not_null(ff, "DEL of %s", name);
		free(ff->body);
		*ff = f->files[--f->n_files];
		fake_send(f, "OK%s\n", f->extra);
	} else {
		cr_assert_fail("unexpected request: %s", line);
	}
}

/* Serves one connection: the client's HELLO must come without waiting for
 * the greeting. */
static void fake_session(struct fake *f)
{
	char line[FAKE_LINE];

	fake_accept(f);
	cr_assert(fake_line(f, line, sizeof(line)), "no HELLO");
	cr_assert(strncmp(line, "HELLO 2 client=tcpfile/", 23) == 0, "hello: %s", line);
	f->hellos++;
	fake_send(f, "%s\n", f->greeting ? f->greeting
					 : "TCPFILE 2,7 server=fake/1 zzz-cap frob=1 auth=NOPE");
	fake_send(f, "OK version=2%s\n", f->extra);
	while (fake_line(f, line, sizeof(line)))
		fake_request(f, line);
	close(f->fd);
	f->fd = -1;
}

/* Runs tcpfile -s FAKE args... against one fake session.  Returns its
 * exit status; its output lands in out. */
static int fake_run(struct fake *f, char *out, size_t cap, const char *const *args)
{
	const char *argv[16] = { "-s", f->server };
	struct harness_proc c;
	size_t n = 2;

	for (size_t i = 0; args[i]; i++) {
		cr_assert_lt(n, NARGS(argv) - 1);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	cr_assert_eq(tcpfile_spawnv(NULL, argv, NULL, &c), 0, "spawning tcpfile");
	fake_session(f);
	return harness_proc_wait(&c, out, cap, HARNESS_TIMEOUT_MS);
}

TestSuite(client_fake, .init = setup_fake, .fini = teardown_fake, .timeout = 120);

/* The forward-compatibility rule: unknown capabilities in the greeting,
 * unknown tokens in every answer, ENTRY and END are ignored. */
Test(client_fake, unknown_tokens_and_capabilities)
{
	char small[PATH_MAX], big[PATH_MAX], dir[PATH_MAX], path[PATH_MAX];
	char out[OUT_CAP];
	struct stat st;
	int rc;

	fk.extra = " zzz=1 frob x-future=a=b";
	local_file(small, sizeof(small), "small.bin", 5000);
	local_file(big, sizeof(big), "big.bin", 3 * CLIENT_CHUNK + 17);

	rc = fake_run(&fk, out, sizeof(out),
		      (const char *[]){ "put", small, big, "files/d/", NULL });
	cr_assert_eq(rc, 0, "put: %d\n%s", rc, out);
	cr_assert_eq(fk.n_files, 2);
	cr_assert(strstr(fk.last_put, " continue=1"), "large PUT: %s", fk.last_put);
	cr_assert_geq(fk.frames, 4, "%u frames", fk.frames);

	rc = fake_run(&fk, out, sizeof(out), (const char *[]){ "stat", "files/d/small.bin", NULL });
	cr_assert_eq(rc, 0, "stat: %d\n%s", rc, out);
	cr_assert(strstr(out, "size: 5000") && strstr(out, "mode: 0640"), "stat:\n%s", out);

	rc = fake_run(&fk, out, sizeof(out), (const char *[]){ "ls", "files/d", NULL });
	cr_assert_eq(rc, 0, "ls: %d\n%s", rc, out);
	cr_assert_str_eq(out, "big.bin\nsmall.bin\n");

	local_dir(dir, sizeof(dir), "got");
	umask(022);
	rc = fake_run(&fk, out, sizeof(out),
		      (const char *[]){ "get", "files/d/small.bin", "files/d/big.bin", dir, NULL });
	cr_assert_eq(rc, 0, "get: %d\n%s", rc, out);
	path_join(path, sizeof(path), dir, "small.bin");
	cr_assert(files_equal(small, path));
	/* 0666 from the server, through the umask 022, as cp does. */
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0644, "mode %o", st.st_mode & 07777);
	cr_assert_eq(st.st_mtim.tv_sec, 1700000000);
	cr_assert_eq(st.st_mtim.tv_nsec, 250000000);
	path_join(path, sizeof(path), dir, "big.bin");
	cr_assert(files_equal(big, path));

	rc = fake_run(&fk, out, sizeof(out),
		      (const char *[]){ "rm", "files/d/small.bin", "files/d/big.bin", NULL });
	cr_assert_eq(rc, 0, "rm: %d\n%s", rc, out);
	cr_assert_eq(fk.n_files, 0);
	cr_assert_eq(fk.hellos, 5);
}

/* A refusal at the header stops the body: at most one chunk goes out,
 * then ABORT, and the next file follows on the same connection. */
Test(client_fake, refused_put_stops_after_one_chunk)
{
	char big[PATH_MAX], small[PATH_MAX], out[OUT_CAP];
	int fd, rc;

	path_join(big, sizeof(big), local, "huge.bin");
	fd = open(big, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 64 << 20), 0);
	close(fd);
	local_file(small, sizeof(small), "after.bin", 777);
	fk.refuse_over = 1 << 20;

	rc = fake_run(&fk, out, sizeof(out), (const char *[]){ "put", big, small, "files/", NULL });
	cr_assert_eq(rc, 1, "exit %d\n%s", rc, out);
	cr_assert(strstr(out, "552"), "no refusal reported:\n%s", out);
	cr_assert(fk.refused_aborted, "the refused body did not end with ABORT");
	cr_assert_leq(fk.refused_bytes, CLIENT_CHUNK, "%" PRIu64 " body bytes after a refusal",
		      fk.refused_bytes);
	cr_assert_eq(fk.hellos, 1);
	cr_assert_eq(fk.n_files, 1);
	cr_assert_str_eq(fk.files[0].name, "files/after.bin");
	cr_assert_eq(fk.files[0].len, 777);
}

/* A file that shrinks while it is sent is ABORTed by the client; the
 * server's ERR 450 is the expected answer, the local reason is what is
 * reported, and the next file goes on on the same connection. */
Test(client_fake, shrinking_file_aborted)
{
	char big[PATH_MAX], small[PATH_MAX], out[OUT_CAP];
	int rc;

	local_file(big, sizeof(big), "shrinks.bin", 2 * CLIENT_CHUNK + 1);
	local_file(small, sizeof(small), "next.bin", 99);
	fk.shrink = big;

	rc = fake_run(&fk, out, sizeof(out), (const char *[]){ "put", big, small, "files/", NULL });
	cr_assert_eq(rc, 1, "exit %d\n%s", rc, out);
	cr_assert(fk.shrunk);
	cr_assert(strstr(out, "shrank"), "no local reason:\n%s", out);
	cr_assert_null(strstr(out, "450"), "the expected 450 was reported:\n%s", out);
	cr_assert_eq(fk.hellos, 1);
	cr_assert_eq(fk.n_files, 1);
	cr_assert_str_eq(fk.files[0].name, "files/next.bin");
}

/* A download the server ABORTs is reported and leaves no temporary file;
 * the next GET on the same connection works. */
Test(client_fake, aborted_get_leaves_nothing)
{
	char dir[PATH_MAX], path[PATH_MAX], out[OUT_CAP];
	unsigned char *a = random_buf(300000), *b = random_buf(1234);
	int rc;

	fake_store(&fk, "files/a.bin", a, 300000);
	fake_store(&fk, "files/b.bin", b, 1234);
	fk.abort_get = "files/a.bin";
	local_dir(dir, sizeof(dir), "dl");

	rc = fake_run(&fk, out, sizeof(out),
		      (const char *[]){ "get", "files/a.bin", "files/b.bin", dir, NULL });
	cr_assert_eq(rc, 75, "exit %d\n%s", rc, out);
	cr_assert(strstr(out, "451") && strstr(out, "shrank"), "not reported:\n%s", out);
	cr_assert_eq(count_entries(dir, ""), 1, "something beside b.bin:\n%s", out);
	path_join(path, sizeof(path), dir, "b.bin");
	cr_assert(file_is(path, b, 1234));
}

/* put - streams stdin as it comes: no size=, frames, and no copy of it. */
Test(client_fake, put_stdin_streams)
{
	const size_t first = 100000, total = 3 * 1024 * 1024 + 5;
	unsigned char *data = random_buf(total);
	char tmpdir[PATH_MAX], out[OUT_CAP];
	int in[2], go[2];
	struct harness_proc c;
	pid_t feeder;
	int rc;

	path_join(tmpdir, sizeof(tmpdir), local, "tmp");
	cr_assert_eq(mkdir(tmpdir, 0700), 0);
	cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
	/* The feeder holds the rest back until the fake has a first frame:
	 * a client that read stdin to its end first would never send it. */
	cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
	/* Before the feeder: a failed assertion must not leave it blocked. */
	cr_assert_not_null(harness_bin("TCPFILE_BIN"), "TCPFILE_BIN is not set");
	feeder = spawn_feeder(in[1], go[0], data, first, total);
	close(in[1]);
	close(go[0]);
	spawn_tcpfile_stdin(fk.server, "files/stream.bin", in[0], tmpdir, &c);
	close(in[0]);
	fk.go_fd = go[1];
	fk.client_pid = c.pid;
	snprintf(fk.tmpdir, sizeof(fk.tmpdir), "%s", tmpdir);

	fake_session(&fk);
	rc = harness_proc_wait(&c, out, sizeof(out), HARNESS_TIMEOUT_MS);
	cr_assert_eq(rc, 0, "exit %d\n%s", rc, out);
	feeder_wait(feeder);

	cr_assert_null(strstr(fk.last_put, "size="), "PUT of a stream: %s", fk.last_put);
	cr_assert(strstr(fk.last_put, " continue=1"), "PUT of a stream: %s", fk.last_put);
	cr_assert_geq(fk.frames, 2, "%u frames", fk.frames);
	cr_assert(!fk.tmp_fd_seen, "the client holds a file in $TMPDIR");
	cr_assert_eq(count_entries(tmpdir, ""), 0);
	cr_assert_eq(fk.n_files, 1);
	cr_assert_eq(fk.files[0].len, total);
	cr_assert_eq(memcmp(fk.files[0].body, data, total), 0);
}

/* ---- one-line servers: greetings and answers ---------------------------- */

/* Accepts one connection of a `tcpfile ls files`, reads its HELLO, sends
 * greeting; then, when answer is non-NULL, the HELLO's answer, reads the
 * request and sends answer.  Returns the exit status. */
static int fake_oneshot(const char *greeting, const char *answer, char *out, size_t cap)
{
	const char *args[] = { "-s", fk.server, "ls", "files", NULL };
	char line[FAKE_LINE];
	struct harness_proc c;

	cr_assert_eq(tcpfile_spawnv(NULL, args, NULL, &c), 0, "spawning tcpfile");
	fake_accept(&fk);
	cr_assert(fake_line(&fk, line, sizeof(line)), "no HELLO");
	fake_send(&fk, "%s", greeting);
	if (answer) {
		fake_send(&fk, "OK version=2\n");
		cr_assert(fake_line(&fk, line, sizeof(line)), "no request from the client");
		fake_send(&fk, "%s", answer);
	}
	/* Closing with unread bytes would reset the connection. */
	shutdown(fk.fd, SHUT_WR);
	while (fake_line(&fk, line, sizeof(line)))
		;
	close(fk.fd);
	fk.fd = -1;
	return harness_proc_wait(&c, out, cap, HARNESS_TIMEOUT_MS);
}

Test(client_fake, exit_codes_from_greetings)
{
	char out[OUT_CAP];
	int rc;

	rc = fake_oneshot("TCPFILE 1 0123456789abcdef0123456789abcdef\n", NULL, out, sizeof(out));
	cr_assert_eq(rc, 76, "v1 server: exit %d\n%s", rc, out);
	cr_assert(strstr(out, "speaks protocol 1, this client speaks 2"), "message:\n%s", out);
	rc = fake_oneshot("ERR 421 busy: all workers are busy, try again later\n", NULL,
			  out, sizeof(out));
	cr_assert_eq(rc, 75, "busy: exit %d\n%s", rc, out);
	cr_assert(strstr(out, "all workers are busy"), "message:\n%s", out);
	rc = fake_oneshot("ERR 553 forbidden: host not allowed\n", NULL, out, sizeof(out));
	cr_assert_eq(rc, 1, "refused host: exit %d\n%s", rc, out);
	cr_assert(strstr(out, "host not allowed"), "message:\n%s", out);
	rc = fake_oneshot("SSH-2.0-OpenSSH_9.6\n", NULL, out, sizeof(out));
	cr_assert_eq(rc, 76, "not a tcpfile server: exit %d\n%s", rc, out);
}

Test(client_fake, exit_codes_from_answers)
{
	static const char greeting[] = "TCPFILE 2 server=fake/1\n";
	char out[OUT_CAP];
	int rc;

	rc = fake_oneshot(greeting, "WHAT IS THIS\n", out, sizeof(out));
	cr_assert_eq(rc, 76, "garbage answer: exit %d\n%s", rc, out);
	rc = fake_oneshot(greeting, "ERR 451 internal error\n", out, sizeof(out));
	cr_assert_eq(rc, 75, "temporary error answer: exit %d\n%s", rc, out);
	rc = fake_oneshot(greeting, "ERR 550 not found\n", out, sizeof(out));
	cr_assert_eq(rc, 1, "permanent error answer: exit %d\n%s", rc, out);
	rc = fake_oneshot(greeting, "OK\nENTRY a type=f size=1 mtime=0 mode=0644\nEND count=2\n",
			  out, sizeof(out));
	cr_assert_eq(rc, 76, "a listing short of its count: exit %d\n%s", rc, out);
	rc = fake_oneshot(greeting, "OK\nABORT 451 internal error: readdir failed\n",
			  out, sizeof(out));
	cr_assert_eq(rc, 75, "an aborted listing: exit %d\n%s", rc, out);
}

/* A server that shuts down right after answering the last file says
 * "ERR 421 shutting down" to the then idle connection: the upload is
 * complete and acknowledged, so tcpfile must succeed. */
Test(client_fake, put_acknowledged_then_server_shuts_down)
{
	static const char body[] = "hello";
	char out[OUT_CAP], line[FAKE_LINE], file[PATH_MAX], hex[33];
	struct harness_proc c;
	char got[sizeof(body) - 1];
	int rc;

	path_join(file, sizeof(file), local, "hello.txt");
	write_file(file, body, sizeof(body) - 1);
	xxh128_hex(body, sizeof(body) - 1, hex);

	const char *args[] = { "-s", fk.server, "put", file, "files/hello.txt", NULL };
	cr_assert_eq(tcpfile_spawnv(NULL, args, NULL, &c), 0, "spawning tcpfile");
	fake_accept(&fk);
	fake_send(&fk, "TCPFILE 2 server=fake/1\nOK version=2\n");
	cr_assert(fake_line(&fk, line, sizeof(line)) && strncmp(line, "HELLO 2 ", 8) == 0);
	cr_assert(fake_line(&fk, line, sizeof(line)), "no PUT from the client");
	cr_assert(strncmp(line, "PUT files/hello.txt size=5 ", 27) == 0, "request: %s", line);
	cr_assert_null(strstr(line, "continue=1"), "a small file waits: %s", line);
	cr_assert(fake_line(&fk, line, sizeof(line)));
	cr_assert_str_eq(line, "DATA 5");
	cr_assert_eq(read_full(fk.fd, got, sizeof(got)), (ssize_t)sizeof(got));
	cr_assert_eq(memcmp(got, body, sizeof(got)), 0);
	cr_assert(fake_line(&fk, line, sizeof(line)));
	fake_send(&fk, "OK size=5 digest=xxh3-128:%s\nERR 421 shutting down\n", hex);
	close(fk.fd);
	fk.fd = -1;
	rc = harness_proc_wait(&c, out, sizeof(out), HARNESS_TIMEOUT_MS);
	cr_assert_eq(rc, 0, "exit %d after an acknowledged upload:\n%s", rc, out);
}
