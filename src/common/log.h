/* log: leveled logging to the journal (structured) or to stderr (human). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
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

/* One structured field: logged as TCPFILED_<KEY>=value to the journal and
 * as key=value on stderr.  Keys are upper case ASCII. */
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
