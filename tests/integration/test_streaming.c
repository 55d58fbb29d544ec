/* test_streaming: large bodies through the real daemon and tcpfile: a
 * refused 1 GiB upload costs at most one chunk, `put -` streams a pipe
 * without a temporary copy, a GET of an unhashed 1 GiB file starts at
 * once, and a file growing during a GET is sent as it was.
 *
 * Sizes: `put -` sends 2 GiB, or 256 MiB when ITEST_SANITIZED is set
 * (tests/meson.build sets it for builds with b_sanitize), or
 * ITEST_STREAM_MIB MiB when that is set. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "harness.h"
#include "netio.h"
#include "protocol.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define GIB (1024ull * MIB)
#define IO_TIMEOUT_MS 60000
#define LINE_MAX_LEN PROTO_MAX_LINE
#define BIG_RUN_TIMEOUT_MS 300000

static struct daemon d;
static char local[PATH_MAX];
static pid_t generator = -1;

static void setup(void)
{
	char extra[PATH_MAX + 64], dir[PATH_MAX];

	scratch_create(local, sizeof(local), "itstream");
	path_join(dir, sizeof(dir), local, "small");
	cr_assert_eq(mkdir(dir, 0755), 0);
	snprintf(extra, sizeof(extra), "[small]\npath = %s\nmax_file_size = 1M\nanonymous = write\n", dir);
	start_daemon(&d, &(struct daemon_opts){ .workers = 2, .shares_extra = extra });
}

static void teardown(void)
{
	if (generator > 0) {
		kill(generator, SIGKILL);
		waitpid(generator, NULL, 0);
		generator = -1;
	}
	test_release_all();
	daemon_stop(&d);
	scratch_remove(local);
}

TestSuite(streaming, .init = setup, .fini = teardown, .timeout = 600);

/* A sparse file of size bytes with random blocks at both ends. */
static void make_sparse(const char *path, uint64_t size)
{
	unsigned char *p = random_buf(MIB);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	cr_assert_eq(pwrite_full(fd, p, MIB, 0), 0);
	cr_assert_eq(pwrite_full(fd, p, MIB, (off_t)(size - MIB)), 0);
	cr_assert_eq(close(fd), 0);
	test_free(p);
}

/* ---- a refused 1 GiB upload -------------------------------------------- */

struct log_rec {
	const char *path;
	uint64_t bytes;
	char line[LINE_MAX_LEN];
};

static bool log_rec_cond(void *arg)
{
	struct log_rec *r = arg;

	return daemon_log_op_bytes(&d, "put", r->path, &r->bytes, r->line,
				   sizeof(r->line)) == 0;
}

static void refused_upload(const char *remote, const char *code)
{
	char src[PATH_MAX], out[4096];
	struct log_rec rec = { .path = remote };
	int64_t t0, ms;
	int rc;

	path_join(src, sizeof(src), local, "huge.bin");
	make_sparse(src, GIB);
	t0 = harness_now_ms();
	rc = tcpfile_run(&d, out, sizeof(out), "put", src, remote, NULL);
	ms = harness_now_ms() - t0;
	cr_assert(rc != 0, "tcpfile put %s succeeded:\n%s", remote, out);
	cr_assert_not_null(strstr(out, code), "tcpfile did not report %s:\n%s", code, out);
	cr_assert(wait_until(log_rec_cond, &rec, HARNESS_TIMEOUT_MS),
		  "no log record of the refused PUT");
	cr_log_info("refused 1 GiB PUT %s: %" PRIu64 " body bytes read by the server, "
		    "client done in %lld ms (%s)", remote, rec.bytes, (long long)ms, rec.line);
	/* At most one frame plus what a round trip lets through; a client
	 * following continue=1 sends none at all before the refusal. */
	cr_assert_leq(rec.bytes, PROTO_MAX_CHUNK, "the server read %" PRIu64 " bytes",
		      rec.bytes);
	cr_assert_not_null(strstr(rec.line, "refused"), "%s", rec.line);
}

Test(streaming, refused_1gib_put_too_large_costs_at_most_one_chunk)
{
	refused_upload("small/huge.bin", "552");
	cr_assert_eq(count_entries(d.share_dir, ""), 0);
}

Test(streaming, refused_1gib_put_read_only_costs_at_most_one_chunk)
{
	refused_upload("ro/huge.bin", "553");
	cr_assert_eq(count_entries(d.ro_dir, ""), 0);
}

/* ---- put - from a pipe -------------------------------------------------- */

static uint64_t stream_size(void)
{
	const char *mib = getenv("ITEST_STREAM_MIB");
	char *end;

	if (mib != NULL && *mib != '\0') {
		unsigned long long v = strtoull(mib, &end, 10);

		cr_assert(*end == '\0' && v > 0, "ITEST_STREAM_MIB=%s", mib);
		return v * MIB;
	}
	return getenv("ITEST_SANITIZED") != NULL ? 256ull * MIB : 2 * GIB;
}

/* The generator child: writes size bytes of a xorshift pattern to out,
 * then the XXH3-128 of exactly those bytes (32 hex + LF) to result.
 * Plain calls and _exit only: this is a fork of the test process. */
static void generator_run(int out, int result, uint64_t size)
{
	static uint64_t buf[MIB / 8];
	uint64_t x = 0x9e3779b97f4a7c15ull, left = size;
	XXH3_state_t *st = XXH3_createState();
	XXH128_canonical_t c;
	char hex[34];

	if (st == NULL || XXH3_128bits_reset(st) != XXH_OK)
		_exit(2);
	while (left > 0) {
		size_t n = left < sizeof(buf) ? (size_t)left : sizeof(buf);

		for (size_t i = 0; i < sizeof(buf) / 8; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[i] = x;
		}
		if (XXH3_128bits_update(st, buf, n) != XXH_OK || write_full(out, buf, n) < 0)
			_exit(3);
		left -= n;
	}
	close(out);
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
	for (size_t i = 0; i < sizeof(c.digest); i++)
		snprintf(hex + 2 * i, 3, "%02x", c.digest[i]);
	hex[32] = '\n';
	_exit(write_full(result, hex, 33) < 0 ? 4 : 0);
}

/* Watches the client while it runs: its TMPDIR stays empty and it holds
 * no file in it, nor any deleted (unlinked temporary) file. */
struct spool_watch {
	pid_t pid;
	const char *tmpdir;
	char bad[PATH_MAX + 64];
};

static bool spool_watch_cond(void *arg)
{
	struct spool_watch *w = arg;
	char dir[64], link[PATH_MAX], target[PATH_MAX];
	long n = count_entries(w->tmpdir, "");

	if (n != 0 && w->bad[0] == '\0')
		snprintf(w->bad, sizeof(w->bad), "%ld entries in TMPDIR", n);
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)w->pid);
	for (int fd = 0; fd < 64 && w->bad[0] == '\0'; fd++) {
		ssize_t len;

		snprintf(link, sizeof(link), "%s/%d", dir, fd);
		len = readlink(link, target, sizeof(target) - 1);
		if (len < 0)
			continue;
		target[len] = '\0';
		/* Criterion's own shared-memory arena is inherited by every
		 * child of a test: not a spool of tcpfile's. */
		if (strncmp(target, "/dev/shm/bxf_arena", 18) == 0)
			continue;
		if (strncmp(target, w->tmpdir, strlen(w->tmpdir)) == 0 ||
		    strstr(target, "(deleted)") != NULL)
			snprintf(w->bad, sizeof(w->bad), "fd %d -> %s", fd, target);
	}
	return !proc_is_alive(w->pid);
}

Test(streaming, put_stdin_streams_without_a_spool_file)
{
	uint64_t size = stream_size();
	char tmpdir[PATH_MAX], tmpenv[PATH_MAX + 8], out[4096], dst[PATH_MAX];
	char want[40] = "", got[33];
	const char *argv[] = { "put", "-", "files/stream.bin", NULL };
	const char *env[] = { tmpenv, NULL };
	struct spool_watch w = { 0 };
	struct harness_proc proc;
	int data[2], result[2], rc, status;
	int64_t t0, ms;
	struct stat st;
	ssize_t n;

	path_join(tmpdir, sizeof(tmpdir), local, "tmp");
	cr_assert_eq(mkdir(tmpdir, 0700), 0);
	snprintf(tmpenv, sizeof(tmpenv), "TMPDIR=%s", tmpdir);
	cr_assert_eq(pipe2(data, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(result, O_CLOEXEC), 0);

	generator = fork();
	cr_assert_geq(generator, 0);
	if (generator == 0) {
		close(data[0]);
		close(result[0]);
		generator_run(data[1], result[1], size);
	}
	close(data[1]);
	close(result[1]);

	t0 = harness_now_ms();
	rc = tcpfile_spawn_env(&d, argv, env, data[0], &proc);
	close(data[0]);
	cr_assert_eq(rc, 0, "starting tcpfile: %s", strerror(-rc));
	w.pid = proc.pid;
	w.tmpdir = tmpdir;
	(void)wait_until(spool_watch_cond, &w, BIG_RUN_TIMEOUT_MS);
	rc = harness_proc_wait(&proc, out, sizeof(out), HARNESS_TIMEOUT_MS);
	ms = harness_now_ms() - t0;
	cr_assert_eq(rc, 0, "tcpfile put - (%" PRIu64 " bytes): %d\n%s", size, rc, out);
	cr_assert_eq(w.bad[0], '\0', "tcpfile spooled stdin: %s", w.bad);
	cr_assert_eq(count_entries(tmpdir, ""), 0, "TMPDIR is not empty");

	n = read_full(result[0], want, 33);
	close(result[0]);
	cr_assert_eq(n, 33, "the generator's digest");
	want[32] = '\0';
	cr_assert_eq(waitpid(generator, &status, 0), generator);
	generator = -1;
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "generator: %d", status);

	path_join(dst, sizeof(dst), d.share_dir, "stream.bin");
	cr_assert_eq(stat(dst, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, size);
	cr_assert_eq(file_xxh128_hex(dst, got), 0);
	cr_assert_str_eq(got, want, "the stored stream differs");
	cr_log_info("put - of %" PRIu64 " MiB from a pipe in %lld ms", size / MIB,
		    (long long)ms);
}

/* ---- GET: first byte without hashing first ------------------------------ */

Test(streaming, get_1gib_unhashed_first_byte_is_fast)
{
	char path[PATH_MAX], xxh[DIGEST_TEXT_LEN], sha[DIGEST_TEXT_LEN];
	char status[LINE_MAX_LEN], want[32], v[32];
	struct body_info *bi = test_alloc(sizeof(*bi));
	struct raw_conn *c;
	int64_t t0, ttfb, hash_ms;

	/* Written beside the daemon, so no cached digest exists. */
	path_join(path, sizeof(path), d.share_dir, "big.bin");
	make_sparse(path, GIB);

	c = raw_conn_open(&d, IO_TIMEOUT_MS, NULL, 0);
	t0 = harness_now_ms();
	raw_conn_cmd(c, status, sizeof(status), "GET files/big.bin alg=sha256");
	cr_assert(strncmp(status, "OK ", 3) == 0, "GET: %s", status);
	snprintf(want, sizeof(want), "%llu", (unsigned long long)GIB);
	cr_assert(reply_token(status, "size", v, sizeof(v)) && strcmp(v, want) == 0,
		  "GET: %s", status);
	raw_conn_read_body(c, -1, NULL, 0, bi);
	ttfb = bi->first_byte_ms - t0;
	body_check(bi, GIB);
	raw_conn_close(c);

	t0 = harness_now_ms();
	digest_file(path, xxh, sha);
	hash_ms = harness_now_ms() - t0;
	cr_assert_str_eq(bi->digest, sha, "the trailer names other bytes");
	cr_log_info("GET of an unhashed 1 GiB file: first body byte after %lld ms; "
		    "hashing it here takes %lld ms", (long long)ttfb, (long long)hash_ms);
	cr_assert_lt(ttfb, 1000, "first byte after %lld ms", (long long)ttfb);
	cr_assert_lt(ttfb, hash_ms, "first byte after %lld ms, a full sha256 takes %lld ms",
		     (long long)ttfb, (long long)hash_ms);
}

/* ---- GET of a growing file ---------------------------------------------- */

struct appender {
	int fd;
	atomic_bool stop;
	atomic_ulong chunks;
	int err;
};

static void *appender_run(void *arg)
{
	static unsigned char junk[64 * KIB];
	struct appender *a = arg;

	memset(junk, 0x5a, sizeof(junk));
	while (!atomic_load(&a->stop)) {
		int r = write_full(a->fd, junk, sizeof(junk));

		if (r < 0) {
			a->err = -r;
			break;
		}
		atomic_fetch_add(&a->chunks, 1);
		/* Bounded: the test reads 32 MiB meanwhile. */
		if (atomic_load(&a->chunks) >= 1024)
			break;
	}
	return NULL;
}

static bool appended_cond(void *arg)
{
	struct appender *a = arg;

	return atomic_load(&a->chunks) > 0 || a->err != 0;
}

Test(streaming, get_of_growing_file_sends_the_start_snapshot)
{
	const size_t n = 32 * MIB;
	unsigned char *p = random_buf(n), *got = test_alloc(n);
	char path[PATH_MAX], status[LINE_MAX_LEN], xxh[DIGEST_TEXT_LEN], want[32], v[32];
	struct body_info *bi = test_alloc(sizeof(*bi));
	struct appender a = { .fd = -1 };
	struct raw_conn *c;
	pthread_t t;
	struct stat st;

	path_join(path, sizeof(path), d.share_dir, "grows.log");
	write_file(path, p, n);
	digest_buf(p, n, xxh, NULL);
	a.fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	cr_assert_geq(a.fd, 0);

	c = raw_conn_open(&d, IO_TIMEOUT_MS, NULL, 0);
	raw_conn_cmd(c, status, sizeof(status), "GET files/grows.log");
	snprintf(want, sizeof(want), "%zu", n);
	cr_assert(reply_token(status, "size", v, sizeof(v)) && strcmp(v, want) == 0,
		  "GET: %s", status);
	/* The GET has begun (32 MiB cannot all sit in socket buffers yet):
	 * grow the file from now on, while we read. */
	atomic_init(&a.stop, false);
	atomic_init(&a.chunks, 0);
	cr_assert_eq(pthread_create(&t, NULL, appender_run, &a), 0);
	cr_assert(wait_until(appended_cond, &a, HARNESS_TIMEOUT_MS), "nothing appended");
	raw_conn_read_body(c, -1, got, n, bi);
	atomic_store(&a.stop, true);
	cr_assert_eq(pthread_join(t, NULL), 0);
	close(a.fd);
	cr_assert_eq(a.err, 0, "appending: %s", strerror(a.err));

	body_check(bi, n);
	cr_assert_str_eq(bi->digest, xxh, "the trailer is not the digest of the first bytes");
	cr_assert(memcmp(got, p, n) == 0, "the body is not the file as it was");
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_gt((uint64_t)st.st_size, n, "the file did not grow");
	cr_log_info("GET of a growing file: %zu bytes sent while it grew by %llu bytes",
		    n, (unsigned long long)((uint64_t)st.st_size - n));
	raw_conn_cmd(c, status, sizeof(status), "NOOP");
	cr_assert_str_eq(status, "OK");
	raw_conn_close(c);
	test_free(bi);
	test_free(got);
	test_free(p);
}
