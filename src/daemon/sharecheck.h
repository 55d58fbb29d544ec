/* sharecheck: proves every share usable the way a worker will use it, and
 * notices a share root renamed or deleted while the daemon runs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Opens the share's root as a worker does (storage_open_root: O_PATH, then
 * openat2 beneath it), then checks, with this process's effective ids,
 * that the directory can be searched and listed, and for a writable share
 * that a file can be created in it (an O_TMPFILE probe, which also catches
 * a read-only mount and a filesystem without O_TMPFILE).  A full disk is no
 * configuration error and passes.  Returns 0, or -errno with why (cut to
 * cap) saying what failed. */
int sharecheck_share(const struct share_conf *share, char *why, size_t cap);

/* sharecheck_share for every share; the first failure is written to err
 * as "FILE:LINE: [NAME] path: \"PATH\": why" (LINE of the path key) and
 * returned as -errno.  tcpfiled -t, start-up and reload all run it, so a
 * configuration that passes -t is one the workers can serve. */
int sharecheck_config(const struct config *conf, char *err, size_t errlen);

/* True while root_fd (a share root a worker opened) is still the directory
 * at share->path: same device and inode, and not deleted (st_nlink > 0).
 * A share renamed or removed since it was opened fails, and stays refused
 * until a reload starts workers that open the path afresh.  root_fd < 0
 * (a share the worker could not open) is never valid. */
bool sharecheck_still_valid(const struct share_conf *share, int root_fd);
