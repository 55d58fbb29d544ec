/* notify: sd_notify messages from the master to systemd (readiness, reload, status, watchdog). */
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include <systemd/sd-daemon.h>

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
	return notify_result(sd_notify(0, state));
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
	return notify_result(sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
					(unsigned long long)ts.tv_sec * 1000000ULL +
						(unsigned long long)ts.tv_nsec / 1000ULL));
}

int notify_stopping(void)
{
	return notify_send("STOPPING=1");
}

int notify_status(const char *fmt, ...)
{
	char status[NOTIFY_STATUS_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(status, sizeof(status), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	/* A cut status line is still worth showing in systemctl status. */
	return notify_result(sd_notifyf(0, "STATUS=%s", status));
}

int notify_extend_timeout(uint64_t usec)
{
	return notify_result(sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu",
					(unsigned long long)usec));
}

int notify_watchdog(void)
{
	return notify_send("WATCHDOG=1");
}

uint64_t notify_watchdog_usec(void)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec;
}
