/* log: leveled records to the journal (structured fields) or stderr (one line each). */
#define _GNU_SOURCE
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* The location would always be this file: log_event has no caller info. */
#define SD_JOURNAL_SUPPRESS_LOCATION

#include "netio.h"
#include "sdlib.h"

/* A record larger than this is cut and ends in "…".  Keeping stderr records
 * within PIPE_BUF makes each write(2) atomic when stderr is a pipe, so lines
 * of concurrent worker processes never interleave. */
#define LOG_LINE_MAX 4096
/* Journal records: the message plus every field, each "KEY=value". */
#define LOG_JOURNAL_MAX 16384
#define LOG_FIELDS_MAX 32
#define LOG_KEY_MAX 64

static const char ellipsis[] = "\xe2\x80\xa6"; /* U+2026 "…" */

static struct {
	const char *ident;
	int level;
	bool journal;
	bool ident_pid;
} log_state = {
	.ident = "tcpfiled",
	.level = LOG_INFO,
};

static const char *const level_names[] = {
	[LOG_EMERG] = "emerg",
	[LOG_ALERT] = "alert",
	[LOG_CRIT] = "crit",
	[LOG_ERR] = "err",
	[LOG_WARNING] = "warning",
	[LOG_NOTICE] = "notice",
	[LOG_INFO] = "info",
	[LOG_DEBUG] = "debug",
};

/* Words a human reads at the start of a stderr line. */
static const char *const level_words[] = {
	[LOG_EMERG] = "emergency",
	[LOG_ALERT] = "alert",
	[LOG_CRIT] = "critical",
	[LOG_ERR] = "error",
	[LOG_WARNING] = "warning",
	[LOG_NOTICE] = "notice",
	[LOG_INFO] = "info",
	[LOG_DEBUG] = "debug",
};

static bool log_stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int consumed = 0;

	if (!env)
		return false;
	if (sscanf(env, "%llu:%llu%n", &dev, &ino, &consumed) != 2 ||
	    env[consumed] != '\0')
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

void log_init(const char *ident)
{
	int saved = errno;

	if (ident && *ident)
		log_state.ident = ident;
	/* Structured records need libsystemd; without it the lines on
	 * stderr still reach the journal. */
	log_state.journal = log_stderr_is_journal() && sdlib_get();
	errno = saved;
}

void log_set_ident_pid(bool on)
{
	log_state.ident_pid = on;
}

static int log_clamp(int priority)
{
	if (priority < LOG_EMERG)
		return LOG_EMERG;
	if (priority > LOG_DEBUG)
		return LOG_DEBUG;
	return priority;
}

void log_set_level(int priority)
{
	log_state.level = log_clamp(priority);
}

int log_get_level(void)
{
	return log_state.level;
}

int log_level_from_name(const char *name)
{
	static const struct {
		const char *name;
		int priority;
	} aliases[] = {
		{ "error", LOG_ERR },
		{ "warn", LOG_WARNING },
	};

	if (!name)
		return -1;
	for (int p = LOG_ERR; p <= LOG_DEBUG; p++)
		if (strcasecmp(name, level_names[p]) == 0)
			return p;
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (strcasecmp(name, aliases[i].name) == 0)
			return aliases[i].priority;
	return -1;
}

const char *log_level_name(int priority)
{
	if (priority < LOG_EMERG || priority > LOG_DEBUG)
		return "unknown";
	return level_names[priority];
}

/* Appending writer over a fixed buffer that remembers whether anything was
 * cut off; len never exceeds cap - 1 so the text stays NUL-terminated. */
struct log_buf {
	char *p;
	size_t cap;
	size_t len;
	bool truncated;
};

static void log_buf_putn(struct log_buf *b, const char *s, size_t n)
{
	size_t room = b->cap - 1 - b->len;

	if (n > room) {
		n = room;
		b->truncated = true;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void log_buf_puts(struct log_buf *b, const char *s)
{
	log_buf_putn(b, s, strlen(s));
}

static void log_buf_putc(struct log_buf *b, char c)
{
	log_buf_putn(b, &c, 1);
}

static void log_buf_vprintf(struct log_buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void log_buf_vprintf(struct log_buf *b, const char *fmt, va_list ap)
{
	size_t room = b->cap - b->len;
	int n = vsnprintf(b->p + b->len, room, fmt, ap);

	if (n < 0) {
		b->p[b->len] = '\0';
		return;
	}
	if ((size_t)n >= room) {
		b->len = b->cap - 1;
		b->truncated = true;
	} else {
		b->len += (size_t)n;
	}
}

static void log_buf_printf(struct log_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void log_buf_printf(struct log_buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

/* Cuts the text so that `reserve` more bytes fit, never inside a UTF-8
 * sequence, and appends "…". */
static void log_buf_ellipsize(struct log_buf *b, size_t reserve)
{
	size_t need = sizeof(ellipsis) - 1 + reserve;
	size_t max = b->cap - 1 > need ? b->cap - 1 - need : 0;

	if (b->len > max)
		b->len = max;
	while (b->len > 0 && ((unsigned char)b->p[b->len] & 0xc0) == 0x80)
		b->len--;
	/* Nor inside an escape ("\x1b", "\\"): drop the escape whole. */
	for (size_t k = 3; k >= 1; k--) {
		if (k <= b->len && b->p[b->len - k] == '\\') {
			b->len -= k;
			break;
		}
	}
	b->p[b->len] = '\0';
	b->truncated = false;
	log_buf_puts(b, ellipsis);
}

/* Whether c is written as \xNN: control bytes, DEL, everything from 0x80
 * (so a terminal or journal viewer never sees raw UTF-8 from a client, nor
 * invalid sequences), '\', and any byte of extra. */
static bool log_byte_escaped(unsigned char c, const char *extra)
{
	return c < 0x20 || c >= 0x7f || c == '\\' || (c && strchr(extra, c));
}

/* Appends s with log_byte_escaped bytes as \xNN; never cuts an escape in
 * two (a record that does not fit is marked truncated instead). */
static void log_buf_put_escaped(struct log_buf *b, const char *s, size_t len,
				const char *extra)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < len && !b->truncated; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!log_byte_escaped(c, extra)) {
			log_buf_putc(b, (char)c);
			continue;
		}
		if (b->cap - 1 - b->len < 4) {
			b->truncated = true;
			break;
		}
		char esc[4] = { '\\', 'x', hex[c >> 4], hex[c & 0xf] };
		log_buf_putn(b, esc, sizeof(esc));
	}
}

/* In stderr values, '=' is escaped too: it separates a key from its
 * value, and only the daemon's keys may have one. */
#define LOG_STDERR_VALUE_EXTRA "="
/* In the message, '=' too, so that nothing in it reads as a field. */
#define LOG_MESSAGE_EXTRA "="

static bool log_value_needs_quotes(const char *v)
{
	return *v == '\0' || strpbrk(v, " \"\\") != NULL;
}

static void log_buf_put_value(struct log_buf *b, const char *v)
{
	if (!log_value_needs_quotes(v)) {
		log_buf_put_escaped(b, v, strlen(v), LOG_STDERR_VALUE_EXTRA);
		return;
	}
	log_buf_putc(b, '"');
	for (; *v && !b->truncated; v++) {
		if (*v == '"')
			log_buf_puts(b, "\\\"");
		else if (*v == '\\')
			log_buf_puts(b, "\\\\");
		else
			log_buf_put_escaped(b, v, 1, LOG_STDERR_VALUE_EXTRA);
	}
	log_buf_putc(b, '"');
}

/* Keys come from the daemon, but a stray byte must not break a record. */
static void log_buf_put_key(struct log_buf *b, const char *key)
{
	for (; *key; key++) {
		unsigned char c = (unsigned char)*key;

		log_buf_putc(b, isalnum(c) && c < 0x80 ? (char)tolower(c) : '_');
	}
}

static void log_to_stderr(int priority, int errnum,
			  const struct log_field *fields, size_t n_fields,
			  const char *message)
{
	char line[LOG_LINE_MAX];
	struct log_buf b = { .p = line, .cap = sizeof(line) };

	line[0] = '\0';
	if (log_state.ident_pid)
		log_buf_printf(&b, "%s[%ld]: ", log_state.ident, (long)getpid());
	log_buf_puts(&b, level_words[priority]);
	log_buf_puts(&b, ": ");
	log_buf_puts(&b, message);
	if (errnum > 0) {
		log_buf_puts(&b, ": ");
		log_buf_puts(&b, strerror(errnum));
	}
	for (size_t i = 0; i < n_fields; i++) {
		if (!fields[i].key || !fields[i].value)
			continue;
		log_buf_putc(&b, ' ');
		log_buf_put_key(&b, fields[i].key);
		log_buf_putc(&b, '=');
		log_buf_put_value(&b, fields[i].value);
	}
	/* Room for the newline is part of what may have been cut. */
	if (b.truncated || b.len + 1 >= b.cap)
		log_buf_ellipsize(&b, 1);
	log_buf_putc(&b, '\n');
	(void)write_full(STDERR_FILENO, line, b.len);
}

/* Journal field names allow only A-Z, 0-9 and '_'; anything else in a
 * caller's key becomes '_'. */
static void log_journal_key(char *dst, size_t cap, const char *key)
{
	size_t n = 0;

	for (; *key && n + 1 < cap; key++) {
		unsigned char c = (unsigned char)*key;

		if (isalnum(c) && c < 0x80)
			dst[n++] = (char)toupper(c);
		else
			dst[n++] = '_';
	}
	dst[n] = '\0';
}

/* Ends the "NAME=value" field that began at arena offset start: one
 * iovec over it, cut with "…" when the arena ran out. */
static void log_journal_end(struct iovec *iov, size_t *n_iov,
			    struct log_buf *arena, size_t start)
{
	if (arena->truncated) {
		/* Keep the field (it may be MESSAGE) but show it was cut. */
		arena->truncated = false;
		if (arena->len - start > sizeof(ellipsis)) {
			struct log_buf tail = {
				.p = arena->p + start,
				.cap = arena->cap - start,
				.len = arena->len - start,
			};
			log_buf_ellipsize(&tail, 0);
			arena->len = start + tail.len;
		}
		arena->truncated = true;
	}
	iov[*n_iov].iov_base = arena->p + start;
	iov[*n_iov].iov_len = arena->len - start;
	(*n_iov)++;
	/* Skip the terminator so fields never share bytes. */
	if (arena->len + 1 < arena->cap)
		arena->len++;
	else
		arena->truncated = true;
}

/* Adds one "NAME=value" iovec carved out of the shared arena. */
static void log_journal_add(struct iovec *iov, size_t *n_iov,
			    struct log_buf *arena, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void log_journal_add(struct iovec *iov, size_t *n_iov,
			    struct log_buf *arena, const char *fmt, ...)
{
	size_t start = arena->len;
	va_list ap;

	if (arena->truncated)
		return;
	va_start(ap, fmt);
	log_buf_vprintf(arena, fmt, ap);
	va_end(ap);
	log_journal_end(iov, n_iov, arena, start);
}

/* Adds "TCPFILED_KEY=value" with the value escaped. */
static void log_journal_add_field(struct iovec *iov, size_t *n_iov,
				  struct log_buf *arena, const char *key,
				  const char *value)
{
	size_t start = arena->len;

	if (arena->truncated)
		return;
	log_buf_printf(arena, "TCPFILED_%s=", key);
	log_buf_put_escaped(arena, value, strlen(value), "");
	log_journal_end(iov, n_iov, arena, start);
}

static void log_to_journal(int priority, int errnum, const char *message_id,
			   const struct log_field *fields, size_t n_fields,
			   const char *message)
{
	char storage[LOG_JOURNAL_MAX];
	struct log_buf arena = { .p = storage, .cap = sizeof(storage) };
	struct iovec iov[LOG_FIELDS_MAX + 8];
	size_t n = 0;

	/* The identity and priority go first so a cut never loses them. */
	log_journal_add(iov, &n, &arena, "PRIORITY=%d", priority);
	log_journal_add(iov, &n, &arena, "SYSLOG_IDENTIFIER=%s", log_state.ident);
	if (message_id)
		log_journal_add(iov, &n, &arena, "MESSAGE_ID=%s", message_id);
	if (errnum > 0) {
		const char *name = strerrorname_np(errnum);

		log_journal_add(iov, &n, &arena, "ERRNO=%d", errnum);
		if (name)
			log_journal_add(iov, &n, &arena, "TCPFILED_ERRNO=%s", name);
		log_journal_add(iov, &n, &arena, "MESSAGE=%s: %s", message,
				strerror(errnum));
	} else {
		log_journal_add(iov, &n, &arena, "MESSAGE=%s", message);
	}
	if (n_fields > LOG_FIELDS_MAX)
		n_fields = LOG_FIELDS_MAX;
	for (size_t i = 0; i < n_fields; i++) {
		char key[LOG_KEY_MAX];

		if (!fields[i].key || !fields[i].value)
			continue;
		log_journal_key(key, sizeof(key), fields[i].key);
		log_journal_add_field(iov, &n, &arena, key, fields[i].value);
	}
	if (sdlib_get()->journal_sendv(iov, (int)n) < 0) {
		/* The journal went away: a human line is better than nothing. */
		log_to_stderr(priority, errnum, fields, n_fields, message);
	}
}

void log_event(int priority, int errnum, const char *message_id,
	       const struct log_field *fields, size_t n_fields,
	       const char *fmt, ...)
{
	int saved = errno;
	char raw[LOG_LINE_MAX], message[LOG_LINE_MAX];
	struct log_buf b = { .p = raw, .cap = sizeof(raw) };
	struct log_buf m = { .p = message, .cap = sizeof(message) };
	va_list ap;

	priority = log_clamp(priority);
	if (priority > log_state.level)
		goto out;
	if (!fields)
		n_fields = 0;

	raw[0] = '\0';
	message[0] = '\0';
	/* %m in fmt must see the caller's errno. */
	errno = saved;
	va_start(ap, fmt);
	log_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	/* Escaped here, once, for both sinks; the "…" of a cut record is
	 * the logger's own and added after. */
	log_buf_put_escaped(&m, raw, b.len, LOG_MESSAGE_EXTRA);
	if (b.truncated || m.truncated)
		log_buf_ellipsize(&m, 0);

	if (log_state.journal)
		log_to_journal(priority, errnum, message_id, fields, n_fields,
			       message);
	else
		log_to_stderr(priority, errnum, fields, n_fields, message);
out:
	errno = saved;
}

void log_ratelimit_init(struct log_ratelimit *rl, unsigned burst,
			uint64_t interval_ms, int priority, const char *what)
{
	*rl = (struct log_ratelimit){
		.burst = burst,
		.interval_ms = interval_ms,
		.priority = priority,
		.what = what ? what : "records",
	};
}

void log_ratelimit_flush(struct log_ratelimit *rl, const struct log_field *fields,
			 size_t n_fields)
{
	if (rl->suppressed > 0)
		log_event(rl->priority, 0, NULL, fields, n_fields,
			  "%" PRIu64 " more %s suppressed", rl->suppressed, rl->what);
	rl->suppressed = 0;
	rl->passed = 0;
}

bool log_ratelimit_allow(struct log_ratelimit *rl, uint64_t now_ms,
			 const struct log_field *fields, size_t n_fields)
{
	if (rl->interval_ms > 0 && now_ms - rl->window_start_ms >= rl->interval_ms) {
		log_ratelimit_flush(rl, fields, n_fields);
		rl->window_start_ms = now_ms;
	}
	if (rl->passed < rl->burst) {
		rl->passed++;
		return true;
	}
	rl->suppressed++;
	return false;
}
