/* harness: runs the real tcpfiled and tcpfile binaries for integration
 * tests: a private temp dir, a config, an ephemeral loopback listener, a
 * NOTIFY_SOCKET the test owns, and polling with deadlines (never sleeps
 * as synchronisation). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HARNESS_TIMEOUT_MS 10000
/* Longest protocol line including its LF (PROTO_MAX_LINE). */
#define HARNESS_LINE_CAP 8192

struct daemon_opts {
	unsigned workers;             /* 0 → 2 */
	const char *server_extra;     /* extra lines appended to [server] */
	const char *shares_extra;     /* extra INI text appended after the default share */
	/* true (default false → the harness passes its own socket through
	 * LISTEN_FDS/LISTEN_PID like systemd does); true makes tcpfiled bind
	 * listen = 127.0.0.1:PORT itself on a port the harness picked. */
	bool self_bind;
	bool no_notify;               /* do not set NOTIFY_SOCKET */
};

struct daemon {
	pid_t pid;                    /* master */
	char dir[256];                /* private temp dir (removed by daemon_stop) */
	char conf_path[300];          /* dir/tcpfiled.conf */
	char share_dir[300];          /* dir/files: share "files", writable */
	char ro_dir[300];             /* dir/ro: share "ro", read_only = yes */
	char log_path[300];           /* dir/stderr.log: the daemon's stderr */
	uint16_t port;
	char server[64];              /* "127.0.0.1:PORT" for tcpfile -s */
	int notify_fd;                /* our end of NOTIFY_SOCKET, -1 if none */
	char notify_path[300];
	int listen_fd;                /* socket handed over (activation), or -1 */
	/* Set once the harness has reaped the master (daemon_wait_exit,
	 * daemon_stop); wait_status is then its waitpid() status. */
	bool reaped;
	int wait_status;
};

/* Creates the dir, config and shares; starts tcpfiled; waits (deadline
 * HARNESS_TIMEOUT_MS) for READY=1 (or, with no_notify, until a connection
 * gets the greeting).  Returns 0 or -errno; the test should cr_assert it. */
int daemon_start(struct daemon *d, const struct daemon_opts *opts);

/* Rewrites the config file (same dir, same shares) with new options. */
int daemon_write_config(struct daemon *d, const struct daemon_opts *opts);

/* Sends SIGTERM and waits for the master to exit; returns its wait status
 * (or -ETIMEDOUT after deadline, then SIGKILLs).  Copies the daemon's log
 * to stderr when ITEST_DUMP_LOG is set (or it holds a sanitizer report).
 * Removes the temp dir.  Safe to call twice, and on a zeroed struct. */
int daemon_stop(struct daemon *d);

/* Reads notify datagrams until one contains a line starting with prefix
 * (e.g. "READY=1", "STATUS=", "RELOADING=1"); copies the whole datagram
 * into out.  Returns 0 or -ETIMEDOUT. */
int daemon_wait_notify(struct daemon *d, const char *prefix, int timeout_ms,
		       char *out, size_t cap);

/* Live children of pid (from /proc), up to cap.  Returns the count. */
size_t proc_children(pid_t pid, pid_t *pids, size_t cap);
/* True while pid exists and is not a zombie. */
bool proc_is_alive(pid_t pid);
/* True when pid is asleep (state S) in the syscall waiting for a
 * connection: ppoll/poll/accept4/accept per /proc/PID/syscall. */
bool proc_waits_for_connection(pid_t pid);

/* Polls cond(arg) every 10 ms until true or timeout_ms; returns true if it
 * became true. */
bool wait_until(bool (*cond)(void *arg), void *arg, int timeout_ms);

/* True when the daemon's log contains needle. */
bool daemon_log_contains(struct daemon *d, const char *needle);

/* Connects to the daemon; returns the fd (CLOEXEC) or -errno. */
int daemon_connect(struct daemon *d);

/* Protocol helpers over a connected fd (blocking, deadline-bounded). */
int proto_send_line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reads one line (without LF) into buf; returns length or -errno. */
ssize_t proto_recv_line(int fd, char *buf, size_t cap);

/* Runs $TCPFILE_BIN with -s d->server and the NULL-terminated args,
 * capturing stdout+stderr into out (NUL-terminated, truncated to cap);
 * TCPFILE_SERVER is removed from its environment.  At most 64 args: use
 * tcpfile_runv for more.  Returns the exit status (0..255), 128+signal if
 * killed, or -errno. */
int tcpfile_run(struct daemon *d, char *out, size_t cap, ...);

/* Like tcpfile_run with an argument vector (argv: the arguments after the
 * program name, NULL-terminated, any number).  d may be NULL: then no -s
 * is added.  TCPFILE_SERVER is set to server_env, or removed from the
 * environment when server_env is NULL. */
int tcpfile_runv(struct daemon *d, char *out, size_t cap,
		 const char *const argv[], const char *server_env);

/* Writes len random bytes to path; returns 0 or -errno. */
int make_random_file(const char *path, size_t len);
/* Fills buf with len random bytes; returns 0 or -errno. */
int fill_random(void *buf, size_t len);
/* True when the files have identical content. */
bool files_equal(const char *a, const char *b);
/* Counts entries (recursively) under dir whose name starts with prefix
 * ("" counts everything but a share's state directory ".tcpfiled" itself,
 * whose contents count); -errno on error. */
long count_entries(const char *dir, const char *prefix);

/* ---- Lower-level pieces (daemon_start = prepare + spawn + wait_ready) ---- */

/* Creates the dir, shares, notify socket and config; picks the port (and,
 * unless self_bind, creates the listening socket that daemon_spawn hands
 * over).  Nothing runs yet.  Returns 0 or -errno (nothing left behind). */
int daemon_prepare(struct daemon *d, const struct daemon_opts *opts);

/* Forks and execs argv (argv[0] is a path) as the "master": stdin from
 * /dev/null, stdout+stderr appended to d->log_path, NOTIFY_SOCKET set when
 * the harness has one, JOURNAL_STREAM dropped, d->listen_fd (if >= 0)
 * passed as fd 3 with LISTEN_FDS=1 and LISTEN_PID=<child pid> (then closed
 * here), and env ("NAME=value" strings, NULL-terminated, may be NULL)
 * applied last, overriding.  Does not wait.  Returns 0 or -errno. */
int daemon_spawn(struct daemon *d, const char *const *argv,
		 const char *const *env);

/* Waits (HARNESS_TIMEOUT_MS) for READY=1, or with no notify socket for a
 * greeting.  -ECHILD when the master exited first, -ETIMEDOUT. */
int daemon_wait_ready(struct daemon *d);

/* Waits for the master to exit without signalling it; returns its wait
 * status (also kept in d->wait_status) or -ETIMEDOUT.  d->pid stays set. */
int daemon_wait_exit(struct daemon *d, int timeout_ms);

/* Next notify datagram in arrival order (NUL-terminated into out).
 * Returns 0, -ETIMEDOUT, or -EBADF without a notify socket.  The harness
 * drains the socket into a queue whenever it polls (wait_until, line
 * reads), so the daemon never blocks on a full datagram queue and nothing
 * is lost; daemon_wait_notify drops the datagrams it skips. */
int daemon_recv_notify(struct daemon *d, int timeout_ms, char *out, size_t cap);

/* The whole log so far (malloc'd, NUL-terminated) or NULL. */
char *daemon_log_read(struct daemon *d);
/* Copies the daemon's log to stderr (for diagnosing a failed test). */
void daemon_dump_log(struct daemon *d);

/* proto_recv_line returns -ENODATA on EOF before any byte of a line,
 * -EPROTO on EOF inside a line, -EMSGSIZE if the line does not fit cap,
 * -ETIMEDOUT after HARNESS_TIMEOUT_MS. */

/* Runs argv (argv[0] a path, NULL-terminated) with stdout+stderr captured
 * into out like tcpfile_run (HARNESS_RUN_TIMEOUT_MS deadline).  Returns
 * the exit status, 128+signal if killed, or -errno. */
int harness_run(const char *const *argv, char *out, size_t cap);

#define HARNESS_RUN_TIMEOUT_MS 120000

/* A program started by harness_spawn, its stdout+stderr on a pipe. */
struct harness_proc {
	pid_t pid;
	int out_fd;     /* read end; harness_proc_wait closes it */
};

/* Starts argv (argv[0] a path) with stdin from /dev/null and env
 * ("NAME=value", NULL-terminated, may be NULL) added to the environment,
 * without waiting.  0 or -errno; on success harness_proc_wait must
 * follow. */
int harness_spawn(const char *const *argv, const char *const *env,
		  struct harness_proc *p);
/* Collects the output into out (as harness_run does) until EOF, then
 * reaps the program; at the deadline kills it and returns -ETIMEDOUT (out
 * keeps what arrived).  Returns the exit status, 128+signal, or -errno. */
int harness_proc_wait(struct harness_proc *p, char *out, size_t cap,
		      int timeout_ms);
/* tcpfile_runv without waiting: starts the client for harness_proc_wait
 * (a test can then play the server's part). */
int tcpfile_spawnv(struct daemon *d, const char *const argv[],
		   const char *server_env, struct harness_proc *p);
/* harness_spawn with stdin from in_fd (-1: /dev/null; not taken over). */
int harness_spawn_in(const char *const *argv, const char *const *env,
		     int in_fd, struct harness_proc *p);
/* tcpfile_spawnv without TCPFILE_SERVER, with env ("NAME=value",
 * NULL-terminated, may be NULL) added and stdin from in_fd (-1:
 * /dev/null). */
int tcpfile_spawn_env(struct daemon *d, const char *const argv[],
		      const char *const *env, int in_fd, struct harness_proc *p);

/* Removes path and everything beneath it (directories without permissions
 * are made accessible first).  Best effort: problems go to stderr, so a
 * cleanup failure does not mask a test's verdict. */
void harness_rm_rf(const char *path);

/* True when pid is one of set[0..n). */
bool pid_in(pid_t pid, const pid_t *set, size_t n);

/* $var (TCPFILED_BIN, TCPFILE_BIN), or NULL when unset. */
const char *harness_bin(const char *var);

/* A currently free TCP port on 127.0.0.1 (bind to 0, read, close). */
int harness_free_port(uint16_t *port);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t harness_now_ms(void);

/* Number of open descriptors of pid (/proc/PID/fd) or -errno. */
long proc_count_fds(pid_t pid);

/* Every notify datagram received so far, oldest first, each followed by a
 * newline (malloc'd; NULL without a notify socket).  Unaffected by what
 * daemon_wait_notify / daemon_recv_notify consumed. */
char *daemon_notify_history(struct daemon *d);
/* True when any datagram so far had a line starting with prefix. */
bool daemon_notify_seen(struct daemon *d, const char *prefix);

#define HARNESS_MAX_WORKERS 64

/* Waits until the master has exactly n live children, all blocked waiting
 * for a connection; copies up to cap of their pids.  0 or -ETIMEDOUT. */
int daemon_wait_workers(struct daemon *d, size_t n, pid_t *pids, size_t cap,
			int timeout_ms);

/* The hello every harness client sends right after connecting: the
 * listener has TCP_DEFER_ACCEPT, so a client that waits for the greeting
 * before speaking is not even accepted for seconds. */
#define HARNESS_HELLO "HELLO 2 client=itest/1"

/* daemon_connect, then HARNESS_HELLO at once, then the greeting (a
 * "TCPFILE " line listing version 2) and "OK version=2...": the fd, or
 * -errno (-EPROTO for any other line, e.g. ERR 421). */
int daemon_connect_hello(struct daemon *d);

/* True when line is a greeting that lists protocol version 2. */
bool greeting_is_v2(const char *line);

/* The value of token name in a reply's space-separated tokens (an OK, END
 * or ENTRY line; the first word is skipped when it is no token) copied
 * into out; false when absent (or it does not fit).  Parsed here, not by
 * src/common/protocol.c, so the tests check the codec independently. */
bool reply_token(const char *line, const char *name, char *out, size_t cap);

/* Finds the daemon's last log record "<op> <path> from ...: <result>...,
 * N bytes in M ms" and returns N in *bytes and the record in line (may be
 * NULL).  0, or -ENOENT while there is none. */
int daemon_log_op_bytes(struct daemon *d, const char *op, const char *path,
			uint64_t *bytes, char *line, size_t cap);

/* XXH3-128 as lower-case hex, computed with libxxhash directly (not the
 * project's digest module), for "xxh3-128:<hex>" comparisons. */
void xxh128_hex(const void *buf, size_t len, char out[33]);
int file_xxh128_hex(const char *path, char out[33]);

/* True when the daemon's log holds an ASan/LSan/UBSan report (daemon_stop
 * also prints the log then). */
bool daemon_log_has_sanitizer_report(struct daemon *d);

/* Fixture pattern: one `static struct daemon d;` per test file and a
 * TestSuite(..., .fini = f) whose f calls daemon_stop(&d).  daemon_stop is
 * a no-op on a zeroed struct, so a failed cr_assert still stops the master
 * and its workers and removes the temp dir; and a test process that dies
 * without its .fini takes the daemon along (PR_SET_PDEATHSIG in the
 * spawned child). */

/* ---- Asserting helpers for test bodies ----
 * Unlike everything above, these fail the running test (cr_assert) instead
 * of returning an error: call them only from a Criterion test or fixture.
 * Blocks and connections they hand out live until test_release_all(),
 * which the suite's .fini calls, so a failed assertion that leaves a test
 * early leaks nothing. */

/* daemon_start, failing the test when it fails; opts NULL: defaults. */
void start_daemon(struct daemon *d, const struct daemon_opts *opts);

#define TEST_MAX_OWNED 64
#define TEST_MAX_CONNS 4

void *test_alloc(size_t n);
/* p may be NULL or a block not from test_alloc (then nothing happens). */
void test_free(void *p);
/* Closes every open raw_conn and frees every test_alloc block. */
void test_release_all(void);

/* n random bytes in a test_alloc block. */
void *random_buf(size_t n);
/* The whole of /proc/PID/NAME ("maps", "status"), NUL-terminated, in a
 * test_alloc block. */
char *proc_text(pid_t pid, const char *name);
/* Creates or truncates path with exactly p[0..n). */
void write_file(const char *path, const void *p, size_t n);
/* True when path holds exactly p[0..n). */
bool file_is(const char *path, const void *p, size_t n);
/* "dir/name" into out; fails the test when it does not fit. */
void path_join(char *out, size_t cap, const char *dir, const char *name);
/* True when lstat(path) succeeds. */
bool path_exists(const char *path);

/* mkdtemp("/tmp/<tag>.XXXXXX") into dir (which must be empty: Criterion
 * runs a suite's .init and then the test's own, and only one of them may
 * create it).  scratch_remove removes it and empties dir; no-op on "". */
void scratch_create(char *dir, size_t cap, const char *tag);
void scratch_remove(char *dir);

/* Reads one line from fd; fails unless it starts with prefix. */
void expect_line(int fd, const char *prefix, char *line, size_t cap);

/* A plain connection: daemon_connect, HARNESS_HELLO, the greeting (must
 * list version 2; copied into greeting when that is non-NULL) and
 * "OK version=2".  Returns the fd; the caller closes it. */
int raw_open(struct daemon *d, char *greeting, size_t cap);
/* One answer line. */
void raw_recv(int fd, char *out, size_t cap);
/* Sends one request line and reads one answer line. */
void raw_cmd(int fd, char *out, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Sends p[0..n) as DATA frames of at most chunk bytes (0: the protocol's
 * largest), each header and its bytes in one write. */
void raw_send_data(int fd, const void *p, size_t n, size_t chunk);
/* raw_send_data, then "END" with end_tokens (may be NULL) appended. */
void raw_send_body(int fd, const void *p, size_t n, size_t chunk,
		   const char *end_tokens);
/* PUT in the pipelined form: "PUT remote size=n[ opts]", the body frames
 * and END at once, then the one final answer into final (a refusal at the
 * header arrives as that answer too; the server skips the frames). */
void raw_put_buf(int fd, const char *remote, const void *p, size_t n,
		 const char *opts, char *final, size_t cap);
/* raw_put_buf with end_tokens (e.g. "digest=sha256:...", may be NULL)
 * on the END line. */
void raw_put_end(int fd, const char *remote, const void *p, size_t n,
		 const char *opts, const char *end_tokens, char *final, size_t cap);

/* Digest texts computed here with libxxhash and OpenSSL, independently of
 * src/common/digest.c: "xxh3-128:<32 hex>" and "sha256:<64 hex>". */
#define DIGEST_TEXT_LEN 80
struct hasher {
	void *xxh;      /* XXH3_state_t */
	void *sha;      /* EVP_MD_CTX, NULL when only xxh3-128 is wanted */
};
/* with_sha256 false: only the xxh3-128 text is produced (faster). */
void hasher_init(struct hasher *h, bool with_sha256);
void hasher_update(struct hasher *h, const void *p, size_t n);
/* Writes the texts (sha may be NULL; "" without sha256) and frees the
 * state. */
void hasher_final(struct hasher *h, char *xxh, char *sha);
void digest_buf(const void *p, size_t n, char *xxh, char *sha);
void digest_file(const char *path, char *xxh, char *sha);

/* A connection whose answers may carry a body: status lines and body bytes
 * come through one buffer in step, so no byte read ahead of a body is
 * lost.  At most TEST_MAX_CONNS open at a time. */
struct raw_conn;

/* Connects with SO_RCVTIMEO/SO_SNDTIMEO of io_timeout_ms and says hello
 * as raw_open does. */
struct raw_conn *raw_conn_open(struct daemon *d, int io_timeout_ms,
			       char *greeting, size_t cap);
void raw_conn_close(struct raw_conn *c);
int raw_conn_fd(const struct raw_conn *c);
/* One line (status, frame header, ENTRY). */
void raw_conn_line(struct raw_conn *c, char *out, size_t cap);
/* Sends one request line and reads the status line into status. */
void raw_conn_cmd(struct raw_conn *c, char *status, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Exactly n raw bytes (buffered ones first). */
void raw_conn_read(struct raw_conn *c, void *p, size_t n);

/* A body as it arrived: DATA frames up to END or ABORT. */
struct body_info {
	uint64_t len;                   /* body bytes received */
	uint64_t frames;                /* DATA frames */
	int64_t first_byte_ms;          /* harness_now_ms() when the first
					   body byte was in; 0 for none */
	bool aborted;                   /* ended by ABORT */
	char last[HARNESS_LINE_CAP];    /* the END or ABORT line */
	char digest[DIGEST_TEXT_LEN];   /* END's digest= ("" if none) */
	char computed[DIGEST_TEXT_LEN]; /* the received bytes' digest, in
					   the algorithm digest= named
					   (xxh3-128 without one) */
};
/* Reads one body.  The bytes go to out_fd when >= 0, and into buf when not
 * NULL (more than cap bytes fail the test).  Framing errors fail the
 * test. */
void raw_conn_read_body(struct raw_conn *c, int out_fd, void *buf, size_t cap,
			struct body_info *bi);
/* raw_conn_read_body on a plain fd (from raw_open or
 * daemon_connect_hello), into buf only. */
void raw_recv_body(int fd, void *buf, size_t cap, struct body_info *bi);
/* Fails the test unless the body has n bytes and ended with an END whose
 * digest= matches them. */
void body_check(const struct body_info *bi, uint64_t n);
/* Exactly n body bytes ended by an END whose digest= matches them, in a
 * test_alloc block. */
unsigned char *raw_conn_body(struct raw_conn *c, uint64_t n);
/* Exactly n body bytes as above, streamed into path (created or
 * truncated). */
void raw_conn_body_to_file(struct raw_conn *c, uint64_t n, const char *path);
