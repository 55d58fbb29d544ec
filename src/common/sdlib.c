/* sdlib: libsystemd through dlopen(), on first need. */
#include "sdlib.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

/* The table's slots have the library's own prototypes (the headers are
 * only read, nothing is linked). */
#define SDLIB_SAME(slot, fn) \
	_Static_assert(__builtin_types_compatible_p(__typeof__(((struct sdlib *)0)->slot), \
						   __typeof__(&fn)), #fn)
SDLIB_SAME(listen_fds_with_names, sd_listen_fds_with_names);
SDLIB_SAME(is_socket, sd_is_socket);
SDLIB_SAME(notify, sd_notify);
SDLIB_SAME(watchdog_enabled, sd_watchdog_enabled);
SDLIB_SAME(journal_sendv, sd_journal_sendv);

static struct sdlib sdlib_table;
static bool sdlib_loaded;
static char sdlib_why[512];

bool sdlib_wanted(const char *var)
{
	const char *v = getenv(var);

	return v && *v;
}

/* One symbol into *slot; false (with why) when it is missing. */
static bool sdlib_sym(void *h, const char *name, void *slot)
{
	void *p = dlsym(h, name);

	if (!p) {
		snprintf(sdlib_why, sizeof(sdlib_why), "%s: no %s", SDLIB_SONAME, name);
		return false;
	}
	/* POSIX guarantees that a data pointer from dlsym() converts to a
	 * function pointer; copy it through the slot's object representation. */
	*(void **)slot = p;
	return true;
}

const struct sdlib *sdlib_get(void)
{
	struct sdlib t;
	const char *e;
	void *h;

	if (sdlib_loaded)
		return &sdlib_table;
	if (sdlib_why[0])
		return NULL;
	h = dlopen(SDLIB_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		e = dlerror();
		snprintf(sdlib_why, sizeof(sdlib_why), "cannot load %s: %s", SDLIB_SONAME,
			 e ? e : "dlopen failed");
		return NULL;
	}
	if (!sdlib_sym(h, "sd_listen_fds_with_names", &t.listen_fds_with_names) ||
	    !sdlib_sym(h, "sd_is_socket", &t.is_socket) ||
	    !sdlib_sym(h, "sd_notify", &t.notify) ||
	    !sdlib_sym(h, "sd_watchdog_enabled", &t.watchdog_enabled) ||
	    !sdlib_sym(h, "sd_journal_sendv", &t.journal_sendv)) {
		dlclose(h);
		return NULL;
	}
	sdlib_table = t;
	sdlib_loaded = true;
	return &sdlib_table;
}

const char *sdlib_error(void)
{
	return sdlib_why[0] ? sdlib_why : SDLIB_SONAME " is loaded";
}
