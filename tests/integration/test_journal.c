/* Integration: tcpfiled's structured journal records, caught on a journal socket the test owns. */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "harness.h"
#include "log.h"
#include "netio.h"
#include "parse.h"

/* Where sd_journal_sendv() sends, fixed in libsystemd. */
#define JOURNAL_RUN_DIR "/run"
#define JOURNAL_DIR     "/run/systemd/journal"
#define JOURNAL_SOCKET  JOURNAL_DIR "/socket"
/* Well above any record log.c builds (16 KiB of fields plus framing), so
 * a cut datagram means something is wrong, not that we were stingy. */
#define JOURNAL_DGRAM_MAX (128 * 1024)
#define JOURNAL_MEMFD_MAX (64 * 1024 * 1024)
/* Past any send buffer libsystemd gets, so it falls back to a memfd. */
#define JOURNAL_BIG_FIELD (24 * 1024 * 1024)
#define JOURNAL_RCVBUF    (8 * 1024 * 1024)
#define JOURNAL_MAX_FDS   4
#define JOURNAL_HELD_MAX  32

#define W(...) ((const char *const[]){ __VA_ARGS__, NULL })

struct jfield {
	char *key;
	char *value;    /* NUL-terminated copy */
};

/* One datagram, parsed; sender is the pid the kernel vouches for. */
struct jrec {
	pid_t sender;
	size_t n;
	struct jfield *f;
};

/* A reader thread drains the socket at once: net.unix.max_dgram_qlen may
 * be 10, and the daemon's sends block while the queue is full, which
 * would stall it whenever the test sits in a harness call that does not
 * know about this socket. */
static struct {
	int fd;
	int stop_fd;
	bool thread_live;
	pthread_t thread;
	pthread_mutex_t lock;
	struct jrec *recs;
	size_t n, cap;
	int error;              /* first problem the reader hit, -errno */
	char error_what[160];
} jr = { .fd = -1, .stop_fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER };

/* Copies handed to a test, freed by the fixture even after a failure. */
static struct jrec held[JOURNAL_HELD_MAX];
static size_t n_held;

static struct daemon d;

/* ---- Records ---- */

static void jrec_free(struct jrec *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->f[i].key);
		free(r->f[i].value);
	}
	free(r->f);
	*r = (struct jrec){ 0 };
}

static int jrec_add(struct jrec *r, const char *key, size_t klen,
		    const char *value, size_t vlen)
{
	struct jfield *f = realloc(r->f, (r->n + 1) * sizeof(*f));

	if (f == NULL)
		return -ENOMEM;
	r->f = f;
	f[r->n].key = strndup(key, klen);
	f[r->n].value = malloc(vlen + 1);
	if (f[r->n].key == NULL || f[r->n].value == NULL) {
		free(f[r->n].key);
		free(f[r->n].value);
		return -ENOMEM;
	}
	memcpy(f[r->n].value, value, vlen);
	f[r->n].value[vlen] = '\0';
	r->n++;
	return 0;
}

/* Length of the field name at p: up to the first '=' or '\n'. */
static size_t jrec_key_len(const char *p, size_t left)
{
	size_t k = 0;

	while (k < left && p[k] != '=' && p[k] != '\n')
		k++;
	return k;
}

/* journald's native protocol: "KEY=value\n", or, for a value holding a
 * newline, "KEY\n" + 64-bit little-endian length + value + "\n". */
static int jrec_parse(const char *p, size_t len, struct jrec *r)
{
	size_t pos = 0;

	while (pos < len) {
		const char *s = p + pos;
		size_t left = len - pos, klen = jrec_key_len(s, left);
		const char *value;
		uint64_t vlen;
		int err;

		if (klen == 0 || klen == left)
			return -EBADMSG;
		if (s[klen] == '=') {
			const char *nl = memchr(s + klen + 1, '\n', left - klen - 1);

			if (nl == NULL)
				return -EBADMSG;
			value = s + klen + 1;
			vlen = (uint64_t)(nl - value);
			pos += klen + 1 + (size_t)vlen + 1;
		} else {
			uint64_t le;

			if (left - klen - 1 < sizeof(le))
				return -EBADMSG;
			memcpy(&le, s + klen + 1, sizeof(le));
			vlen = le64toh(le);
			value = s + klen + 1 + sizeof(le);
			if (vlen >= left - klen - 1 - sizeof(le) || value[vlen] != '\n')
				return -EBADMSG;
			pos += klen + 1 + sizeof(le) + (size_t)vlen + 1;
		}
		err = jrec_add(r, s, klen, value, (size_t)vlen);
		if (err < 0)
			return err;
	}
	return r->n > 0 ? 0 : -EBADMSG;
}

static int jrec_copy(const struct jrec *src, struct jrec *dst)
{
	*dst = (struct jrec){ .sender = src->sender };
	for (size_t i = 0; i < src->n; i++) {
		int r = jrec_add(dst, src->f[i].key, strlen(src->f[i].key),
				 src->f[i].value, strlen(src->f[i].value));

		if (r < 0) {
			jrec_free(dst);
			return r;
		}
	}
	return 0;
}

static const char *jrec_get(const struct jrec *r, const char *key)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->f[i].key, key) == 0)
			return r->f[i].value;
	return NULL;
}

/* True when r has every "KEY=value" of want (NULL-terminated). */
static bool jrec_matches(const struct jrec *r, const char *const *want)
{
	for (; *want != NULL; want++) {
		const char *eq = strchr(*want, '=');
		size_t klen = (size_t)(eq - *want);
		bool hit = false;

		for (size_t i = 0; i < r->n && !hit; i++)
			hit = strlen(r->f[i].key) == klen &&
			      memcmp(r->f[i].key, *want, klen) == 0 &&
			      strcmp(r->f[i].value, eq + 1) == 0;
		if (!hit)
			return false;
	}
	return true;
}

/* "KEY=value | KEY=value ..." for failure messages (static buffer). */
static const char *jrec_text(const struct jrec *r)
{
	static char text[4096];
	size_t used = 0;

	text[0] = '\0';
	for (size_t i = 0; i < r->n && used < sizeof(text); i++) {
		int n = snprintf(text + used, sizeof(text) - used, "%s%s=%s",
				 i ? " | " : "", r->f[i].key, r->f[i].value);

		if (n < 0)
			break;
		used += (size_t)n;
	}
	return text;
}

/* ---- The socket and its reader ---- */

static void journal_note_error(int err, const char *what)
{
	pthread_mutex_lock(&jr.lock);
	if (jr.error == 0) {
		jr.error = err;
		snprintf(jr.error_what, sizeof(jr.error_what), "%s: %s", what,
			 strerror(-err));
	}
	pthread_mutex_unlock(&jr.lock);
}

static int journal_store(struct jrec *r)
{
	int err = 0;

	pthread_mutex_lock(&jr.lock);
	if (jr.n == jr.cap) {
		size_t cap = jr.cap ? jr.cap * 2 : 64;
		struct jrec *recs = realloc(jr.recs, cap * sizeof(*recs));

		if (recs == NULL) {
			err = -ENOMEM;
			goto out_unlock;
		}
		jr.recs = recs;
		jr.cap = cap;
	}
	jr.recs[jr.n++] = *r;
	*r = (struct jrec){ 0 };
out_unlock:
	pthread_mutex_unlock(&jr.lock);
	return err;
}

/* A record too big for a datagram arrives as a sealed memfd instead. */
static int journal_parse_memfd(int memfd, struct jrec *r)
{
	struct stat st;
	char *data;
	ssize_t n;
	int err;

	if (fstat(memfd, &st) < 0)
		return -errno;
	if (st.st_size <= 0 || st.st_size > JOURNAL_MEMFD_MAX)
		return -EFBIG;
	if (lseek(memfd, 0, SEEK_SET) < 0)
		return -errno;
	data = malloc((size_t)st.st_size);
	if (data == NULL)
		return -ENOMEM;
	n = read_full(memfd, data, (size_t)st.st_size);
	err = n == st.st_size ? jrec_parse(data, (size_t)n, r) : n < 0 ? (int)n : -EIO;
	free(data);
	return err;
}

/* Collects the sender's credentials and any passed descriptors; keeps the
 * first descriptor in *memfd and closes the rest.  Returns how many
 * descriptors came. */
static size_t journal_take_cmsgs(struct msghdr *mh, struct jrec *r, int *memfd)
{
	size_t n_fds = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET)
			continue;
		if (c->cmsg_type == SCM_CREDENTIALS &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
			struct ucred uc;

			memcpy(&uc, CMSG_DATA(c), sizeof(uc));
			r->sender = uc.pid;
		} else if (c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < k; i++, n_fds++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
				if (*memfd < 0)
					*memfd = fd;
				else
					close(fd);
			}
		}
	}
	return n_fds;
}

/* Receives one datagram.  1 when a record was stored, 0 when the socket
 * is empty, -errno. */
static int journal_recv_one(char *buf)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(sizeof(struct ucred)) +
		       CMSG_SPACE(sizeof(int) * JOURNAL_MAX_FDS)];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = JOURNAL_DGRAM_MAX };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = &ctl, .msg_controllen = sizeof(ctl),
	};
	struct jrec r = { 0 };
	int memfd = -1, err;
	size_t n_fds;
	ssize_t n;

	n = recvmsg(jr.fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	n_fds = journal_take_cmsgs(&mh, &r, &memfd);
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		err = -EMSGSIZE;
	else if (n_fds > 1 || (memfd >= 0 && n != 0))
		err = -EBADMSG;
	else if (memfd >= 0)
		err = journal_parse_memfd(memfd, &r);
	else
		err = jrec_parse(buf, (size_t)n, &r);
	if (memfd >= 0)
		close(memfd);
	if (err == 0)
		err = journal_store(&r);
	jrec_free(&r);
	return err < 0 ? err : 1;
}

static void *journal_reader(void *arg)
{
	char *buf = malloc(JOURNAL_DGRAM_MAX);

	(void)arg;
	if (buf == NULL) {
		journal_note_error(-ENOMEM, "reader buffer");
		return NULL;
	}
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = jr.fd, .events = POLLIN },
			{ .fd = jr.stop_fd, .events = POLLIN },
		};
		int r;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			journal_note_error(-errno, "poll");
			break;
		}
		if (pfd[1].revents != 0)
			break;
		while ((r = journal_recv_one(buf)) > 0)
			;
		if (r < 0)
			journal_note_error(r, "a journal datagram");
	}
	free(buf);
	return NULL;
}

/* Skips the test where mounts are not ours to make (no CAP_SYS_ADMIN). */
static void journal_check_mount(int r, const char *what)
{
	if (r == 0)
		return;
	if (errno == EPERM || errno == EACCES)
		cr_skip_test("%s: %s (needs CAP_SYS_ADMIN)", what, strerror(errno));
	cr_assert_fail("%s: %s", what, strerror(errno));
}

/* A private mount namespace with a fresh tmpfs on /run, so the socket the
 * daemon finds at the journal's address is ours and the host's /run is
 * never touched.  It ends with this test process and the daemon. */
static void journal_setup(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX, .sun_path = JOURNAL_SOCKET };
	int one = 1, size = JOURNAL_RCVBUF;

	journal_check_mount(unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)");
	/* In a chroot "/" is no mount point (EINVAL) and nothing else can be
	 * made private safely: a mount here could then propagate to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 && errno == EINVAL)
		cr_skip_test("making / private: not a mount point (a chroot?)");
	journal_check_mount(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL),
			    "making / private");
	journal_check_mount(mount("tmpfs", JOURNAL_RUN_DIR, "tmpfs",
				  MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755"),
			    "tmpfs on /run");
	cr_assert_eq(mkdir("/run/systemd", 0755), 0, "mkdir: %s", strerror(errno));
	cr_assert_eq(mkdir(JOURNAL_DIR, 0755), 0, "mkdir: %s", strerror(errno));

	jr.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(jr.fd, 0, "socket: %s", strerror(errno));
	cr_assert_eq(bind(jr.fd, (struct sockaddr *)&sun, sizeof(sun)), 0,
		     "bind %s: %s", JOURNAL_SOCKET, strerror(errno));
	/* The sender's pid, vouched for by the kernel, tells master from worker. */
	cr_assert_eq(setsockopt(jr.fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);
	if (setsockopt(jr.fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		cr_assert_eq(setsockopt(jr.fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)), 0,
			     "SO_RCVBUF: %s", strerror(errno));
	jr.stop_fd = eventfd(0, EFD_CLOEXEC);
	cr_assert_geq(jr.stop_fd, 0, "eventfd: %s", strerror(errno));
	cr_assert_eq(pthread_create(&jr.thread, NULL, journal_reader, NULL), 0);
	jr.thread_live = true;
}

static void journal_teardown(void)
{
	if (jr.thread_live) {
		uint64_t one = 1;

		(void)write_full(jr.stop_fd, &one, sizeof(one));
		pthread_join(jr.thread, NULL);
		jr.thread_live = false;
	}
	if (jr.fd >= 0)
		close(jr.fd);
	if (jr.stop_fd >= 0)
		close(jr.stop_fd);
	jr.fd = jr.stop_fd = -1;
	for (size_t i = 0; i < jr.n; i++)
		jrec_free(&jr.recs[i]);
	free(jr.recs);
	jr.recs = NULL;
	jr.n = jr.cap = 0;
	for (size_t i = 0; i < n_held; i++)
		jrec_free(&held[i]);
	n_held = 0;
}

/* ---- Queries ---- */

static size_t journal_count(const char *const *want)
{
	size_t n = 0;

	pthread_mutex_lock(&jr.lock);
	for (size_t i = 0; i < jr.n; i++)
		if (jrec_matches(&jr.recs[i], want))
			n++;
	pthread_mutex_unlock(&jr.lock);
	return n;
}

struct journal_wait {
	const char *const *want;
	size_t min;
	size_t seen;
};

static bool journal_enough(void *arg)
{
	struct journal_wait *w = arg;

	w->seen = journal_count(w->want);
	return w->seen >= w->min;
}

/* Waits (HARNESS_TIMEOUT_MS) until at least min records match want;
 * returns how many did. */
static size_t journal_wait_count(const char *const *want, size_t min)
{
	struct journal_wait w = { .want = want, .min = min };

	(void)wait_until(journal_enough, &w, HARNESS_TIMEOUT_MS);
	return w.seen;
}

/* All records so far, one a line, for a failing test's message. */
static void journal_dump(void)
{
	pthread_mutex_lock(&jr.lock);
	fprintf(stderr, "journal: %zu records\n", jr.n);
	for (size_t i = 0; i < jr.n; i++)
		fprintf(stderr, "  [pid %d] %s\n", (int)jr.recs[i].sender,
			jrec_text(&jr.recs[i]));
	pthread_mutex_unlock(&jr.lock);
}

/* The idx-th record matching want (waiting for it), as a copy the
 * fixture frees; fails the test when it does not come. */
static const struct jrec *journal_expect_nth(const char *const *want, size_t idx)
{
	struct jrec *out = NULL;
	size_t seen = journal_wait_count(want, idx + 1);

	if (seen <= idx)
		journal_dump();
	cr_assert_gt(seen, idx, "no journal record #%zu with %s%s%s (of %zu matching)",
		     idx, want[0], want[1] ? ", " : "", want[1] ? want[1] : "", seen);
	cr_assert_lt(n_held, (size_t)JOURNAL_HELD_MAX, "too many held records");
	pthread_mutex_lock(&jr.lock);
	for (size_t i = 0, k = 0; i < jr.n && out == NULL; i++) {
		if (jrec_matches(&jr.recs[i], want) && k++ == idx) {
			if (jrec_copy(&jr.recs[i], &held[n_held]) == 0)
				out = &held[n_held++];
		}
	}
	pthread_mutex_unlock(&jr.lock);
	cr_assert_not_null(out, "copying a record failed");
	return out;
}

static const struct jrec *journal_expect(const char *const *want)
{
	return journal_expect_nth(want, 0);
}

/* The reader met no malformed or cut datagram. */
static void journal_expect_clean(void)
{
	int err;
	char what[sizeof(jr.error_what)];

	pthread_mutex_lock(&jr.lock);
	err = jr.error;
	memcpy(what, jr.error_what, sizeof(what));
	pthread_mutex_unlock(&jr.lock);
	cr_assert_eq(err, 0, "journal reader: %s", what);
}

static void field_is(const struct jrec *r, const char *key, const char *want)
{
	const char *got = jrec_get(r, key);

	cr_assert_not_null(got, "no %s in: %s", key, jrec_text(r));
	cr_assert_str_eq(got, want, "%s=%s, want %s; record: %s", key, got, want,
			 jrec_text(r));
}

static void field_contains(const struct jrec *r, const char *key, const char *needle)
{
	const char *got = jrec_get(r, key);

	cr_assert_not_null(got, "no %s in: %s", key, jrec_text(r));
	cr_assert_not_null(strstr(got, needle), "%s=%s lacks \"%s\"", key, got, needle);
}

static uint64_t field_u64(const struct jrec *r, const char *key)
{
	const char *got = jrec_get(r, key);
	uint64_t v = 0;

	cr_assert_not_null(got, "no %s in: %s", key, jrec_text(r));
	cr_assert_eq(parse_u64(got, &v), 0, "%s=%s is not a number", key, got);
	return v;
}

static pid_t field_pid(const struct jrec *r, const char *key)
{
	uint64_t v = field_u64(r, key);

	cr_assert(v > 0 && v <= INT32_MAX, "%s=%" PRIu64 " is no pid", key, v);
	return (pid_t)v;
}

/* ---- Daemon ---- */

static void journal_fini(void)
{
	/* The reader keeps draining while the daemon logs its shutdown. */
	if (getenv("ITEST_DUMP_LOG") != NULL && jr.thread_live)
		journal_dump();
	daemon_stop(&d);
	journal_teardown();
	test_release_all();
}

TestSuite(journal, .fini = journal_fini, .timeout = 120);

/* Starts tcpfiled with its stderr named by JOURNAL_STREAM, as systemd
 * does for a service whose output goes to the journal. */
static void start_journaled(unsigned workers)
{
	const char *bin = harness_bin("TCPFILED_BIN");
	char stream[96];
	struct stat st;
	int fd, r;

	cr_assert_not_null(bin, "TCPFILED_BIN is not set");
	journal_setup();
	r = daemon_prepare(&d, &(struct daemon_opts){ .workers = workers });
	cr_assert_eq(r, 0, "daemon_prepare: %s", strerror(-r));
	/* daemon_spawn appends to this file; creating it now gives us the
	 * inode the daemon will find on its stderr. */
	fd = open(d.log_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	cr_assert_geq(fd, 0, "open %s: %s", d.log_path, strerror(errno));
	r = fstat(fd, &st);
	close(fd);
	cr_assert_eq(r, 0, "fstat: %s", strerror(errno));
	snprintf(stream, sizeof(stream), "JOURNAL_STREAM=%llu:%llu",
		 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	{
		const char *argv[] = { bin, "-c", d.conf_path, NULL };
		const char *env[] = { stream, NULL };

		r = daemon_spawn(&d, argv, env);
	}
	cr_assert_eq(r, 0, "daemon_spawn: %s", strerror(-r));
	r = daemon_wait_ready(&d);
	cr_assert_eq(r, 0, "daemon not ready: %s", strerror(-r));
}

static void wait_workers(size_t n, pid_t *pids)
{
	int r = daemon_wait_workers(&d, n, pids, n, HARNESS_TIMEOUT_MS);

	cr_assert_eq(r, 0, "%zu idle workers: %s", n, strerror(-r));
}

/* In journal mode log.c writes nothing to stderr. */
static void expect_stderr_empty(void)
{
	struct stat st;

	cr_assert_eq(stat(d.log_path, &st), 0, "stat %s: %s", d.log_path, strerror(errno));
	if (st.st_size != 0) {
		char *text = daemon_log_read(&d);

		cr_assert_fail("stderr is not empty in journal mode:\n%s",
			       text ? text : "(unreadable)");
	}
}

static void want_pid(char *buf, size_t cap, pid_t pid)
{
	cr_assert_lt((size_t)snprintf(buf, cap, "TCPFILED_WORKER_PID=%d", (int)pid), cap);
}

/* "127.0.0.1:PORT" of our end of fd, as the daemon sees its peer. */
static void local_addr(int fd, char *out, size_t cap)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0,
		     "getsockname: %s", strerror(errno));
	cr_assert_eq(sin.sin_family, AF_INET);
	snprintf(out, cap, "127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
}

/* ---- Tests ---- */

Test(journal, startup_and_worker_start)
{
	char want[64];
	pid_t pids[2];
	const struct jrec *r;

	start_journaled(2);
	wait_workers(2, pids);

	r = journal_expect(W("MESSAGE_ID=" LOG_MSGID_STARTUP));
	field_is(r, "SYSLOG_IDENTIFIER", "tcpfiled");
	field_is(r, "PRIORITY", "5");           /* notice */
	field_is(r, "TCPFILED_LISTEN", d.server);
	cr_assert_str_neq(jrec_get(r, "MESSAGE") ? jrec_get(r, "MESSAGE") : "", "");
	cr_assert_eq(r->sender, d.pid, "start-up logged by %d, master is %d",
		     (int)r->sender, (int)d.pid);

	for (size_t i = 0; i < 2; i++) {
		want_pid(want, sizeof(want), pids[i]);
		r = journal_expect(W("MESSAGE_ID=" LOG_MSGID_WORKER_START, want));
		field_is(r, "SYSLOG_IDENTIFIER", "tcpfiled");
		field_is(r, "PRIORITY", "6");   /* info */
		field_is(r, "TCPFILED_GENERATION", "1");
		cr_assert_eq(r->sender, d.pid);
	}
	cr_assert_eq(journal_count(W("MESSAGE_ID=" LOG_MSGID_WORKER_START)), 2,
		     "one worker-start record per worker");
	expect_stderr_empty();
	journal_expect_clean();
}

Test(journal, completed_put)
{
	size_t size = 300 * 1000;
	char client[64], final[256], hex[33], digest[64], prefix[64];
	unsigned char *body;
	pid_t pids[2], worker;
	const struct jrec *r;
	int fd;

	start_journaled(2);
	wait_workers(2, pids);
	body = random_buf(size);
	xxh128_hex(body, size, hex);

	fd = raw_open(&d, NULL, 0);
	local_addr(fd, client, sizeof(client));
	raw_put_buf(fd, "files/journal-put.bin", body, size, NULL, final, sizeof(final));
	close(fd);
	snprintf(prefix, sizeof(prefix), "OK size=%zu ", size);
	cr_assert(strncmp(final, prefix, strlen(prefix)) == 0, "final answer: %s", final);
	cr_assert(reply_token(final, "digest", digest, sizeof(digest)), "final answer: %s",
		  final);
	cr_assert(strncmp(digest, "xxh3-128:", 9) == 0 && strcmp(digest + 9, hex) == 0,
		  "digest on the wire: %s, want xxh3-128:%s", digest, hex);

	r = journal_expect(W("MESSAGE_ID=" LOG_MSGID_TRANSFER,
			     "TCPFILED_PATH=files/journal-put.bin"));
	field_is(r, "SYSLOG_IDENTIFIER", "tcpfiled");
	field_is(r, "PRIORITY", "6");
	field_is(r, "TCPFILED_OP", "put");
	field_is(r, "TCPFILED_RESULT", "ok");
	field_is(r, "TCPFILED_CLIENT", client);
	field_is(r, "TCPFILED_SHARE", "files");
	cr_assert_eq(field_u64(r, "TCPFILED_BYTES"), size);
	(void)field_u64(r, "TCPFILED_DURATION_MS");
	field_is(r, "TCPFILED_DIGEST", digest);
	worker = field_pid(r, "TCPFILED_WORKER_PID");
	cr_assert(pid_in(worker, pids, 2), "TCPFILED_WORKER_PID=%d is no worker (%d, %d)",
		  (int)worker, (int)pids[0], (int)pids[1]);
	cr_assert_eq(r->sender, worker, "record sent by %d, names worker %d",
		     (int)r->sender, (int)worker);
	journal_expect_clean();
}

Test(journal, aborted_put)
{
	size_t size = 1000 * 1000, sent = size / 3;
	unsigned char *body;
	char line[256], path[PATH_MAX];
	const struct jrec *r;
	int fd;

	start_journaled(2);
	body = random_buf(size);
	fd = raw_open(&d, NULL, 0);
	raw_cmd(fd, line, sizeof(line), "PUT files/journal-abort.bin size=%zu continue=1", size);
	cr_assert_str_eq(line, "CONTINUE", "go-ahead: %s", line);
	/* One whole frame, then the connection drops inside the next. */
	raw_send_data(fd, body, sent, 0);
	cr_assert_eq(proto_send_line(fd, "DATA %zu", size - sent), 0);
	cr_assert_eq(write_full(fd, body + sent, 1000), 0, "sending part of a frame");
	close(fd);

	r = journal_expect(W("MESSAGE_ID=" LOG_MSGID_TRANSFER,
			     "TCPFILED_PATH=files/journal-abort.bin"));
	field_is(r, "TCPFILED_OP", "put");
	field_is(r, "TCPFILED_RESULT", "aborted");
	field_is(r, "PRIORITY", "4");           /* warning */
	cr_assert_leq(field_u64(r, "TCPFILED_BYTES"), sent + 1000, "record: %s", jrec_text(r));
	path_join(path, sizeof(path), d.share_dir, "journal-abort.bin");
	cr_assert(!path_exists(path), "an aborted upload was committed");
	journal_expect_clean();
}

Test(journal, refused_put)
{
	char line[256];
	const struct jrec *r;
	int fd;

	start_journaled(2);
	fd = raw_open(&d, NULL, 0);
	/* The whole body follows, as a pipelining client sends it: the
	 * server skips it to END and the request ends refused, not cut. */
	raw_put_buf(fd, "ro/journal-refused.bin", "0123456789abcdef", 16, NULL, line,
		    sizeof(line));
	close(fd);
	cr_assert(strncmp(line, "ERR 553 ", 8) == 0, "answer: %s", line);

	r = journal_expect(W("MESSAGE_ID=" LOG_MSGID_TRANSFER,
			     "TCPFILED_PATH=ro/journal-refused.bin"));
	field_is(r, "TCPFILED_OP", "put");
	field_is(r, "TCPFILED_RESULT", "refused");
	field_is(r, "TCPFILED_CODE", "553");
	field_is(r, "TCPFILED_SHARE", "ro");
	journal_expect_clean();
}

/* A client's bytes reach the journal escaped: a share name with ESC and a
 * newline (logged percent-encoded, as on the wire), and a refused line
 * that tries to plant fields. */
Test(journal, hostile_bytes_are_escaped)
{
	char line[256];
	const struct jrec *r;
	int fd;

	start_journaled(2);
	fd = raw_open(&d, NULL, 0);
	raw_cmd(fd, line, sizeof(line), "STAT %%1B[31m%%0Ax/y");
	cr_assert(strncmp(line, "ERR 550 ", 8) == 0, "answer: %s", line);
	raw_cmd(fd, line, sizeof(line), "BOGUS client=10.9.9.9 result=ok");
	cr_assert(strncmp(line, "ERR 500 ", 8) == 0, "answer: %s", line);
	close(fd);

	r = journal_expect(W("MESSAGE_ID=" LOG_MSGID_REQUEST,
			     "TCPFILED_SHARE=%1B[31m%0Ax"));
	field_is(r, "TCPFILED_RESULT", "refused");
	field_is(r, "TCPFILED_PATH", "%1B[31m%0Ax/y");
	/* The second refusal on the connection: the bad line. */
	r = journal_expect_nth(W("MESSAGE_ID=" LOG_MSGID_REQUEST, "TCPFILED_RESULT=refused"), 1);
	field_contains(r, "MESSAGE", "BOGUS client\\x3d10.9.9.9 result\\x3dok");
	journal_expect_clean();
}

Test(journal, killed_worker)
{
	char want[64];
	pid_t before[2], after[2], fresh = 0;
	const struct jrec *r;

	start_journaled(2);
	wait_workers(2, before);
	cr_assert_eq(kill(before[0], SIGKILL), 0);

	want_pid(want, sizeof(want), before[0]);
	r = journal_expect(W("MESSAGE_ID=" LOG_MSGID_WORKER_EXIT, want));
	field_contains(r, "MESSAGE", "signal 9");
	field_contains(r, "TCPFILED_EXIT", "signal 9");
	field_is(r, "SYSLOG_IDENTIFIER", "tcpfiled");
	cr_assert_eq(r->sender, d.pid);

	/* Its replacement is announced too. */
	wait_workers(2, after);
	for (size_t i = 0; i < 2; i++)
		if (!pid_in(after[i], before, 2))
			fresh = after[i];
	cr_assert_gt(fresh, 0, "no replacement worker");
	want_pid(want, sizeof(want), fresh);
	(void)journal_expect(W("MESSAGE_ID=" LOG_MSGID_WORKER_START, want));
	journal_expect_clean();
}

Test(journal, reload)
{
	pid_t before[2];
	const struct jrec *r;

	start_journaled(2);
	wait_workers(2, before);
	cr_assert_eq(kill(d.pid, SIGHUP), 0);

	r = journal_expect(W("MESSAGE_ID=" LOG_MSGID_RELOAD));
	field_is(r, "SYSLOG_IDENTIFIER", "tcpfiled");
	field_is(r, "PRIORITY", "5");
	cr_assert_eq(r->sender, d.pid);
	/* The new generation's workers are announced as such. */
	for (size_t i = 0; i < 2; i++) {
		pid_t pid;

		r = journal_expect_nth(W("MESSAGE_ID=" LOG_MSGID_WORKER_START,
					 "TCPFILED_GENERATION=2"), i);
		pid = field_pid(r, "TCPFILED_WORKER_PID");
		cr_assert(!pid_in(pid, before, 2), "generation 2 reuses worker %d", (int)pid);
	}
	journal_expect_clean();
}

Test(journal, shutdown)
{
	pid_t pids[2];
	size_t n;
	int status;

	start_journaled(2);
	wait_workers(2, pids);
	cr_assert_eq(kill(d.pid, SIGTERM), 0);
	status = daemon_wait_exit(&d, HARNESS_TIMEOUT_MS);
	cr_assert(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "master wait status %d", status);

	/* One record as the shutdown begins, one as the master stops. */
	n = journal_wait_count(W("MESSAGE_ID=" LOG_MSGID_SHUTDOWN), 2);
	cr_assert_geq(n, 2, "%zu shutdown records", n);
	for (size_t i = 0; i < n; i++) {
		const struct jrec *r = journal_expect_nth(W("MESSAGE_ID=" LOG_MSGID_SHUTDOWN), i);

		field_is(r, "SYSLOG_IDENTIFIER", "tcpfiled");
		field_is(r, "PRIORITY", "5");
		cr_assert_eq(r->sender, d.pid);
	}
	/* Over the whole life of the daemon, nothing went to stderr. */
	expect_stderr_empty();
	journal_expect_clean();
}

/* The reader itself, fed by libsystemd in this process: a value holding a
 * newline takes the length-prefixed form, and a record too big for a
 * datagram comes as a memfd.  The daemon's records are small and plain,
 * so only this test walks those paths. */
Test(journal, reader_decodes_native_protocol)
{
	static const char prefix[] = "TCPFILED_BIG=";
	size_t big_len = sizeof(prefix) - 1 + JOURNAL_BIG_FIELD;
	char *big = test_alloc(big_len);
	struct iovec iov[2] = {
		{ .iov_base = (void *)"TCPFILED_SELFCHECK=2", .iov_len = 20 },
		{ .iov_base = big, .iov_len = big_len },
	};
	const struct jrec *r;
	const char *v;

	journal_setup();
	memcpy(big, prefix, sizeof(prefix) - 1);
	memset(big + sizeof(prefix) - 1, 'x', JOURNAL_BIG_FIELD);
	cr_assert_eq(sd_journal_send("MESSAGE=line one\nline two",
				     "TCPFILED_SELFCHECK=1", NULL), 0);
	cr_assert_eq(sd_journal_sendv(iov, 2), 0);

	r = journal_expect(W("TCPFILED_SELFCHECK=1"));
	field_is(r, "MESSAGE", "line one\nline two");
	cr_assert_eq(r->sender, getpid());
	r = journal_expect(W("TCPFILED_SELFCHECK=2"));
	v = jrec_get(r, "TCPFILED_BIG");
	cr_assert_not_null(v);
	cr_assert_eq(strlen(v), (size_t)JOURNAL_BIG_FIELD);
	cr_assert_eq(strspn(v, "x"), (size_t)JOURNAL_BIG_FIELD);
	journal_expect_clean();
}
