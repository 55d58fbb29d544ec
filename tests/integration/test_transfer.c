/* test_transfer: byte-exact transfers through the real daemon and client,
 * every body and every announced digest checked against digests computed
 * here, independently of src/common/digest.c. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "harness.h"
#include "netio.h"
#include "protocol.h"

#define MIB (1024u * 1024u)
#define IO_TIMEOUT_MS 60000
#define LINE_MAX_LEN PROTO_MAX_LINE

static struct daemon d;
static char local[PATH_MAX];

/* ---- fixtures ---------------------------------------------------------- */

static void setup(void)
{
	scratch_create(local, sizeof(local), "itransfer");
	start_daemon(&d, NULL);
}

static void teardown(void)
{
	test_release_all();
	daemon_stop(&d);
	scratch_remove(local);
}

/* ---- file helpers ------------------------------------------------------ */

/* Reads a whole file into a malloc'ed buffer. */
static unsigned char *read_file(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *p;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(fstat(fd, &st), 0);
	p = test_alloc((size_t)st.st_size + 1);
	n = read_full(fd, p, (size_t)st.st_size);
	cr_assert_eq(n, st.st_size, "short read of %s", path);
	close(fd);
	*len = (size_t)st.st_size;
	return p;
}

/* ---- raw protocol ------------------------------------------------------ */

/* The greeting names the server software. */
static void check_greeting(const char *line)
{
	char agent[128];

	cr_assert(reply_token(line, "server", agent, sizeof(agent)), "greeting: %s", line);
	cr_assert(strncmp(agent, "tcpfiled/", 9) == 0, "server=%s", agent);
}

static int raw_connect(void)
{
	char greeting[LINE_MAX_LEN];
	int fd = raw_open(&d, greeting, sizeof(greeting));

	check_greeting(greeting);
	return fd;
}

static struct raw_conn *conn_connect(void)
{
	char greeting[LINE_MAX_LEN];
	struct raw_conn *c = raw_conn_open(&d, IO_TIMEOUT_MS, greeting, sizeof(greeting));

	check_greeting(greeting);
	return c;
}

/* PUT of a whole file with continue=1: header, CONTINUE (or the final
 * ERR), 1 MiB frames, END, final answer. */
static void raw_put_file(int fd, const char *remote, const char *path,
			 const char *opts, char *final, size_t cap)
{
	static char chunk[MIB];
	struct stat st;
	int in = open(path, O_RDONLY | O_CLOEXEC);
	uint64_t left;

	cr_assert_geq(in, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(fstat(in, &st), 0);
	raw_cmd(fd, final, cap, "PUT %s size=%jd continue=1%s%s", remote,
		(intmax_t)st.st_size, opts ? " " : "", opts ? opts : "");
	if (strcmp(final, "CONTINUE") != 0) {
		close(in);
		return;
	}
	for (left = (uint64_t)st.st_size; left > 0;) {
		size_t want = left < sizeof(chunk) ? (size_t)left : sizeof(chunk);
		ssize_t got = read_full(in, chunk, want);

		cr_assert_eq(got, (ssize_t)want, "reading %s", path);
		raw_send_data(fd, chunk, want, 0);
		left -= want;
	}
	close(in);
	cr_assert_eq(proto_send_line(fd, "END"), 0);
	raw_recv(fd, final, cap);
}

/* The final answer expected for a whole file of n bytes with that digest. */
static void expect_ok_line(char *out, size_t cap, size_t n, const char *digest)
{
	snprintf(out, cap, "OK size=%zu digest=%s", n, digest);
}

static void assert_err(const char *line, int code)
{
	char want[16];

	snprintf(want, sizeof(want), "ERR %d ", code);
	cr_assert(strncmp(line, want, strlen(want)) == 0,
		  "expected %s..., got \"%s\"", want, line);
}

static void share_path(char *out, size_t cap, const char *rel)
{
	path_join(out, cap, d.share_dir, rel);
}

/* The value of token name in line, or a test failure. */
static const char *tok(const char *line, const char *name)
{
	static char v[4][LINE_MAX_LEN];
	static unsigned next;
	char *out = v[next++ % 4];

	cr_assert(reply_token(line, name, out, LINE_MAX_LEN), "no %s= in \"%s\"", name, line);
	return out;
}

/* type= size= mtime= mode= of a STAT answer or ENTRY line, checked against
 * lstat(path) (mtime to the nanosecond, mode as 4 octal digits). */
static void assert_attrs(const char *line, const char *path)
{
	char want[64];
	struct stat st;
	char type;

	cr_assert_eq(lstat(path, &st), 0, "lstat %s", path);
	type = S_ISREG(st.st_mode) ? 'f' : S_ISDIR(st.st_mode) ? 'd' :
	       S_ISLNK(st.st_mode) ? 'l' : 'o';
	snprintf(want, sizeof(want), "%c", type);
	cr_assert_str_eq(tok(line, "type"), want, "type in \"%s\"", line);
	if (type == 'f' || type == 'd') {
		snprintf(want, sizeof(want), "%jd", (intmax_t)st.st_size);
		cr_assert_str_eq(tok(line, "size"), want, "size in \"%s\"", line);
	}
	snprintf(want, sizeof(want), "%jd.%09ld", (intmax_t)st.st_mtim.tv_sec,
		 st.st_mtim.tv_nsec);
	cr_assert_str_eq(tok(line, "mtime"), want, "mtime in \"%s\"", line);
	snprintf(want, sizeof(want), "%04o", (unsigned)(st.st_mode & 07777));
	cr_assert_str_eq(tok(line, "mode"), want, "mode in \"%s\"", line);
}

/* GET (opts may be NULL) on c: the answer's size= is n, the body is p[0..n)
 * and END's digest is want_digest. */
static void get_check(struct raw_conn *c, const char *remote, const char *opts,
		      const void *p, size_t n, const char *want_digest)
{
	char status[LINE_MAX_LEN], size[32];
	unsigned char *body = test_alloc(n);
	struct body_info *bi = test_alloc(sizeof(*bi));

	raw_conn_cmd(c, status, sizeof(status), "GET %s%s%s", remote,
		     opts ? " " : "", opts ? opts : "");
	cr_assert(strncmp(status, "OK ", 3) == 0, "GET %s: %s", remote, status);
	snprintf(size, sizeof(size), "%zu", n);
	cr_assert_str_eq(tok(status, "size"), size, "GET %s: %s", remote, status);
	raw_conn_read_body(c, -1, body, n, bi);
	body_check(bi, n);
	cr_assert(memcmp(body, p, n) == 0, "GET %s: body differs", remote);
	cr_assert(strcasecmp(bi->digest, want_digest) == 0, "GET %s: END %s, want %s",
		  remote, bi->digest, want_digest);
	test_free(bi);
	test_free(body);
}

/* ---- tests ------------------------------------------------------------- */

TestSuite(transfer, .init = setup, .fini = teardown, .timeout = 120);

Test(transfer, roundtrip_small_raw)
{
	static const size_t sizes[] = { 0, 1, 4096 };
	char final[LINE_MAX_LEN], want[LINE_MAX_LEN];
	char xxh[DIGEST_TEXT_LEN], sha[DIGEST_TEXT_LEN], remote[64], dst[PATH_MAX];
	int fd = raw_connect();
	struct raw_conn *c;

	c = conn_connect();
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		unsigned char *p = random_buf(n);

		digest_buf(p, n, xxh, sha);
		snprintf(remote, sizeof(remote), "files/small/%zu.bin", n);
		raw_put_buf(fd, remote, p, n, NULL, final, sizeof(final));
		expect_ok_line(want, sizeof(want), n, xxh);
		cr_assert_str_eq(final, want, "PUT %zu bytes", n);
		share_path(dst, sizeof(dst), remote + strlen("files/"));
		cr_assert(file_is(dst, p, n), "stored file differs (%zu bytes)", n);

		get_check(c, remote, NULL, p, n, xxh);
		get_check(c, remote, "alg=sha256", p, n, sha);

		/* alg= on PUT selects the final answer's algorithm. */
		snprintf(remote, sizeof(remote), "files/small/%zu.sha", n);
		raw_put_buf(fd, remote, p, n, "alg=sha256", final, sizeof(final));
		expect_ok_line(want, sizeof(want), n, sha);
		cr_assert_str_eq(final, want, "PUT alg=sha256 %zu bytes", n);
		test_free(p);
	}
	/* Nothing but the six files (and their directory) in the share. */
	cr_assert_eq(count_entries(d.share_dir, ""), 7);
	raw_conn_close(c);
	close(fd);
}

/* Small frames on the way up: a body of many 1-byte to 4 KiB frames is
 * the same file as one frame. */
Test(transfer, many_small_frames)
{
	const size_t n = 50000;
	unsigned char *p = random_buf(n);
	char final[LINE_MAX_LEN], want[LINE_MAX_LEN], xxh[DIGEST_TEXT_LEN];
	char path[PATH_MAX];
	int fd = raw_connect();
	size_t off = 0, len = 1;

	digest_buf(p, n, xxh, NULL);
	cr_assert_eq(proto_send_line(fd, "PUT files/frames.bin size=%zu", n), 0);
	while (off < n) {
		if (len > n - off)
			len = n - off;
		raw_send_data(fd, p + off, len, 0);
		off += len;
		len = len * 2 > 4096 ? 1 : len * 2;
	}
	cr_assert_eq(proto_send_line(fd, "END digest=%s", xxh), 0);
	raw_recv(fd, final, sizeof(final));
	expect_ok_line(want, sizeof(want), n, xxh);
	cr_assert_str_eq(final, want);
	share_path(path, sizeof(path), "frames.bin");
	cr_assert(file_is(path, p, n));
	close(fd);
	test_free(p);
}

Test(transfer, roundtrip_100mib_raw, .timeout = 300)
{
	char src[PATH_MAX], back[PATH_MAX], dst[PATH_MAX];
	char final[LINE_MAX_LEN], want[LINE_MAX_LEN], status[LINE_MAX_LEN];
	char xxh[DIGEST_TEXT_LEN], sha[DIGEST_TEXT_LEN];
	const size_t n = 100 * (size_t)MIB;
	struct body_info *bi = test_alloc(sizeof(*bi));
	int fd = raw_connect();
	struct raw_conn *c;

	path_join(src, sizeof(src), local, "big.bin");
	path_join(back, sizeof(back), local, "big.back");
	cr_assert_eq(make_random_file(src, n), 0);
	digest_file(src, xxh, sha);

	raw_put_file(fd, "files/big.bin", src, "alg=sha256", final, sizeof(final));
	expect_ok_line(want, sizeof(want), n, sha);
	cr_assert_str_eq(final, want);
	share_path(dst, sizeof(dst), "big.bin");
	cr_assert(files_equal(src, dst), "stored 100 MiB file differs");
	close(fd);

	c = conn_connect();
	raw_conn_cmd(c, status, sizeof(status), "GET files/big.bin");
	snprintf(want, sizeof(want), "%zu", n);
	cr_assert_str_eq(tok(status, "size"), want, "GET: %s", status);
	raw_conn_body_to_file(c, n, back);
	cr_assert(files_equal(src, back), "downloaded 100 MiB file differs");
	/* The trailer's digest, in the algorithm asked for. */
	raw_conn_cmd(c, status, sizeof(status), "GET files/big.bin alg=sha256");
	raw_conn_read_body(c, -1, NULL, 0, bi);
	body_check(bi, n);
	cr_assert_str_eq(bi->digest, sha);
	raw_conn_close(c);
}

Test(transfer, roundtrip_client, .timeout = 300)
{
	static const size_t sizes[] = { 0, 1, 4096, 100 * (size_t)MIB };
	char src[PATH_MAX], back[PATH_MAX], dst[PATH_MAX], remote[64];
	char out[4096], backdir[PATH_MAX];
	char xxh[DIGEST_TEXT_LEN], sha[DIGEST_TEXT_LEN], xxh2[DIGEST_TEXT_LEN], sha2[DIGEST_TEXT_LEN];
	char status[LINE_MAX_LEN];
	struct body_info *bi = test_alloc(sizeof(*bi));
	struct raw_conn *c;

	path_join(backdir, sizeof(backdir), local, "back");
	cr_assert_eq(mkdir(backdir, 0755), 0);
	c = conn_connect();
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		bool big = n > MIB;
		char name[32];
		int rc;

		snprintf(name, sizeof(name), "c%zu.bin", n);
		path_join(src, sizeof(src), local, name);
		path_join(back, sizeof(back), backdir, name);
		snprintf(remote, sizeof(remote), "files/client/%s", name);
		cr_assert_eq(make_random_file(src, n), 0);

		rc = big ? tcpfile_run(&d, out, sizeof(out), "put", "--sha256", src, remote, NULL)
			 : tcpfile_run(&d, out, sizeof(out), "put", src, remote, NULL);
		cr_assert_eq(rc, 0, "tcpfile put %zu bytes: %d\n%s", n, rc, out);
		share_path(dst, sizeof(dst), remote + strlen("files/"));
		cr_assert(files_equal(src, dst), "stored file differs (%zu bytes)", n);

		rc = tcpfile_run(&d, out, sizeof(out), "get", remote, back, NULL);
		cr_assert_eq(rc, 0, "tcpfile get %zu bytes: %d\n%s", n, rc, out);
		cr_assert(files_equal(src, back), "downloaded file differs (%zu bytes)", n);

		/* The server's trailer digest is the one we compute ourselves. */
		digest_file(src, xxh, sha);
		digest_file(back, xxh2, sha2);
		cr_assert_str_eq(xxh, xxh2);
		cr_assert_str_eq(sha, sha2);
		raw_conn_cmd(c, status, sizeof(status), "GET %s alg=sha256", remote);
		cr_assert(strncmp(status, "OK ", 3) == 0, "GET: %s", status);
		raw_conn_read_body(c, -1, NULL, 0, bi);
		body_check(bi, n);
		cr_assert_str_eq(bi->digest, sha);
	}
	raw_conn_close(c);
	/* No temporary file left beside the destinations. */
	cr_assert_eq(count_entries(backdir, ""), 4);
}

/* Files around the client's frame size, in one pipelined put: a body one
 * byte short of a frame goes out whole, the others in frames after
 * CONTINUE, the last frame of each as short as one byte.  Every byte
 * lands, and nothing is left beside the files. */
Test(transfer, client_frame_edges, .timeout = 120)
{
	static const size_t sizes[] = {
		CLIENT_CHUNK - 1, CLIENT_CHUNK, CLIENT_CHUNK + 1, 2 * CLIENT_CHUNK,
		3 * CLIENT_CHUNK + 7,
	};
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	char src[N][PATH_MAX], dst[PATH_MAX], out[4096], name[32];
	const char *argv[N + 3];
	size_t argc = 0;
	int rc;

	argv[argc++] = "put";
	for (size_t i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "edge%zu.bin", sizes[i]);
		path_join(src[i], sizeof(src[i]), local, name);
		cr_assert_eq(make_random_file(src[i], sizes[i]), 0);
		argv[argc++] = src[i];
	}
	argv[argc++] = "files/";
	argv[argc] = NULL;
	rc = tcpfile_runv(&d, out, sizeof(out), argv, NULL);
	cr_assert_eq(rc, 0, "tcpfile put: %d\n%s", rc, out);
	for (size_t i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "edge%zu.bin", sizes[i]);
		share_path(dst, sizeof(dst), name);
		cr_assert(files_equal(src[i], dst), "stored file differs (%zu bytes)", sizes[i]);
	}
	cr_assert_eq(count_entries(d.share_dir, ""), N);
}

/* Tokens the verb does not know, given twice, or with a bad value are 501
 * and the connection goes on; a refused PUT's frames are skipped. */
Test(transfer, bad_request_tokens)
{
	static const char *const bad[] = {
		"GET files/t.bin offset=0",       /* reserved for resume: unknown */
		"GET files/t.bin alg=md5",
		"GET files/t.bin alg=sha256 alg=sha256",
		"STAT files/t.bin size=4",
		"DEL files/t.bin now",
		"LIST files frob=1",
	};
	static const char *const bad_put[] = {
		"PUT files/n size=4 offset=0",
		"PUT files/n size=4 size=4",
		"PUT files/n size=x",
		"PUT files/n size=4 mode=8",
		"PUT files/n size=4 mode=17777",
		"PUT files/n size=4 mtime=1.1234567890",
		"PUT files/n size=4 overwrite=2",
		"PUT files/n size=4 continue=2",
		"PUT files/n size=4 alg=crc32",
		"PUT files/n size=4 digest=xxh3-128:00",  /* digest belongs on END */
	};
	char line[LINE_MAX_LEN];
	int fd = raw_connect();

	raw_put_buf(fd, "files/t.bin", "tttt", 4, NULL, line, sizeof(line));
	cr_assert(strncmp(line, "OK size=4 ", 10) == 0, "%s", line);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		raw_cmd(fd, line, sizeof(line), "%s", bad[i]);
		assert_err(line, 501);
	}
	for (size_t i = 0; i < sizeof(bad_put) / sizeof(bad_put[0]); i++) {
		cr_assert_eq(proto_send_line(fd, "%s", bad_put[i]), 0);
		raw_send_body(fd, "nnnn", 4, 0, NULL);
		raw_recv(fd, line, sizeof(line));
		assert_err(line, 501);
	}
	/* Unknown and doubled END tokens from a client are refused too. */
	cr_assert_eq(proto_send_line(fd, "PUT files/n size=4"), 0);
	raw_send_body(fd, "nnnn", 4, 0, "frob=1");
	raw_recv(fd, line, sizeof(line));
	assert_err(line, 501);
	/* Still in sync, and nothing was stored. */
	raw_cmd(fd, line, sizeof(line), "STAT files/t.bin");
	cr_assert(strncmp(line, "OK ", 3) == 0 && strcmp(tok(line, "size"), "4") == 0,
		  "STAT: %s", line);
	raw_cmd(fd, line, sizeof(line), "STAT files/n");
	assert_err(line, 550);
	cr_assert_eq(count_entries(d.share_dir, ""), 1);
	close(fd);
}

Test(transfer, stat_fields)
{
	char line[LINE_MAX_LEN], path[PATH_MAX];
	struct stat st;
	int fd = raw_connect();

	raw_put_buf(fd, "files/st/m600", "hello", 5,
		    "mode=0600 mtime=1234567890.5", line, sizeof(line));
	cr_assert(strncmp(line, "OK size=5 digest=xxh3-128:", 26) == 0, "PUT: %s", line);
	raw_cmd(fd, line, sizeof(line), "STAT files/st/m600");
	cr_assert(strncmp(line, "OK ", 3) == 0, "STAT: %s", line);
	cr_assert_str_eq(tok(line, "type"), "f");
	cr_assert_str_eq(tok(line, "size"), "5");
	cr_assert_str_eq(tok(line, "mtime"), "1234567890.500000000");
	cr_assert_str_eq(tok(line, "mode"), "0600");
	share_path(path, sizeof(path), "st/m600");
	cr_assert_eq(lstat(path, &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0600u);
	cr_assert_eq(st.st_mtim.tv_sec, 1234567890);
	cr_assert_eq(st.st_mtim.tv_nsec, 500000000);

	/* setuid is dropped; all nine digits of nanoseconds accepted. */
	raw_put_buf(fd, "files/st/m4700", "x", 1,
		    "mtime=1700000000.000000001 mode=4700", line, sizeof(line));
	cr_assert(strncmp(line, "OK size=1 ", 10) == 0, "PUT: %s", line);
	raw_cmd(fd, line, sizeof(line), "STAT files/st/m4700");
	cr_assert_str_eq(tok(line, "mtime"), "1700000000.000000001");
	cr_assert_str_eq(tok(line, "mode"), "0700");
	share_path(path, sizeof(path), "st/m4700");
	assert_attrs(line, path);
	cr_assert_eq(lstat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700u);
	cr_assert_eq(st.st_mtim.tv_nsec, 1);

	/* Directories and other file types, compared with our own lstat. */
	share_path(path, sizeof(path), "st");
	raw_cmd(fd, line, sizeof(line), "STAT files/st");
	assert_attrs(line, path);

	share_path(path, sizeof(path), "st/fifo");
	cr_assert_eq(mkfifo(path, 0640), 0);
	raw_cmd(fd, line, sizeof(line), "STAT files/st/fifo");
	assert_attrs(line, path);
	cr_assert_str_eq(tok(line, "size"), "0");

	raw_cmd(fd, line, sizeof(line), "STAT files");
	assert_attrs(line, d.share_dir);
	raw_cmd(fd, line, sizeof(line), "STAT files/st/nope");
	assert_err(line, 550);
	close(fd);
}

Test(transfer, list_fields)
{
	/* Decoded names with their wire encodings. */
	static const struct {
		const char *name, *encoded;
		bool dir;
		size_t size;
	} entries[] = {
		{ "a.txt", "a.txt", false, 3 },
		{ "b", "b", true, 0 },
		{ "pct%x", "pct%25x", false, 0 },
		{ "sp ace", "sp%20ace", false, 17 },
		{ "\xc3\xbc", "%C3%BC", false, 1 },
	};
	const size_t count = sizeof(entries) / sizeof(entries[0]);
	char line[LINE_MAX_LEN], want[LINE_MAX_LEN], path[PATH_MAX], rel[64];
	unsigned char *p = random_buf(64);
	bool seen[sizeof(entries) / sizeof(entries[0])] = { false };
	int fd = raw_connect();

	for (size_t i = 0; i < count; i++) {
		if (entries[i].dir) {
			snprintf(rel, sizeof(rel), "files/lst/%s/inner", entries[i].encoded);
			raw_put_buf(fd, rel, p, 1, NULL, line, sizeof(line));
		} else {
			snprintf(rel, sizeof(rel), "files/lst/%s", entries[i].encoded);
			raw_put_buf(fd, rel, p, entries[i].size, NULL, line, sizeof(line));
		}
		cr_assert(strncmp(line, "OK ", 3) == 0, "PUT %s: %s", rel, line);
	}
	/* A leftover in the daemon's temporary-name space is never listed. */
	share_path(path, sizeof(path), "lst/.tcpfiled.tmp.planted");
	write_file(path, "junk", 4);

	raw_cmd(fd, line, sizeof(line), "LIST files/lst");
	cr_assert_str_eq(line, "OK");
	/* Entries in any order, each exactly once. */
	for (size_t k = 0; k < count; k++) {
		size_t i, nlen;

		raw_recv(fd, line, sizeof(line));
		cr_assert(strncmp(line, "ENTRY ", 6) == 0, "entry %zu: %s", k, line);
		nlen = strcspn(line + 6, " ");
		for (i = 0; i < count; i++)
			if (strlen(entries[i].encoded) == nlen &&
			    strncmp(line + 6, entries[i].encoded, nlen) == 0)
				break;
		cr_assert_lt(i, count, "unexpected entry: %s", line);
		cr_assert_not(seen[i], "listed twice: %s", line);
		seen[i] = true;
		snprintf(rel, sizeof(rel), "lst/%s", entries[i].name);
		share_path(path, sizeof(path), rel);
		assert_attrs(line, path);
	}
	raw_recv(fd, line, sizeof(line));
	snprintf(want, sizeof(want), "END count=%zu", count);
	cr_assert_str_eq(line, want);

	/* The share root by its bare name, and a synced stream afterwards. */
	raw_cmd(fd, line, sizeof(line), "LIST files");
	cr_assert_str_eq(line, "OK");
	raw_recv(fd, line, sizeof(line));
	cr_assert(strncmp(line, "ENTRY lst ", 10) == 0, "root entry: %s", line);
	cr_assert_str_eq(tok(line, "type"), "d");
	raw_recv(fd, line, sizeof(line));
	cr_assert_str_eq(line, "END count=1");
	raw_cmd(fd, line, sizeof(line), "LIST files/missing");
	assert_err(line, 550);
	raw_cmd(fd, line, sizeof(line), "NOOP");
	cr_assert_str_eq(line, "OK");
	raw_cmd(fd, line, sizeof(line), "QUIT");
	cr_assert_str_eq(line, "OK bye");
	test_free(p);
	close(fd);
}

Test(transfer, del_files_and_dirs)
{
	char line[LINE_MAX_LEN], path[PATH_MAX];
	int fd = raw_connect();

	raw_put_buf(fd, "files/del/a", "abc", 3, NULL, line, sizeof(line));
	cr_assert(strncmp(line, "OK size=3 ", 10) == 0, "%s", line);
	raw_put_buf(fd, "files/del/sub/x", "x", 1, NULL, line, sizeof(line));
	cr_assert(strncmp(line, "OK size=1 ", 10) == 0, "%s", line);

	raw_cmd(fd, line, sizeof(line), "DEL files/del/a");
	cr_assert_str_eq(line, "OK");
	share_path(path, sizeof(path), "del/a");
	cr_assert(access(path, F_OK) != 0 && errno == ENOENT, "file still there");
	raw_cmd(fd, line, sizeof(line), "STAT files/del/a");
	assert_err(line, 550);
	raw_cmd(fd, line, sizeof(line), "DEL files/del/a");
	assert_err(line, 550);

	/* A non-empty directory is refused and left alone. */
	raw_cmd(fd, line, sizeof(line), "DEL files/del/sub");
	assert_err(line, 556);
	share_path(path, sizeof(path), "del/sub/x");
	cr_assert_eq(access(path, F_OK), 0);
	raw_cmd(fd, line, sizeof(line), "DEL files/del/sub/x");
	cr_assert_str_eq(line, "OK");
	raw_cmd(fd, line, sizeof(line), "DEL files/del/sub");
	cr_assert_str_eq(line, "OK");
	share_path(path, sizeof(path), "del/sub");
	cr_assert(access(path, F_OK) != 0 && errno == ENOENT, "directory still there");
	cr_assert_eq(count_entries(d.share_dir, ""), 1);  /* del/ itself */
	close(fd);
}

Test(transfer, nested_dirs_beneath_root)
{
	char line[LINE_MAX_LEN], want[LINE_MAX_LEN], path[PATH_MAX];
	char xxh[DIGEST_TEXT_LEN], sha[DIGEST_TEXT_LEN];
	static const char *const dirs[] = { "n1", "n1/n2", "n1/n2/n3" };
	unsigned char *p = random_buf(4096);
	long before = count_entries(d.dir, "");
	struct stat st;
	int fd = raw_connect();

	cr_assert_geq(before, 0);
	digest_buf(p, 4096, xxh, sha);
	raw_put_buf(fd, "files/n1/n2/n3/leaf.bin", p, 4096, NULL, line, sizeof(line));
	expect_ok_line(want, sizeof(want), 4096, xxh);
	cr_assert_str_eq(line, want);
	for (size_t i = 0; i < 3; i++) {
		share_path(path, sizeof(path), dirs[i]);
		cr_assert_eq(lstat(path, &st), 0, "%s missing", dirs[i]);
		cr_assert(S_ISDIR(st.st_mode), "%s is not a directory", dirs[i]);
	}
	share_path(path, sizeof(path), "n1/n2/n3/leaf.bin");
	cr_assert(file_is(path, p, 4096));
	/* Exactly three directories and one file appeared, all in the share. */
	cr_assert_eq(count_entries(d.dir, ""), before + 4);
	cr_assert_eq(count_entries(d.share_dir, ""), 4);
	raw_cmd(fd, line, sizeof(line), "STAT files/n1/n2/n3/leaf.bin");
	cr_assert(strncmp(line, "OK type=f size=4096 ", 20) == 0, "%s", line);
	test_free(p);
	close(fd);
}

Test(transfer, pipelined_middle_rejected)
{
	const size_t na = 5000, nb = 3000, nc = 7000;
	unsigned char *a = random_buf(na), *b = random_buf(nb), *c = random_buf(nc);
	char line[LINE_MAX_LEN], want[LINE_MAX_LEN], path[PATH_MAX];
	char xa[DIGEST_TEXT_LEN], xc[DIGEST_TEXT_LEN];
	int fd = raw_connect();

	digest_buf(a, na, xa, NULL);
	digest_buf(c, nc, xc, NULL);
	/* Everything back to back, before reading a single answer; b's body
	 * comes in small frames the server must skip one by one. */
	cr_assert_eq(proto_send_line(fd, "PUT files/pipe_a size=%zu", na), 0);
	raw_send_body(fd, a, na, 0, NULL);
	cr_assert_eq(proto_send_line(fd, "PUT ro/pipe_b size=%zu", nb), 0);
	raw_send_body(fd, b, nb, 1000, NULL);
	cr_assert_eq(proto_send_line(fd, "PUT files/pipe_c size=%zu mode=0600", nc), 0);
	raw_send_body(fd, c, nc, 0, NULL);
	cr_assert_eq(proto_send_line(fd, "STAT files/pipe_c"), 0);

	raw_recv(fd, line, sizeof(line));
	expect_ok_line(want, sizeof(want), na, xa);
	cr_assert_str_eq(line, want, "first answer");
	raw_recv(fd, line, sizeof(line));
	assert_err(line, 553);
	raw_recv(fd, line, sizeof(line));
	expect_ok_line(want, sizeof(want), nc, xc);
	cr_assert_str_eq(line, want, "third answer");
	raw_recv(fd, line, sizeof(line));
	cr_assert(strncmp(line, "OK ", 3) == 0, "STAT: %s", line);
	cr_assert_str_eq(tok(line, "size"), "7000");
	cr_assert_str_eq(tok(line, "mode"), "0600");

	share_path(path, sizeof(path), "pipe_a");
	cr_assert(file_is(path, a, na));
	share_path(path, sizeof(path), "pipe_c");
	cr_assert(file_is(path, c, nc));
	cr_assert_eq(count_entries(d.share_dir, ""), 2);
	cr_assert_eq(count_entries(d.ro_dir, ""), 0);
	test_free(a);
	test_free(b);
	test_free(c);
	close(fd);
}

static void upper(char *s)
{
	for (; *s; s++)
		if (*s >= 'a' && *s <= 'f')
			*s = (char)(*s - 'a' + 'A');
}

Test(transfer, digest_verify)
{
	const size_t n = 20000;
	unsigned char *v1 = random_buf(n), *v2 = random_buf(n);
	char line[LINE_MAX_LEN], want[LINE_MAX_LEN], end[128], path[PATH_MAX];
	char x1[DIGEST_TEXT_LEN], s1[DIGEST_TEXT_LEN], x2[DIGEST_TEXT_LEN], s2[DIGEST_TEXT_LEN];
	int fd = raw_connect();

	digest_buf(v1, n, x1, s1);
	digest_buf(v2, n, x2, s2);
	share_path(path, sizeof(path), "dg");

	/* The right digest (upper-case hex is accepted) commits. */
	snprintf(end, sizeof(end), "digest=%s", s1);
	upper(end + strlen("digest=sha256:"));
	raw_put_end(fd, "files/dg", v1, n, "alg=sha256", end, line, sizeof(line));
	expect_ok_line(want, sizeof(want), n, s1);
	cr_assert_str_eq(line, want);
	cr_assert(file_is(path, v1, n));

	/* v2 announced with v1's xxh3 digest: refused, v1 stays. */
	snprintf(end, sizeof(end), "digest=%s", x1);
	raw_put_end(fd, "files/dg", v2, n, NULL, end, line, sizeof(line));
	assert_err(line, 555);
	cr_assert(file_is(path, v1, n), "old version damaged by a refused PUT");

	/* A digest in another algorithm than alg= is a bad argument. */
	snprintf(end, sizeof(end), "digest=%s", s2);
	raw_put_end(fd, "files/dg", v2, n, NULL, end, line, sizeof(line));
	assert_err(line, 501);
	cr_assert(file_is(path, v1, n), "old version damaged by a refused PUT");

	/* A fresh name with a wrong digest: nothing appears, no directory
	 * either. */
	snprintf(end, sizeof(end), "digest=%s", s1);
	raw_put_end(fd, "files/dg_new/sub/x", v2, n, "alg=sha256", end, line, sizeof(line));
	assert_err(line, 555);
	raw_cmd(fd, line, sizeof(line), "STAT files/dg_new");
	assert_err(line, 550);
	cr_assert_eq(count_entries(d.share_dir, ""), 1);

	/* The matching xxh3 digest for v2 replaces v1. */
	snprintf(end, sizeof(end), "digest=%s", x2);
	raw_put_end(fd, "files/dg", v2, n, NULL, end, line, sizeof(line));
	expect_ok_line(want, sizeof(want), n, x2);
	cr_assert_str_eq(line, want);
	cr_assert(file_is(path, v2, n));
	test_free(v1);
	test_free(v2);
	close(fd);
}

#define RACE_SIZE (8 * (size_t)MIB)
#define RACE_CHUNK (64 * (size_t)1024)

/* Two uploads of different content to one name, bodies interleaved frame
 * by frame.  Per connection: go[] tells whether the header was accepted
 * (CONTINUE), final[] holds the last answer (the header's ERR, or the
 * final one). */
static void race_two_puts(const char *opts, unsigned char *const bufs[2],
			  char final[2][LINE_MAX_LEN], bool go[2])
{
	int fds[2] = { raw_connect(), raw_connect() };

	for (int i = 0; i < 2; i++) {
		raw_cmd(fds[i], final[i], LINE_MAX_LEN, "PUT files/race size=%zu continue=1%s%s",
			RACE_SIZE, opts ? " " : "", opts ? opts : "");
		go[i] = strcmp(final[i], "CONTINUE") == 0;
	}
	for (size_t off = 0; off < RACE_SIZE; off += RACE_CHUNK)
		for (int i = 0; i < 2; i++)
			if (go[i])
				raw_send_data(fds[i], bufs[i] + off, RACE_CHUNK, 0);
	for (int i = 0; i < 2; i++) {
		if (go[i]) {
			cr_assert_eq(proto_send_line(fds[i], "END"), 0);
			raw_recv(fds[i], final[i], LINE_MAX_LEN);
		}
		close(fds[i]);
	}
}

Test(transfer, concurrent_writers_one_version)
{
	unsigned char *bufs[2] = { random_buf(RACE_SIZE), random_buf(RACE_SIZE) };
	char final[2][LINE_MAX_LEN], want[LINE_MAX_LEN], path[PATH_MAX];
	char xxh[DIGEST_TEXT_LEN];
	bool go[2];
	size_t len;
	unsigned char *got;

	race_two_puts(NULL, bufs, final, go);
	for (int i = 0; i < 2; i++) {
		cr_assert(go[i], "header %d refused: %s", i, final[i]);
		digest_buf(bufs[i], RACE_SIZE, xxh, NULL);
		expect_ok_line(want, sizeof(want), RACE_SIZE, xxh);
		cr_assert_str_eq(final[i], want, "upload %d", i);
	}
	share_path(path, sizeof(path), "race");
	got = read_file(path, &len);
	cr_assert_eq(len, RACE_SIZE);
	cr_assert(memcmp(got, bufs[0], len) == 0 || memcmp(got, bufs[1], len) == 0,
		  "the file mixes both uploads");
	/* The file, and the (empty) state directory the commits went
	 * through (count_entries does not count it): no litter. */
	share_path(path, sizeof(path), ".tcpfiled");
	cr_assert_eq(count_entries(path, ""), 0);
	cr_assert_eq(count_entries(d.share_dir, ""), 1);
	test_free(got);
	test_free(bufs[0]);
	test_free(bufs[1]);
}

Test(transfer, racing_no_overwrite)
{
	unsigned char *bufs[2] = { random_buf(RACE_SIZE), random_buf(RACE_SIZE) };
	char final[2][LINE_MAX_LEN], want[LINE_MAX_LEN], path[PATH_MAX];
	char xxh[DIGEST_TEXT_LEN];
	int winner = -1, refused = 0;
	bool go[2];

	race_two_puts("overwrite=0", bufs, final, go);
	for (int i = 0; i < 2; i++) {
		if (strncmp(final[i], "OK ", 3) == 0) {
			cr_assert_eq(winner, -1, "both uploads succeeded");
			winner = i;
		} else {
			assert_err(final[i], 554);
			refused++;
		}
	}
	cr_assert_neq(winner, -1, "no upload succeeded: %s / %s", final[0], final[1]);
	cr_assert_eq(refused, 1);
	digest_buf(bufs[winner], RACE_SIZE, xxh, NULL);
	expect_ok_line(want, sizeof(want), RACE_SIZE, xxh);
	cr_assert_str_eq(final[winner], want);
	share_path(path, sizeof(path), "race");
	cr_assert(file_is(path, bufs[winner], RACE_SIZE), "the file is not the winner's");
	cr_assert_eq(count_entries(d.share_dir, ""), 1);
	test_free(bufs[0]);
	test_free(bufs[1]);
}
