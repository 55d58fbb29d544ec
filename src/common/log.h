/* log: leveled logging to the journal (structured) or to stderr (human). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

/* Stable MESSAGE_ID per kind of record, so `journalctl MESSAGE_ID=…` works. */
#define LOG_MSGID_STARTUP      "5b1c7a1e0f6d4d5c9a8e7f3b2d1c0a01"
#define LOG_MSGID_SHUTDOWN     "5b1c7a1e0f6d4d5c9a8e7f3b2d1c0a02"
#define LOG_MSGID_RELOAD       "5b1c7a1e0f6d4d5c9a8e7f3b2d1c0a03"
#define LOG_MSGID_WORKER_START "5b1c7a1e0f6d4d5c9a8e7f3b2d1c0a04"
#define LOG_MSGID_WORKER_EXIT  "5b1c7a1e0f6d4d5c9a8e7f3b2d1c0a05"
#define LOG_MSGID_TRANSFER     "5b1c7a1e0f6d4d5c9a8e7f3b2d1c0a06"
#define LOG_MSGID_REQUEST      "5b1c7a1e0f6d4d5c9a8e7f3b2d1c0a07"
#define LOG_MSGID_CRASH_LOOP   "5b1c7a1e0f6d4d5c9a8e7f3b2d1c0a08"
#define LOG_MSGID_LOGIN        "5b1c7a1e0f6d4d5c9a8e7f3b2d1c0a09"

/* One structured field: logged as TCPFILED_<KEY>=value to the journal and
 * as key=value on stderr.  Keys are upper case ASCII.
 *
 * Values and the formatted message may hold anything a client sent: the
 * logger escapes them, so no call site has to and none can forget.  Every
 * byte below 0x20, 0x7F, every byte from 0x80 (UTF-8 included) and '\'
 * becomes \xNN in both sinks; so does '=' in the message, and in stderr
 * values.  A stderr record is therefore one line in which every '=' joins
 * a key the daemon chose to its value: a client cannot plant fields.  A
 * stderr value with a space, '"' or nothing in it is quoted ("a b"), with
 * \" and \\ inside the quotes. */
struct log_field {
	const char *key;
	const char *value;
};

/* Picks the journal when stderr is the journal's stream (JOURNAL_STREAM
 * matches stderr's device and inode), stderr otherwise. */
void log_init(const char *ident);
/* Prefixes stderr lines with "ident[pid]: " (off by default: the journal
 * records both itself).  Useful when several processes share a terminal. */
void log_set_ident_pid(bool on);
void log_set_level(int priority);
int log_get_level(void);
/* "err", "warning", "notice", "info", "debug" → syslog priority; -1 if unknown. */
int log_level_from_name(const char *name);
const char *log_level_name(int priority);

/* Core entry point.  errnum > 0 appends ": strerror(errnum)".  Saves and
 * restores errno. */
void log_event(int priority, int errnum, const char *message_id,
	       const struct log_field *fields, size_t n_fields,
	       const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#define log_err(...)     log_event(LOG_ERR, 0, NULL, NULL, 0, __VA_ARGS__)
#define log_warn(...)    log_event(LOG_WARNING, 0, NULL, NULL, 0, __VA_ARGS__)
#define log_notice(...)  log_event(LOG_NOTICE, 0, NULL, NULL, 0, __VA_ARGS__)
#define log_info(...)    log_event(LOG_INFO, 0, NULL, NULL, 0, __VA_ARGS__)
#define log_debug(...)   log_event(LOG_DEBUG, 0, NULL, NULL, 0, __VA_ARGS__)
/* err is a positive or negative errno value. */
#define log_errno(err, ...) \
	log_event(LOG_ERR, (err) < 0 ? -(err) : (err), NULL, NULL, 0, __VA_ARGS__)
#define log_warn_errno(err, ...) \
	log_event(LOG_WARNING, (err) < 0 ? -(err) : (err), NULL, NULL, 0, __VA_ARGS__)

/* Rate limit for records a peer can trigger at will (refused requests on
 * one connection, refused connections in one worker): the first burst
 * records of each window pass, the rest are counted, and one summary
 * record "N more <what> suppressed" is logged when the next window opens
 * or at log_ratelimit_flush.  interval_ms 0: one window for the limiter's
 * whole life (a connection), summarised by the flush at its end. */
struct log_ratelimit {
	unsigned burst;
	uint64_t interval_ms;
	int priority;               /* of the summary record */
	const char *what;           /* "refused requests": static text */
	uint64_t window_start_ms;
	unsigned passed;            /* records let through in this window */
	uint64_t suppressed;        /* records dropped in this window */
};

void log_ratelimit_init(struct log_ratelimit *rl, unsigned burst,
			uint64_t interval_ms, int priority, const char *what);
/* True when the caller may log its record now (now_ms: monotonic_ms()).
 * When this call opens a new window after records were suppressed, the
 * summary is logged first, with fields. */
bool log_ratelimit_allow(struct log_ratelimit *rl, uint64_t now_ms,
			 const struct log_field *fields, size_t n_fields);
/* Logs the summary if records were suppressed, and starts afresh. */
void log_ratelimit_flush(struct log_ratelimit *rl, const struct log_field *fields,
			 size_t n_fields);
