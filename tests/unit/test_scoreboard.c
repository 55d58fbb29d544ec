/* test_scoreboard: the shared scoreboard, the pool's sizing and crash-loop rules, and status rendering. */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "pool.h"
#include "scoreboard.h"
#include "status.h"

static int wait_child(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
	cr_assert(WIFEXITED(status), "child died: status %#x", status);
	return WEXITSTATUS(status);
}

/* ---- slots and totals ---- */

Test(scoreboard, claim_release_totals_across_fork)
{
	struct scoreboard *sb = scoreboard_new(NULL);
	struct scoreboard_totals t;
	int slot, other;
	pid_t pid;

	cr_assert_not_null(sb);
	slot = scoreboard_claim(sb, 1);
	other = scoreboard_claim(sb, 1);
	cr_assert_eq(slot, 0);
	cr_assert_eq(other, 1);
	cr_assert_eq(scoreboard_slot(sb, slot)->state, WORKER_STARTING);

	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		struct scoreboard_slot *s = scoreboard_slot(sb, slot);

		scoreboard_set_state(s, WORKER_BUSY);
		scoreboard_add_bytes(s, 1000);
		scoreboard_add_transfer(s);
		scoreboard_add_bytes(s, 24);
		scoreboard_add_transfer(s);
		scoreboard_add_bytes(s, 7);
		_exit(0);
	}
	scoreboard_set_pid(sb, slot, pid);
	cr_assert_eq(wait_child(pid), 0);
	cr_assert_eq(scoreboard_slot(sb, slot)->pid, pid);

	scoreboard_set_state(scoreboard_slot(sb, other), WORKER_RETIRING);
	scoreboard_add_bytes(scoreboard_slot(sb, other), 5);
	scoreboard_add_transfer(scoreboard_slot(sb, other));
	scoreboard_totals(sb, &t);
	cr_assert_eq(t.workers, 2);
	cr_assert_eq(t.busy, 2);
	cr_assert_eq(t.transfers, 3);
	cr_assert_eq(t.bytes, 1036);

	scoreboard_release(sb, slot);
	scoreboard_totals(sb, &t);
	cr_assert_eq(t.workers, 1);
	cr_assert_eq(t.busy, 1);
	cr_assert_eq(t.transfers, 3, "released counters must be kept");
	cr_assert_eq(t.bytes, 1036);

	/* The freed slot is reused, with fresh counters. */
	cr_assert_eq(scoreboard_claim(sb, 2), slot);
	cr_assert_eq(scoreboard_slot(sb, slot)->transfers, 0);
	cr_assert_eq(scoreboard_slot(sb, slot)->generation, 2);
	scoreboard_totals(sb, &t);
	cr_assert_eq(t.workers, 2);
	cr_assert_eq(t.busy, 1);
	cr_assert_eq(t.transfers, 3);
	scoreboard_free(sb, NULL);
}

Test(scoreboard, exhaustion_and_null_slots)
{
	struct scoreboard *sb = scoreboard_new(NULL);
	struct scoreboard_totals t;

	cr_assert_not_null(sb);
	for (int i = 0; i < SCOREBOARD_SLOTS; i++)
		cr_assert_eq(scoreboard_claim(sb, 1), i);
	cr_assert_eq(scoreboard_claim(sb, 1), -1);
	scoreboard_totals(sb, &t);
	cr_assert_eq(t.workers, SCOREBOARD_SLOTS);
	cr_assert_eq(t.busy, 0);

	cr_assert_null(scoreboard_slot(sb, -1));
	cr_assert_null(scoreboard_slot(sb, SCOREBOARD_SLOTS));
	scoreboard_set_state(NULL, WORKER_BUSY);
	scoreboard_add_transfer(NULL);
	scoreboard_add_bytes(NULL, 1);
	scoreboard_begin_connection(NULL, NULL);
	scoreboard_end_connection(NULL, false);
	scoreboard_set_client(NULL, "x");
	scoreboard_begin_request(NULL, "put", "a", "b", 1);
	scoreboard_end_request(NULL);
	scoreboard_release(sb, -1);
	scoreboard_set_pid(sb, -1, 1);
	scoreboard_release(sb, 17);
	cr_assert_eq(scoreboard_claim(sb, 1), 17);
	scoreboard_free(sb, NULL);
	scoreboard_free(NULL, NULL);
	scoreboard_note_spawn(NULL);
	scoreboard_note_death(NULL, 1, 1, "x");
}

static void peer_v4(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	cr_assert_eq(inet_pton(AF_INET, ip, &in->sin_addr), 1);
}

Test(scoreboard, connection_and_request_fields)
{
	struct scoreboard *sb = scoreboard_new(NULL);
	struct sockaddr_storage peer;
	struct scoreboard_slot *s;
	struct scoreboard_view v;

	cr_assert_not_null(sb);
	s = scoreboard_slot(sb, scoreboard_claim(sb, 3));
	scoreboard_set_state(s, WORKER_IDLE);
	peer_v4(&peer, "192.0.2.7", 4242);
	scoreboard_begin_connection(s, &peer);
	cr_assert_eq(scoreboard_read(s, &v), 0);
	cr_assert_eq(v.state, WORKER_BUSY);
	cr_assert_eq(v.accepted, 1);
	cr_assert_eq(v.generation, 3);
	cr_assert_str_eq(v.client, "192.0.2.7:4242");
	cr_assert_neq(v.conn_mono_ms, 0);
	cr_assert_eq(v.req_mono_ms, 0);

	scoreboard_add_bytes(s, 100);   /* before the request: not its progress */
	scoreboard_begin_request(s, "put", "files", "dir/new\nline", 5000);
	scoreboard_add_bytes(s, 1234);
	cr_assert_eq(scoreboard_read(s, &v), 0);
	cr_assert_str_eq(v.op, "put");
	cr_assert_str_eq(v.share, "files");
	cr_assert_str_eq(v.path, "dir/new\\x0aline");
	cr_assert_eq(v.req_done, 1234);
	cr_assert_eq(v.req_total, 5000);
	cr_assert_eq(v.bytes, 1334);
	cr_assert_neq(v.req_real_ms, 0);

	scoreboard_end_request(s);
	cr_assert_eq(scoreboard_read(s, &v), 0);
	cr_assert_str_eq(v.op, "");
	cr_assert_str_eq(v.path, "");
	cr_assert_eq(v.req_mono_ms, 0);
	cr_assert_eq(v.requests, 2, "begin and end both count as progress");

	scoreboard_set_client(s, "peer\x1b[31m");
	cr_assert_eq(scoreboard_read(s, &v), 0);
	cr_assert_str_eq(v.client, "peer\\x1b[31m");

	scoreboard_end_connection(s, true);
	cr_assert_eq(scoreboard_read(s, &v), 0);
	cr_assert_eq(v.state, WORKER_RETIRING);
	cr_assert_str_eq(v.client, "");
	cr_assert_eq(v.accepted, 1);
	scoreboard_free(sb, NULL);
}

Test(scoreboard, read_gives_up_on_a_write_left_open)
{
	struct scoreboard *sb = scoreboard_new(NULL);
	struct scoreboard_slot *s;
	struct scoreboard_view v;
	int slot;

	cr_assert_not_null(sb);
	slot = scoreboard_claim(sb, 1);
	s = scoreboard_slot(sb, slot);
	scoreboard_begin_request(s, "get", "files", "x", 0);
	scoreboard_add_bytes(s, 9);
	/* A worker SIGKILLed inside a write leaves the sequence odd. */
	s->seq |= 1u;
	cr_assert_eq(scoreboard_read(s, &v), -EAGAIN);
	cr_assert_str_eq(v.path, "", "no torn text");
	cr_assert_eq(v.bytes, 9, "numbers still read");
	/* The master's release makes the slot readable again. */
	scoreboard_release(sb, slot);
	cr_assert_eq(scoreboard_read(s, &v), 0);
	scoreboard_free(sb, NULL);
}

Test(scoreboard, reader_never_sees_a_torn_path)
{
	struct scoreboard *sb = scoreboard_new(NULL);
	struct scoreboard_slot *s;
	char a[200], b[200];
	pid_t pid;

	cr_assert_not_null(sb);
	s = scoreboard_slot(sb, scoreboard_claim(sb, 1));
	memset(a, 'a', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memset(b, 'b', sizeof(b) - 1);
	b[sizeof(b) - 1] = '\0';
	scoreboard_begin_request(s, "put", "files", a, 0);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		for (int i = 0; i < 200000; i++)
			scoreboard_begin_request(s, "put", "files", i % 2 ? a : b, 0);
		_exit(0);
	}
	for (int i = 0; i < 20000; i++) {
		struct scoreboard_view v;

		if (scoreboard_read(s, &v) < 0)
			continue;
		cr_assert(strcmp(v.path, a) == 0 || strcmp(v.path, b) == 0,
			  "torn path after %d reads", i);
	}
	cr_assert_eq(wait_child(pid), 0);
	scoreboard_free(sb, NULL);
}

Test(scoreboard, deaths_ring_keeps_the_last_eight)
{
	struct scoreboard *sb = scoreboard_new(NULL);
	struct scoreboard_death d[SCOREBOARD_DEATHS];
	char why[32];

	cr_assert_not_null(sb);
	cr_assert_eq(scoreboard_read_deaths(sb, d), 0);
	for (int i = 1; i <= 11; i++) {
		snprintf(why, sizeof(why), "death %d", i);
		scoreboard_note_death(sb, 100 + i, 1, why);
	}
	cr_assert_eq(sb->deaths, 11);
	cr_assert_eq(scoreboard_read_deaths(sb, d), SCOREBOARD_DEATHS);
	cr_assert_eq(d[0].pid, 111, "newest first");
	cr_assert_str_eq(d[0].reason, "death 11");
	cr_assert_eq(d[7].pid, 104);
	cr_assert_neq(d[0].real_ms, 0);
	scoreboard_free(sb, NULL);
}

Test(scoreboard, escape_bounds_and_marks_truncation)
{
	char out[16];

	scoreboard_escape(out, sizeof(out), "plain");
	cr_assert_str_eq(out, "plain");
	scoreboard_escape(out, sizeof(out), "a\\b\"\t");
	cr_assert_str_eq(out, "a\\x5cb\"\\x09");
	scoreboard_escape(out, sizeof(out), "\xc3\xa9");
	cr_assert_str_eq(out, "\\xc3\\xa9");
	/* Exactly full: no marker. */
	scoreboard_escape(out, sizeof(out), "0123456789abcde");
	cr_assert_str_eq(out, "0123456789abcde");
	scoreboard_escape(out, sizeof(out), "0123456789abcdef");
	cr_assert_str_eq(out, "0123456789ab...");
	/* Never half an escape. */
	scoreboard_escape(out, sizeof(out), "0123456789\x01\x02");
	cr_assert_str_eq(out, "0123456789...");
	scoreboard_escape(out, 3, "abcdef");
	cr_assert_str_eq(out, "..");
	scoreboard_escape(out, 1, "abcdef");
	cr_assert_str_eq(out, "");
}

/* ---- the board file `tcpfiled status` maps ---- */

Test(scoreboard, file_board_is_shared_and_removed)
{
	char dir[] = "/tmp/test_scoreboard.XXXXXX", path[64];
	const struct scoreboard *ro;
	struct scoreboard *sb;
	struct stat st;
	int slot;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/status", dir);
	sb = scoreboard_new(path);
	cr_assert_not_null(sb, "scoreboard_new: %s", strerror(errno));
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0640);
	slot = scoreboard_claim(sb, 1);
	scoreboard_set_pid(sb, slot, 4321);

	cr_assert_eq(scoreboard_open(path, &ro), 0);
	cr_assert_eq(ro->master_pid, getpid());
	cr_assert_eq(ro->slots[slot].pid, 4321);
	scoreboard_add_bytes(scoreboard_slot(sb, slot), 77);
	cr_assert_eq(ro->slots[slot].bytes, 77, "the reader sees live updates");
	scoreboard_close(ro);

	scoreboard_free(sb, path);
	cr_assert_neq(stat(path, &st), 0, "the board file outlived its master");
	cr_assert_eq(rmdir(dir), 0, "temporary names left behind");
}

Test(scoreboard, open_refuses_other_files)
{
	char dir[] = "/tmp/test_scoreboard.XXXXXX", path[64];
	const struct scoreboard *ro;
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/status", dir);
	cr_assert_eq(scoreboard_open(path, &ro), -ENOENT);
	f = fopen(path, "we");
	cr_assert_not_null(f);
	fputs("not a board\n", f);
	fclose(f);
	cr_assert_eq(scoreboard_open(path, &ro), -EPROTO);
	cr_assert_eq(truncate(path, sizeof(struct scoreboard)), 0);
	cr_assert_eq(scoreboard_open(path, &ro), -EPROTO, "zeroes are no board");
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(rmdir(dir), 0);
}

/* ---- status rendering ---- */

static char *render(const struct scoreboard *sb, bool json)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	cr_assert_not_null(f);
	cr_assert_eq(status_render(sb, json, sb->start_mono_ms + 10000,
				   sb->start_real_ms + 10000, f), 0);
	cr_assert_eq(fclose(f), 0);
	return text;
}

static struct scoreboard *busy_board(void)
{
	struct scoreboard *sb = scoreboard_new(NULL);
	struct sockaddr_storage peer;
	struct scoreboard_slot *s;
	int slot;

	cr_assert_not_null(sb);
	scoreboard_set_pool(sb, 2, 4, 16);
	slot = scoreboard_claim(sb, 2);
	scoreboard_set_pid(sb, slot, 1111);
	s = scoreboard_slot(sb, slot);
	peer_v4(&peer, "198.51.100.9", 50000);
	scoreboard_begin_connection(s, &peer);
	scoreboard_begin_request(s, "put", "files", "a \"quoted\"\\name\x7f", 4096);
	scoreboard_add_bytes(s, 1024);
	slot = scoreboard_claim(sb, 2);
	scoreboard_set_pid(sb, slot, 2222);
	scoreboard_set_state(scoreboard_slot(sb, slot), WORKER_IDLE);
	scoreboard_note_spawn(sb);
	scoreboard_note_death(sb, 999, 1, "killed by signal 9 (SIGKILL) \"x\"");
	return sb;
}

Test(status, text_lists_workers_totals_and_deaths)
{
	struct scoreboard *sb = busy_board();
	char *text = render(sb, false);

	cr_assert_not_null(strstr(text, "generation 2"), "%s", text);
	cr_assert_not_null(strstr(text, "pool 4..16"), "%s", text);
	cr_assert_not_null(strstr(text, "1111"), "%s", text);
	cr_assert_not_null(strstr(text, "198.51.100.9:50000"), "%s", text);
	cr_assert_not_null(strstr(text, "files/a \"quoted\"\\x5cname\\x7f"), "%s", text);
	cr_assert_not_null(strstr(text, "1.0 KiB of 4.0 KiB"), "%s", text);
	cr_assert_not_null(strstr(text, "2222"), "%s", text);
	cr_assert_not_null(strstr(text, "idle"), "%s", text);
	cr_assert_not_null(strstr(text, "pid 999 (generation 1): killed by signal 9"),
			   "%s", text);
	free(text);
	scoreboard_free(sb, NULL);
}

Test(status, json_escapes_strings)
{
	struct scoreboard *sb = busy_board();
	char *text = render(sb, true);

	cr_assert_eq(text[0], '{', "%s", text);
	cr_assert_not_null(strstr(text, "\"path\":\"a \\\"quoted\\\"\\\\x5cname\\\\x7f\""),
			   "%s", text);
	cr_assert_not_null(strstr(text, "\"bytes_done\":1024,\"bytes_total\":4096"),
			   "%s", text);
	cr_assert_not_null(strstr(text, "\"reason\":\"killed by signal 9 (SIGKILL) \\\"x\\\"\""),
			   "%s", text);
	cr_assert_not_null(strstr(text, "\"spawns\":1,\"deaths\":1"), "%s", text);
	for (const char *p = text; *p; p++)
		cr_assert((unsigned char)*p >= 0x20 || *p == '\n', "raw control byte");
	free(text);
	scoreboard_free(sb, NULL);
}

/* ---- pool sizing and crash-loop accounting ---- */

static struct config pool_conf(unsigned workers, unsigned min_spare, unsigned max_spare,
			       unsigned max_workers)
{
	return (struct config){
		.workers = workers, .min_spare = min_spare, .max_spare = max_spare,
		.max_workers = max_workers,
	};
}

Test(pool, grows_exponentially_up_to_max_workers)
{
	struct config conf = pool_conf(2, 2, 4, 12);
	struct pool_size ps;

	pool_size_init(&ps, &conf);
	cr_assert_eq(ps.target, 2);
	cr_assert_eq(pool_size_tick(&ps, &conf, 2), 0, "enough spares");
	cr_assert_eq(pool_size_tick(&ps, &conf, 0), 1);
	cr_assert_eq(pool_size_tick(&ps, &conf, 0), 2);
	cr_assert_eq(pool_size_tick(&ps, &conf, 1), 4);
	cr_assert_eq(ps.target, 9);
	cr_assert_eq(pool_size_tick(&ps, &conf, 0), 3, "capped at max_workers");
	cr_assert_eq(ps.target, 12);
	cr_assert_eq(pool_size_tick(&ps, &conf, 0), 0);
	/* The rate starts over after a tick without shortage. */
	cr_assert_eq(pool_size_tick(&ps, &conf, 3), 0);
	cr_assert_eq(ps.rate, 1);
}

Test(pool, shrinks_one_a_tick_down_to_workers)
{
	struct config conf = pool_conf(2, 1, 3, 10);
	struct pool_size ps = { .target = 6, .rate = 8 };

	cr_assert_eq(pool_size_tick(&ps, &conf, 6), -1);
	cr_assert_eq(ps.target, 5);
	cr_assert_eq(ps.rate, 1);
	cr_assert_eq(pool_size_tick(&ps, &conf, 5), -1);
	cr_assert_eq(pool_size_tick(&ps, &conf, 4), -1);
	cr_assert_eq(pool_size_tick(&ps, &conf, 3), 0, "max_spare idle is fine");
	ps.target = 2;
	cr_assert_eq(pool_size_tick(&ps, &conf, 2), 0);
	conf.max_spare = 1;
	cr_assert_eq(pool_size_tick(&ps, &conf, 2), 0, "never below workers");
}

Test(pool, backoff_doubles_with_jitter_and_caps)
{
	struct pool_health h = { 0 };
	uint64_t d;

	d = pool_health_failure(&h, 1000, 0);
	cr_assert_eq(d, POOL_BACKOFF_FIRST_MS * 3 / 4);
	cr_assert_eq(h.loop_since_ms, 1000);
	d = pool_health_failure(&h, 1100, UINT32_MAX);
	cr_assert_leq(d, 200 * 5 / 4);
	cr_assert_geq(d, 200 * 3 / 4);
	for (int i = 0; i < 20; i++)
		d = pool_health_failure(&h, 1200 + (uint64_t)i, 12345);
	cr_assert_leq(d, POOL_BACKOFF_MAX_MS * 5 / 4);
	cr_assert_geq(d, POOL_BACKOFF_MAX_MS * 3 / 4);
	cr_assert_eq(h.loop_since_ms, 1000, "one run");
}

Test(pool, crash_loop_needs_failures_without_a_break)
{
	struct pool_health h = { 0 };
	uint64_t t = 5000;

	cr_assert_not(pool_health_looping(&h, t, 2000));
	pool_health_failure(&h, t, 0);
	cr_assert_not(pool_health_looping(&h, t + 1999, 2000));
	pool_health_failure(&h, t + 1500, 0);
	cr_assert(pool_health_looping(&h, t + 2000, 2000));
	cr_assert_not(pool_health_looping(&h, t + 2000, 0), "0: never give up");

	/* Any worker reaching its first accept ends the run. */
	pool_health_serving(&h);
	cr_assert_not(pool_health_looping(&h, t + 3000, 2000));

	/* Isolated failures far apart never add up: the count decays. */
	pool_health_failure(&h, t, 0);
	pool_health_decay(&h, t + POOL_QUIET_MS);
	cr_assert_eq(h.failures, 0);
	cr_assert_eq(h.loop_since_ms, 0);
	pool_health_failure(&h, t + 60000, 0);
	cr_assert_not(pool_health_looping(&h, t + 60001, 2000));
	cr_assert_eq(h.loop_since_ms, t + 60000);

	/* Several failures halve per quiet period. */
	h = (struct pool_health){ 0 };
	for (int i = 0; i < 8; i++)
		pool_health_failure(&h, t, 0);
	pool_health_decay(&h, t + POOL_QUIET_MS - 1);
	cr_assert_eq(h.failures, 8);
	pool_health_decay(&h, t + 2 * POOL_QUIET_MS);
	cr_assert_eq(h.failures, 2);
	cr_assert_neq(h.loop_since_ms, 0);
}
