/* progress: draws and erases tcpfile's one-line progress bar with \r. */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "netio.h"
#include "parse.h"

#define PROGRESS_DEFAULT_WIDTH 80
#define PROGRESS_LINE_MAX 512
/* Erase from the cursor to the end of the line (VT100, every terminal). */
#define PROGRESS_CLEAR_EOL "\033[K"

static uint64_t progress_now_ns(void)
{
	struct timespec ts;

	/* Cannot fail for CLOCK_MONOTONIC; 0 merely keeps the bar hidden. */
	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static size_t progress_width(int fd)
{
	struct winsize ws;

	if (ioctl(fd, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0)
		return PROGRESS_DEFAULT_WIDTH;
	return ws.ws_col;
}

static void progress_format_eta(char *buf, size_t cap, double secs)
{
	uint64_t s;

	if (secs < 0 || secs > 359999.0) {
		snprintf(buf, cap, "--:--");
		return;
	}
	s = (uint64_t)(secs + 0.5);
	if (s >= 3600)
		snprintf(buf, cap, "%u:%02u:%02u", (unsigned)(s / 3600),
			 (unsigned)(s / 60 % 60), (unsigned)(s % 60));
	else
		snprintf(buf, cap, "%u:%02u", (unsigned)(s / 60), (unsigned)(s % 60));
}

/* Copies at most room bytes of name, never splitting a UTF-8 sequence
 * (bytes >= columns, so the cut name fits the columns it is given). */
static size_t progress_copy_name(char *out, const char *name, size_t room)
{
	size_t len = strlen(name);
	size_t n = len < room ? len : room;

	if (n < len)
		while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80)
			n--;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		out[i] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
	}
	return n;
}

size_t progress_format(char *buf, size_t cap, const char *name,
		       uint64_t done, uint64_t total, uint64_t elapsed_ns,
		       size_t width)
{
	char done_s[32], rate_s[32], eta_s[32], tail[128];
	char line[PROGRESS_LINE_MAX];
	double secs = (double)elapsed_ns / 1e9;
	double rate = secs > 0 ? (double)done / secs : 0;
	double pct = total ? (double)done * 100.0 / (double)total : 100.0;
	size_t n, tail_len, room;
	int r;

	if (pct > 100.0)
		pct = 100.0;
	format_size(done, done_s, sizeof(done_s));
	format_size((uint64_t)rate, rate_s, sizeof(rate_s));
	if (rate >= 1.0 && done <= total)
		progress_format_eta(eta_s, sizeof(eta_s), (double)(total - done) / rate);
	else
		progress_format_eta(eta_s, sizeof(eta_s), -1);
	if (total == PROGRESS_TOTAL_UNKNOWN)
		r = snprintf(tail, sizeof(tail), "  %s  %s/s", done_s, rate_s);
	else
		r = snprintf(tail, sizeof(tail), "  %3u%%  %s  %s/s  ETA %s",
			     (unsigned)pct, done_s, rate_s, eta_s);
	tail_len = r < 0 ? 0 : (size_t)r;
	if (tail_len >= sizeof(tail))
		tail_len = sizeof(tail) - 1;

	/* The last column stays empty: writing into it makes some terminals
	 * wrap, and the next \r would then redraw on a fresh line. */
	if (width > sizeof(line) - 1)
		width = sizeof(line) - 1;
	room = width > tail_len + 1 ? width - tail_len - 1 : 0;
	n = progress_copy_name(line, name, room);
	memcpy(line + n, tail, tail_len);
	n += tail_len;
	line[n] = '\0';

	if (cap == 0)
		return 0;
	if (n >= cap)
		n = cap - 1;
	memcpy(buf, line, n);
	buf[n] = '\0';
	return n;
}

static void progress_draw(struct progress *p, uint64_t now)
{
	char line[PROGRESS_LINE_MAX + sizeof(PROGRESS_CLEAR_EOL) + 1];
	size_t n;

	line[0] = '\r';
	n = 1 + progress_format(line + 1, PROGRESS_LINE_MAX, p->name, p->done,
				p->total, now - p->start_ns, progress_width(p->fd));
	memcpy(line + n, PROGRESS_CLEAR_EOL, sizeof(PROGRESS_CLEAR_EOL) - 1);
	n += sizeof(PROGRESS_CLEAR_EOL) - 1;
	/* A bar that cannot be drawn is no reason to fail a transfer. */
	(void)write_full(p->fd, line, n);
	p->shown = true;
	p->last_ns = now;
}

void progress_init(struct progress *p, int fd, bool enabled)
{
	*p = (struct progress){ .fd = fd, .enabled = enabled, .name = "" };
}

void progress_begin(struct progress *p, const char *name, uint64_t total)
{
	if (!p->enabled)
		return;
	progress_clear(p);
	p->name = name;
	p->total = total;
	p->done = 0;
	p->start_ns = progress_now_ns();
	p->last_ns = 0;
}

void progress_update(struct progress *p, uint64_t done)
{
	uint64_t now;

	if (!p->enabled)
		return;
	p->done = done;
	now = progress_now_ns();
	if (now - p->start_ns < PROGRESS_DELAY_NS)
		return;
	if (p->shown && now - p->last_ns < PROGRESS_PERIOD_NS)
		return;
	progress_draw(p, now);
}

void progress_clear(struct progress *p)
{
	static const char erase[] = "\r" PROGRESS_CLEAR_EOL;

	if (!p->enabled || !p->shown)
		return;
	(void)write_full(p->fd, erase, sizeof(erase) - 1);
	p->shown = false;
}

void progress_end(struct progress *p)
{
	if (!p->enabled)
		return;
	progress_clear(p);
	p->name = "";
}
