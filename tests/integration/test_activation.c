/* Integration: socket activation of tcpfiled via systemd-socket-activate, and the sd_notify conversation. */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "netio.h"
#include "parse.h"

static struct daemon d;
static char activate_bin[PATH_MAX];

static void activation_fini(void)
{
	daemon_stop(&d);
}

TestSuite(activation, .fini = activation_fini, .timeout = 120);

/* systemd-socket-activate from PATH or the usual places; false if absent. */
static bool find_activate(void)
{
	static const char *const fixed[] = {
		"/usr/bin/systemd-socket-activate",
		"/lib/systemd/systemd-socket-activate",
		"/usr/lib/systemd/systemd-socket-activate",
	};
	const char *path = getenv("PATH");
	char *copy, *save = NULL;

	if (path != NULL && (copy = strdup(path)) != NULL) {
		for (char *dir = strtok_r(copy, ":", &save); dir != NULL;
		     dir = strtok_r(NULL, ":", &save)) {
			snprintf(activate_bin, sizeof(activate_bin),
				 "%s/systemd-socket-activate", dir);
			if (access(activate_bin, X_OK) == 0) {
				free(copy);
				return true;
			}
		}
		free(copy);
	}
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		if (access(fixed[i], X_OK) == 0) {
			snprintf(activate_bin, sizeof(activate_bin), "%s", fixed[i]);
			return true;
		}
	}
	return false;
}

static bool activate_listening(void *arg)
{
	return daemon_log_contains(&d, "Listening on");
}

/* Starts tcpfiled under systemd-socket-activate on d.port.  The config
 * names 127.0.0.1:1, which must be ignored in favour of the inherited
 * socket.  systemd-socket-activate only execs its command once a client
 * knocks, so this connects once and says hello; returns that connection
 * (the daemon greets it when it is up).  Consumes no notify datagram. */
static int start_activated(unsigned workers)
{
	char listen_arg[64], notify_arg[PATH_MAX + 32];
	const char *tcpfiled = harness_bin("TCPFILED_BIN");
	int r;

	if (!find_activate())
		cr_skip_test("systemd-socket-activate not found");
	cr_assert_not_null(tcpfiled, "TCPFILED_BIN is set");
	/* self_bind: the harness only picks a free port and keeps no socket;
	 * systemd-socket-activate binds it. */
	r = daemon_prepare(&d, &(struct daemon_opts){
		.workers = workers, .self_bind = true,
		.server_extra = "listen = 127.0.0.1:1" });
	cr_assert_eq(r, 0, "daemon_prepare: %s", strerror(-r));
	snprintf(listen_arg, sizeof(listen_arg), "127.0.0.1:%u", (unsigned)d.port);
	snprintf(notify_arg, sizeof(notify_arg), "NOTIFY_SOCKET=%s", d.notify_path);
	const char *argv[] = {
		activate_bin, "-l", listen_arg, "-E", notify_arg,
		tcpfiled, "-c", d.conf_path, NULL,
	};
	r = daemon_spawn(&d, argv, NULL);
	cr_assert_eq(r, 0, "daemon_spawn: %s", strerror(-r));
	cr_assert(wait_until(activate_listening, NULL, HARNESS_TIMEOUT_MS),
		  "systemd-socket-activate listens");
	r = daemon_connect(&d);
	cr_assert_geq(r, 0, "connect: %s", strerror(-r));
	/* Speak first, as every client does: a listener with
	 * TCP_DEFER_ACCEPT would not hand a silent connection over. */
	cr_assert_eq(proto_send_line(r, HARNESS_HELLO), 0);
	return r;
}

static int connect_port(uint16_t port)
{
	uint16_t saved = d.port;
	int fd;

	d.port = port;
	fd = daemon_connect(&d);
	d.port = saved;
	return fd;
}

/* Upload then download one file over one connection; checks every byte. */
static void roundtrip(const char *name, size_t size)
{
	char line[512], want[128], hex[33], remote[PATH_MAX];
	char *body = malloc(size), *back = malloc(size);
	struct body_info *bi = malloc(sizeof(*bi));
	int fd;

	cr_assert(body != NULL && back != NULL && bi != NULL);
	cr_assert_eq(getrandom(body, size, 0), (ssize_t)size);
	xxh128_hex(body, size, hex);
	snprintf(want, sizeof(want), "OK size=%zu digest=xxh3-128:%s", size, hex);
	snprintf(remote, sizeof(remote), "files/%s", name);

	fd = daemon_connect_hello(&d);
	cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
	raw_put_buf(fd, remote, body, size, NULL, line, sizeof(line));
	cr_assert_str_eq(line, want);
	cr_assert_eq(proto_send_line(fd, "GET %s", remote), 0);
	expect_line(fd, "OK ", line, sizeof(line));
	raw_recv_body(fd, back, size, bi);
	body_check(bi, size);
	cr_assert_eq(memcmp(body, back, size), 0, "downloaded bytes match");
	free(bi);
	cr_assert_eq(proto_send_line(fd, "QUIT"), 0);
	expect_line(fd, "OK bye", line, sizeof(line));
	close(fd);
	free(body);
	free(back);
}

Test(activation, serves_on_the_inherited_socket)
{
	char line[512];
	int r, fd, knock;

	knock = start_activated(2);
	r = daemon_wait_ready(&d);
	if (r < 0)
		daemon_dump_log(&d);
	cr_assert_eq(r, 0, "READY=1: %s", strerror(-r));
	expect_line(knock, "TCPFILE ", line, sizeof(line));
	cr_assert(greeting_is_v2(line), "greeting: %s", line);
	expect_line(knock, "OK ", line, sizeof(line));
	close(knock);
	roundtrip("activated.bin", 300000);
	fd = connect_port(1);
	cr_assert_eq(fd, -ECONNREFUSED, "listen = 127.0.0.1:1 was not bound");
	cr_assert(daemon_log_contains(&d, "socket activation"));
}

/* Datagrams in arrival order until one with a line starting with prefix,
 * appended to seen. */
static void collect_until(const char *prefix, char *seen, size_t cap)
{
	char msg[1024];

	for (;;) {
		int r = daemon_recv_notify(&d, HARNESS_TIMEOUT_MS, msg, sizeof(msg));

		cr_assert_eq(r, 0, "waiting for %s, got so far: %s", prefix, seen);
		snprintf(seen + strlen(seen), cap - strlen(seen), "%s\n--\n", msg);
		if (strncmp(msg, prefix, strlen(prefix)) == 0 ||
		    strstr(msg, prefix) != NULL)
			return;
	}
}

static uint64_t monotonic_usec(void)
{
	struct timespec ts;

	cr_assert_eq(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

Test(activation, notify_conversation)
{
	char seen[8192] = "", *p, *end;
	uint64_t usec, now;
	int status, knock;

	knock = start_activated(2);
	/* Before READY=1 only STATUS= may come: nothing claims readiness,
	 * reload or stop early. */
	collect_until("READY=1", seen, sizeof(seen));
	cr_assert_null(strstr(seen, "STOPPING=1"), "%s", seen);
	cr_assert_null(strstr(seen, "RELOADING=1"), "%s", seen);
	cr_assert(strstr(seen, "STATUS=") != NULL ||
		  daemon_wait_notify(&d, "STATUS=", 3000, NULL, 0) == 0,
		  "a STATUS= line: %s", seen);

	seen[0] = '\0';
	cr_assert_eq(kill(d.pid, SIGHUP), 0);
	collect_until("RELOADING=1", seen, sizeof(seen));
	now = monotonic_usec();
	p = strstr(seen, "MONOTONIC_USEC=");
	cr_assert_not_null(p, "MONOTONIC_USEC with RELOADING=1: %s", seen);
	p += strlen("MONOTONIC_USEC=");
	end = p + strcspn(p, "\n");
	*end = '\0';
	cr_assert_eq(parse_u64(p, &usec), 0, "number: %s", p);
	cr_assert(usec + 10000000 >= now && usec <= now + 10000000,
		  "MONOTONIC_USEC %llu vs now %llu", (unsigned long long)usec,
		  (unsigned long long)now);
	seen[0] = '\0';
	collect_until("READY=1", seen, sizeof(seen));

	seen[0] = '\0';
	cr_assert_eq(kill(d.pid, SIGTERM), 0);
	collect_until("STOPPING=1", seen, sizeof(seen));
	status = daemon_wait_exit(&d, 5000 + 3000);
	cr_assert(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "exit after SIGTERM (status %d)", status);
	close(knock);
}

Test(activation, reload_keeps_the_inherited_socket)
{
	pid_t old[4];
	int knock;

	knock = start_activated(2);
	cr_assert_eq(daemon_wait_ready(&d), 0);
	close(knock);
	cr_assert_eq(daemon_wait_workers(&d, 2, old, 4, HARNESS_TIMEOUT_MS), 0);
	cr_assert_eq(daemon_write_config(&d, &(struct daemon_opts){
		.workers = 3, .server_extra = "listen = 127.0.0.1:1" }), 0);
	cr_assert_eq(kill(d.pid, SIGHUP), 0);
	cr_assert_eq(daemon_wait_notify(&d, "RELOADING=1", HARNESS_TIMEOUT_MS, NULL, 0), 0);
	cr_assert_eq(daemon_wait_notify(&d, "READY=1", HARNESS_TIMEOUT_MS, NULL, 0), 0);
	cr_assert_eq(daemon_wait_workers(&d, 3, NULL, 0, HARNESS_TIMEOUT_MS), 0);
	roundtrip("after-reload.bin", 4096);
	cr_assert_eq(connect_port(1), -ECONNREFUSED);
}

Test(activation, foreign_listen_pid_is_ignored)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	const char *tcpfiled = harness_bin("TCPFILED_BIN");
	const char *const env[] = { "LISTEN_PID=1", NULL };
	int r, decoy, fd;

	cr_assert_not_null(tcpfiled);
	r = daemon_prepare(&d, &(struct daemon_opts){ .workers = 2, .self_bind = true });
	cr_assert_eq(r, 0, "daemon_prepare: %s", strerror(-r));
	/* A listening socket on another port goes in as fd 3 with
	 * LISTEN_FDS=1, but LISTEN_PID names someone else. */
	decoy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(decoy, 0);
	cr_assert_eq(bind(decoy, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(decoy, 8), 0);
	d.listen_fd = decoy;
	const char *argv[] = { tcpfiled, "-c", d.conf_path, NULL };
	r = daemon_spawn(&d, argv, env);
	cr_assert_eq(r, 0, "daemon_spawn: %s", strerror(-r));
	r = daemon_wait_ready(&d);
	if (r < 0)
		daemon_dump_log(&d);
	cr_assert_eq(r, 0, "READY=1: %s", strerror(-r));

	fd = daemon_connect_hello(&d);
	if (fd < 0)
		daemon_dump_log(&d);
	cr_assert_geq(fd, 0, "served on the configured listen address: %s",
		      strerror(-fd));
	close(fd);
	cr_assert_not(daemon_log_contains(&d, "socket activation"));
}

/* Counts notify datagrams containing needle until deadline_ms passes. */
static unsigned count_notify(const char *needle, int deadline_ms)
{
	int64_t end = harness_now_ms() + deadline_ms;
	unsigned n = 0;
	char msg[1024];

	for (int64_t now = harness_now_ms(); now < end; now = harness_now_ms())
		if (daemon_recv_notify(&d, (int)(end - now), msg, sizeof(msg)) == 0 &&
		    strstr(msg, needle) != NULL)
			n++;
	return n;
}

Test(activation, watchdog_status_counters_and_stop_extension)
{
	const char *bin = harness_bin("TCPFILED_BIN");
	const char *env[] = { "WATCHDOG_USEC=200000", NULL };
	char status[1024];
	unsigned pings;
	int r;

	cr_assert_not_null(bin);
	cr_assert_eq(daemon_prepare(&d, &(struct daemon_opts){ .workers = 2 }), 0);
	{
		const char *argv[] = { bin, "-c", d.conf_path, NULL };

		cr_assert_eq(daemon_spawn(&d, argv, env), 0);
	}
	cr_assert_eq(daemon_wait_ready(&d), 0);

	/* WatchdogSec=200ms: pings every 100 ms, about 15 in 1.5 s; at least
	 * 4 even on a loaded machine. */
	pings = count_notify("WATCHDOG=1", 1500);
	cr_assert_geq(pings, 4, "WATCHDOG=1 datagrams in 1.5 s: %u", pings);

	/* STATUS= follows the scoreboard: one upload and one download of
	 * 300000 bytes each. */
	roundtrip("status.bin", 300000);
	r = -1;
	for (int64_t end = harness_now_ms() + HARNESS_TIMEOUT_MS; harness_now_ms() < end;) {
		if (daemon_wait_notify(&d, "STATUS=", 3000, status, sizeof(status)) == 0 &&
		    strstr(status, "2 transfers, 600000 bytes") != NULL) {
			r = 0;
			break;
		}
	}
	cr_assert_eq(r, 0, "STATUS= with the transfer counters, last: %s", status);
	cr_assert_not_null(strstr(status, "2 workers"), "%s", status);

	cr_assert_eq(kill(d.pid, SIGTERM), 0);
	cr_assert_eq(daemon_wait_notify(&d, "STOPPING=1", HARNESS_TIMEOUT_MS, NULL, 0), 0);
	cr_assert(daemon_notify_seen(&d, "EXTEND_TIMEOUT_USEC=") ||
		  daemon_wait_notify(&d, "EXTEND_TIMEOUT_USEC=", 3000, NULL, 0) == 0,
		  "EXTEND_TIMEOUT_USEC= while draining");
	r = daemon_wait_exit(&d, HARNESS_TIMEOUT_MS);
	cr_assert(r >= 0 && WIFEXITED(r) && WEXITSTATUS(r) == 0, "exit status %d", r);
}
