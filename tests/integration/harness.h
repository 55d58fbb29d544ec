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
};

/* Creates the dir, config and shares; starts tcpfiled; waits (deadline
 * HARNESS_TIMEOUT_MS) for READY=1 (or, with no_notify, until a connection
 * gets the greeting).  Returns 0 or -errno; the test should cr_assert it. */
int daemon_start(struct daemon *d, const struct daemon_opts *opts);

/* Rewrites the config file (same dir, same shares) with new options. */
int daemon_write_config(struct daemon *d, const struct daemon_opts *opts);

/* Sends SIGTERM and waits for the master to exit; returns its wait status
 * (or -ETIMEDOUT after deadline, then SIGKILLs).  Removes the temp dir.
 * Safe to call twice. */
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

/* Runs build/tcpfile with -s d->server and the NULL-terminated args,
 * capturing stdout+stderr into out (NUL-terminated, truncated to cap).
 * Returns the exit status (0..255) or -errno. */
int tcpfile_run(struct daemon *d, char *out, size_t cap, ...);

/* Writes len random bytes to path; returns 0 or -errno. */
int make_random_file(const char *path, size_t len);
/* True when the files have identical content. */
bool files_equal(const char *a, const char *b);
/* Counts entries (recursively) under dir whose name starts with prefix
 * ("" counts everything); -errno on error. */
long count_entries(const char *dir, const char *prefix);
