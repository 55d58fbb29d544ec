/* notify: sd_notify messages from the master to systemd (readiness, reload, status, watchdog). */
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sdlib.h"

#define NOTIFY_STATUS_MAX 512

/* sd_notify() returns 0 without NOTIFY_SOCKET and > 0 once sent; callers
 * only care about failures. */
static int notify_result(int r)
{
	return r < 0 ? r : 0;
}

/* NOTIFY_SOCKET stays in the environment (unset_environment = 0): the
 * master sends many messages over its lifetime, and workers are told not to
 * talk to systemd by contract rather than by a missing variable. */
static int notify_send(const char *state)
{
	const struct sdlib *sd;

	/* Without NOTIFY_SOCKET sd_notify() has nothing to send to. */
	if (!sdlib_wanted("NOTIFY_SOCKET"))
		return 0;
	sd = sdlib_get();
	if (!sd)
		return -ELIBACC;
	return notify_result(sd->notify(0, state));
}

/* prefix, then fmt formatted (cut to fit: a cut status line is still
 * worth showing in systemctl status). */
static int notify_vsend(const char *prefix, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static int notify_vsend(const char *prefix, const char *fmt, va_list ap)
{
	char state[NOTIFY_STATUS_MAX + 32];
	size_t p = strlen(prefix);

	if (p >= sizeof(state))
		return -EINVAL;
	memcpy(state, prefix, p);
	if (vsnprintf(state + p, sizeof(state) - p, fmt, ap) < 0)
		return -EINVAL;
	return notify_send(state);
}

static int notify_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int notify_sendf(const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = notify_vsend("", fmt, ap);
	va_end(ap);
	return r;
}

int notify_ready(void)
{
	return notify_send("READY=1");
}

int notify_reloading(void)
{
	struct timespec ts;

	/* Type=notify-reload wants the monotonic time at which the reload
	 * began, to tell this reload's READY=1 from an earlier one. */
	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		return -errno;
	return notify_sendf("RELOADING=1\nMONOTONIC_USEC=%llu",
			    (unsigned long long)ts.tv_sec * 1000000ULL +
				    (unsigned long long)ts.tv_nsec / 1000ULL);
}

int notify_stopping(void)
{
	return notify_send("STOPPING=1");
}

int notify_status(const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = notify_vsend("STATUS=", fmt, ap);
	va_end(ap);
	return r;
}

int notify_extend_timeout(uint64_t usec)
{
	return notify_sendf("EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)usec);
}

int notify_watchdog(void)
{
	return notify_send("WATCHDOG=1");
}

uint64_t notify_watchdog_usec(void)
{
	const struct sdlib *sd;
	uint64_t usec = 0;

	if (!sdlib_wanted("WATCHDOG_USEC"))
		return 0;
	sd = sdlib_get();
	if (!sd || sd->watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec;
}
