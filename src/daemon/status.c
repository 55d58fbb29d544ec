/* status: renders the live scoreboard for `tcpfiled status` (text or JSON). */
#define _GNU_SOURCE
#include "status.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "build_config.h"
#include "config.h"
#include "monotonic.h"

struct status_counts {
	unsigned workers, idle, busy, other;
};

static void status_count(const struct scoreboard *sb, struct status_counts *c)
{
	*c = (struct status_counts){ 0 };
	for (size_t i = 0, hwm = scoreboard_hwm(sb); i < hwm; i++) {
		int st = __atomic_load_n(&sb->slots[i].state, __ATOMIC_ACQUIRE);

		if (st == WORKER_FREE)
			continue;
		c->workers++;
		if (st == WORKER_IDLE)
			c->idle++;
		else if (st == WORKER_BUSY || st == WORKER_WAITING)
			c->busy++;
		else
			c->other++;
	}
}

/* "2024-05-01T12:00:00Z" (UTC, what JSON consumers parse everywhere). */
static const char *status_iso_time(uint64_t real_ms, char *buf, size_t cap)
{
	time_t t = (time_t)(real_ms / 1000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, cap, "?");
	return buf;
}

/* "3d04h", "2h05m", "4m07s", "12.3s". */
static const char *status_duration(uint64_t ms, char *buf, size_t cap)
{
	uint64_t s = ms / 1000;

	if (s >= 86400)
		snprintf(buf, cap, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, cap, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, cap, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	else
		snprintf(buf, cap, "%" PRIu64 ".%" PRIu64 "s", s, ms % 1000 / 100);
	return buf;
}

/* 1023 B, 1.5 KiB, 20.0 MiB ... */
static const char *status_bytes(uint64_t n, char *buf, size_t cap)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)n;
	size_t u = 0;

	if (n < 1024) {
		snprintf(buf, cap, "%" PRIu64 " B", n);
		return buf;
	}
	v /= 1024;
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	snprintf(buf, cap, "%.1f %s", v, units[u]);
	return buf;
}

static uint64_t status_since(uint64_t now, uint64_t then)
{
	return then && now > then ? now - then : 0;
}

/* Bytes per second of the request in progress, 0 when unknown. */
static uint64_t status_rate(const struct scoreboard_view *v, uint64_t now_mono)
{
	uint64_t ms = status_since(now_mono, v->req_mono_ms);

	if (!v->req_mono_ms || ms == 0)
		return 0;
	return v->req_done * 1000 / ms;
}

static void status_text_worker(const struct scoreboard_view *v, uint64_t now_mono,
			       FILE *out)
{
	char what[SCOREBOARD_SHARE_MAX + SCOREBOARD_PATH_MAX + 2] = "-";
	char done[32], total[32], rate[40] = "-", age[32], progress[80] = "-";

	if (v->share[0] || v->path[0])
		snprintf(what, sizeof(what), "%s%s%s", v->share,
			 v->share[0] && v->path[0] ? "/" : "", v->path);
	if (v->req_mono_ms) {
		status_bytes(v->req_done, done, sizeof(done));
		if (v->req_total)
			snprintf(progress, sizeof(progress), "%s of %s", done,
				 status_bytes(v->req_total, total, sizeof(total)));
		else
			snprintf(progress, sizeof(progress), "%s", done);
		snprintf(rate, sizeof(rate), "%s/s",
			 status_bytes(status_rate(v, now_mono), done, sizeof(done)));
		status_duration(status_since(now_mono, v->req_mono_ms), age, sizeof(age));
	} else if (v->conn_mono_ms) {
		status_duration(status_since(now_mono, v->conn_mono_ms), age, sizeof(age));
	} else {
		status_duration(status_since(now_mono, v->start_mono_ms), age, sizeof(age));
	}
	fprintf(out, "%-8d %4u  %-8s %-22s %-5s %-10s %-12s %-24s %-6" PRIu64 " %s\n",
		(int)v->pid, v->generation, scoreboard_state_name(v->state),
		v->client[0] ? v->client : "-", v->op[0] ? v->op : "-", rate, age,
		progress, v->accepted, what);
}

static void status_text(const struct scoreboard *sb, uint64_t now_mono,
			uint64_t now_real, FILE *out)
{
	struct scoreboard_death deaths[SCOREBOARD_DEATHS];
	struct scoreboard_totals t;
	struct status_counts c;
	char when[32], up[32], bytes[32];
	size_t n;

	scoreboard_totals(sb, &t);
	status_count(sb, &c);
	fprintf(out, "tcpfiled master %d, up %s (since %s), generation %u\n",
		(int)sb->master_pid,
		status_duration(status_since(now_mono, sb->start_mono_ms), up, sizeof(up)),
		status_iso_time(sb->start_real_ms, when, sizeof(when)),
		__atomic_load_n(&sb->generation, __ATOMIC_RELAXED));
	fprintf(out, "workers: %u (%u idle, %u busy, %u starting or retiring); "
		"pool %u..%u\n", c.workers, c.idle, c.busy, c.other,
		__atomic_load_n(&sb->min_workers, __ATOMIC_RELAXED),
		__atomic_load_n(&sb->max_workers, __ATOMIC_RELAXED));
	fprintf(out, "totals: %" PRIu64 " connections, %" PRIu64 " transfers, %s; "
		"%" PRIu64 " workers started, %" PRIu64 " died\n",
		t.accepted, t.transfers, status_bytes(t.bytes, bytes, sizeof(bytes)),
		__atomic_load_n(&sb->spawns, __ATOMIC_RELAXED),
		__atomic_load_n(&sb->deaths, __ATOMIC_RELAXED));
	(void)now_real;

	fprintf(out, "\n%-8s %4s  %-8s %-22s %-5s %-10s %-12s %-24s %-6s %s\n",
		"PID", "GEN", "STATE", "CLIENT", "OP", "RATE", "FOR", "DONE", "CONNS",
		"SHARE/PATH");
	for (size_t i = 0, hwm = scoreboard_hwm(sb); i < hwm; i++) {
		struct scoreboard_view v;

		if (__atomic_load_n(&sb->slots[i].state, __ATOMIC_ACQUIRE) == WORKER_FREE)
			continue;
		scoreboard_read(&sb->slots[i], &v);
		if (v.state == WORKER_FREE)
			continue;
		status_text_worker(&v, now_mono, out);
	}

	n = scoreboard_read_deaths(sb, deaths);
	if (n) {
		fprintf(out, "\nlast deaths:\n");
		for (size_t i = 0; i < n; i++)
			fprintf(out, "  %s  pid %d (generation %u): %s\n",
				status_iso_time(deaths[i].real_ms, when, sizeof(when)),
				(int)deaths[i].pid, deaths[i].generation, deaths[i].reason);
	}
}

/* A JSON string: quotes, backslashes and control bytes escaped; a byte
 * above 0x7f (the board stores none, but a file is outside input) is
 * written as its code point, so the output is always valid JSON. */
static void status_json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

static void status_json_worker(const struct scoreboard_view *v, uint64_t now_mono,
			       FILE *out)
{
	fprintf(out, "{\"pid\":%d,\"generation\":%u,\"state\":", (int)v->pid, v->generation);
	status_json_string(out, scoreboard_state_name(v->state));
	fprintf(out, ",\"client\":");
	status_json_string(out, v->client);
	fprintf(out, ",\"op\":");
	status_json_string(out, v->op);
	fprintf(out, ",\"share\":");
	status_json_string(out, v->share);
	fprintf(out, ",\"path\":");
	status_json_string(out, v->path);
	fprintf(out, ",\"bytes_done\":%" PRIu64 ",\"bytes_total\":%" PRIu64
		",\"rate_bytes_per_s\":%" PRIu64 ",\"request_ms\":%" PRIu64
		",\"connection_ms\":%" PRIu64 ",\"worker_ms\":%" PRIu64
		",\"connections\":%" PRIu64 ",\"transfers\":%" PRIu64 ",\"bytes\":%" PRIu64 "}",
		v->req_done, v->req_total, status_rate(v, now_mono),
		status_since(now_mono, v->req_mono_ms), status_since(now_mono, v->conn_mono_ms),
		status_since(now_mono, v->start_mono_ms), v->accepted, v->transfers, v->bytes);
}

static void status_json(const struct scoreboard *sb, uint64_t now_mono,
			uint64_t now_real, FILE *out)
{
	struct scoreboard_death deaths[SCOREBOARD_DEATHS];
	struct scoreboard_totals t;
	struct status_counts c;
	char when[32];
	bool first = true;
	size_t n;

	scoreboard_totals(sb, &t);
	status_count(sb, &c);
	fprintf(out, "{\"master_pid\":%d,\"generation\":%u,\"started\":",
		(int)sb->master_pid, __atomic_load_n(&sb->generation, __ATOMIC_RELAXED));
	status_json_string(out, status_iso_time(sb->start_real_ms, when, sizeof(when)));
	fprintf(out, ",\"now\":");
	status_json_string(out, status_iso_time(now_real, when, sizeof(when)));
	fprintf(out, ",\"uptime_ms\":%" PRIu64 ",\"pool\":{\"workers\":%u,\"max_workers\":%u}",
		status_since(now_mono, sb->start_mono_ms),
		__atomic_load_n(&sb->min_workers, __ATOMIC_RELAXED),
		__atomic_load_n(&sb->max_workers, __ATOMIC_RELAXED));
	fprintf(out, ",\"totals\":{\"workers\":%u,\"idle\":%u,\"busy\":%u,\"other\":%u,"
		"\"connections\":%" PRIu64 ",\"transfers\":%" PRIu64 ",\"bytes\":%" PRIu64
		",\"spawns\":%" PRIu64 ",\"deaths\":%" PRIu64 "}",
		c.workers, c.idle, c.busy, c.other, t.accepted, t.transfers, t.bytes,
		__atomic_load_n(&sb->spawns, __ATOMIC_RELAXED),
		__atomic_load_n(&sb->deaths, __ATOMIC_RELAXED));
	fprintf(out, ",\"workers\":[");
	for (size_t i = 0, hwm = scoreboard_hwm(sb); i < hwm; i++) {
		struct scoreboard_view v;

		if (__atomic_load_n(&sb->slots[i].state, __ATOMIC_ACQUIRE) == WORKER_FREE)
			continue;
		scoreboard_read(&sb->slots[i], &v);
		if (v.state == WORKER_FREE)
			continue;
		if (!first)
			fputc(',', out);
		first = false;
		status_json_worker(&v, now_mono, out);
	}
	fprintf(out, "],\"last_deaths\":[");
	n = scoreboard_read_deaths(sb, deaths);
	for (size_t i = 0; i < n; i++) {
		fprintf(out, "%s{\"pid\":%d,\"generation\":%u,\"time\":", i ? "," : "",
			(int)deaths[i].pid, deaths[i].generation);
		status_json_string(out, status_iso_time(deaths[i].real_ms, when, sizeof(when)));
		fprintf(out, ",\"reason\":");
		status_json_string(out, deaths[i].reason);
		fputc('}', out);
	}
	fprintf(out, "]}\n");
}

int status_render(const struct scoreboard *sb, bool json, uint64_t now_mono_ms,
		  uint64_t now_real_ms, FILE *out)
{
	if (json)
		status_json(sb, now_mono_ms, now_real_ms, out);
	else
		status_text(sb, now_mono_ms, now_real_ms, out);
	return fflush(out) == 0 && !ferror(out) ? 0 : -EIO;
}

static void status_usage(FILE *out, const char *default_config)
{
	fprintf(out,
		"Usage: tcpfiled status [-c FILE] [--json]\n"
		"  -c FILE  configuration file naming status_file (default %s)\n"
		"  --json   one JSON object instead of the table\n"
		"  -h       show this help\n",
		default_config);
}

/* The board file exists, but is its master still there?  A master that
 * was SIGKILLed leaves it behind. */
static bool status_master_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

int status_main(int argc, char **argv, const char *default_config)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = default_config;
	char err[CONFIG_ERROR_MAX];
	const struct scoreboard *sb;
	struct config *conf = NULL;
	struct timespec real;
	bool json = false;
	int opt, r, status;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			status_usage(stdout, default_config);
			return EX_OK;
		default:
			status_usage(stderr, default_config);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "tcpfiled status: unexpected argument: %s\n", argv[optind]);
		status_usage(stderr, default_config);
		return EX_USAGE;
	}
	r = config_load(config_path, &conf, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "tcpfiled status: %s\n", err);
		return EX_CONFIG;
	}
	if (!conf->status_file[0]) {
		fprintf(stderr, "tcpfiled status: %s sets no status_file\n", config_path);
		config_free(conf);
		return EX_CONFIG;
	}
	r = scoreboard_open(conf->status_file, &sb);
	if (r < 0) {
		fprintf(stderr, "tcpfiled status: %s: %s\n", conf->status_file,
			r == -ENOENT ? "no such file: tcpfiled is not running" :
			r == -EPROTO ? "not a status file of this tcpfiled version" :
			strerror(-r));
		status = r == -ENOENT ? STATUS_NOT_RUNNING :
			 r == -EACCES || r == -EPERM ? EX_NOPERM : EX_NOINPUT;
		config_free(conf);
		return status;
	}
	if (!status_master_alive(sb->master_pid)) {
		fprintf(stderr, "tcpfiled status: %s: left by master %d, which is gone: "
			"tcpfiled is not running\n", conf->status_file, (int)sb->master_pid);
		scoreboard_close(sb);
		config_free(conf);
		return STATUS_NOT_RUNNING;
	}
	clock_gettime(CLOCK_REALTIME, &real);
	r = status_render(sb, json, monotonic_ms(), (uint64_t)real.tv_sec * 1000 +
			  (uint64_t)real.tv_nsec / 1000000, stdout);
	scoreboard_close(sb);
	config_free(conf);
	if (r < 0) {
		fprintf(stderr, "tcpfiled status: writing: %s\n", strerror(-r));
		return EX_IOERR;
	}
	return EX_OK;
}
