/* sdlib: libsystemd, loaded when systemd has handed the process something
 * to use it with.
 *
 * The daemon needs libsystemd only under systemd: for the sockets of
 * socket activation (LISTEN_FDS), the readiness and status messages
 * (NOTIFY_SOCKET), the watchdog (WATCHDOG_USEC) and structured journal
 * records (stderr connected to the journal, JOURNAL_STREAM).  Those
 * variables are systemd's documented switches; when none is set nothing
 * would be sent, so the library and its own dependencies (libgcrypt,
 * liblzma, libzstd, liblz4, libcap: ~0.5 MiB resident in a pool) are not
 * mapped.  When one is set the library is dlopen()ed, in the master before
 * any fork. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define SDLIB_SONAME "libsystemd.so.0"

struct sdlib {
	int (*listen_fds_with_names)(int unset_environment, char ***names);
	int (*is_socket)(int fd, int family, int type, int listening);
	int (*notify)(int unset_environment, const char *state);
	int (*watchdog_enabled)(int unset_environment, uint64_t *usec);
	int (*journal_sendv)(const struct iovec *iov, int n);
};

/* Whether the environment names anything of systemd's for this process
 * (var: "LISTEN_FDS", "NOTIFY_SOCKET", "WATCHDOG_USEC"): only then is there
 * a call to make. */
bool sdlib_wanted(const char *var);

/* The library's entry points, loading it the first time; NULL when it
 * cannot be loaded, with the reason in sdlib_error(). */
const struct sdlib *sdlib_get(void);
const char *sdlib_error(void);
