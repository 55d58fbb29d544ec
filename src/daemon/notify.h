/* notify: the master's conversation with systemd (sd_notify). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* All are no-ops (returning 0) when NOTIFY_SOCKET is unset.  Only the
 * master calls these; workers never talk to systemd. */
int notify_ready(void);
int notify_reloading(void);     /* RELOADING=1 + MONOTONIC_USEC= */
int notify_stopping(void);
int notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int notify_extend_timeout(uint64_t usec);
int notify_watchdog(void);
/* Watchdog interval in microseconds from WATCHDOG_USEC, 0 if disabled. */
uint64_t notify_watchdog_usec(void);
